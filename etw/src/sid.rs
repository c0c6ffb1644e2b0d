//! Security identifiers: the binary SID in the kernel's process events, its `S-1-5-21-...`
//! string (CIM `user_id`), and the account it names, `DOMAIN\user` (CIM `user`).
//!
//! The kernel Process class's `UserSID` property has TDH in-type WBEMSID: a `TOKEN_USER`
//! (`SID_AND_ATTRIBUTES`: a pointer and a DWORD, padded: 16 bytes from a 64-bit kernel, 8 from a
//! 32-bit one) followed by the SID itself ([`Sid::from_wbem`]). Account names come from a
//! [`crate::host::Host`] (`LookupAccountSidW` on Windows, [`lookup_account`]) through an
//! [`AccountCache`], so each SID is looked up once.

use std::{collections::HashMap, fmt};

/// A binary SID: revision 1, up to 15 sub-authorities.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sid {
    bytes: Vec<u8>,
}

/// Most sub-authorities a SID may have (`SID_MAX_SUB_AUTHORITIES`).
const MAX_SUB_AUTHORITIES: usize = 15;

impl Sid {
    /// Reads the SID at the start of `bytes` (anything after it is ignored); `None` unless it is
    /// a well-formed revision-1 SID.
    pub fn from_bytes(bytes: &[u8]) -> Option<Sid> {
        let (&revision, rest) = bytes.split_first()?;
        let &count = rest.first()?;
        let count = usize::from(count);
        if revision != 1 || count > MAX_SUB_AUTHORITIES {
            return None;
        }
        let len = 8 + 4 * count;
        let bytes = bytes.get(..len)?;
        Some(Sid {
            bytes: bytes.to_vec(),
        })
    }

    /// Reads a WBEM SID: a `TOKEN_USER` of two pointers' size, then the SID. A null `User.Sid`
    /// pointer (no SID) or a short blob gives `None`.
    pub fn from_wbem(blob: &[u8], pointer_size: u8) -> Option<Sid> {
        let ptr = usize::from(pointer_size);
        if ptr != 4 && ptr != 8 {
            return None;
        }
        let head = blob.get(..ptr)?;
        if head.iter().all(|&b| b == 0) {
            return None;
        }
        Sid::from_bytes(blob.get(2 * ptr..)?)
    }

    /// Parses `S-1-5-21-...` (for fixtures and tables).
    pub fn parse(s: &str) -> Option<Sid> {
        let mut parts = s.strip_prefix("S-")?.split('-');
        let revision: u8 = parts.next()?.parse().ok()?;
        let authority_text = parts.next()?;
        let authority: u64 = match authority_text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok()?,
            None => authority_text.parse().ok()?,
        };
        if revision != 1 || authority >= 1 << 48 {
            return None;
        }
        let subs: Vec<u32> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
        if subs.len() > MAX_SUB_AUTHORITIES {
            return None;
        }
        let mut bytes = vec![1, subs.len() as u8];
        bytes.extend_from_slice(&authority.to_be_bytes()[2..]);
        for s in subs {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        Some(Sid { bytes })
    }

    /// The binary SID, as Win32 functions take it.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn authority(&self) -> u64 {
        let mut a = [0u8; 8];
        a[2..].copy_from_slice(&self.bytes[2..8]);
        u64::from_be_bytes(a)
    }

    fn sub_authorities(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes[8..]
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }
}

/// `S-1-<authority>-<sub>-...`, as `ConvertSidToStringSidW` writes it: the authority in decimal
/// below 2^32, in hex (`0x...`) above.
impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S-{}", self.bytes[0])?;
        let authority = self.authority();
        if authority < 1 << 32 {
            write!(f, "-{authority}")?;
        } else {
            write!(f, "-0x{authority:012X}")?;
        }
        for sub in self.sub_authorities() {
            write!(f, "-{sub}")?;
        }
        Ok(())
    }
}

/// Account names by SID, looked up once each (unresolvable SIDs too). Bounded: when full, it
/// starts over.
#[derive(Debug, Default)]
pub struct AccountCache {
    names: HashMap<Sid, Option<String>>,
    lookups: u64,
}

/// Most SIDs remembered.
const ACCOUNT_CACHE_MAX: usize = 4096;

impl AccountCache {
    /// The account name of `sid`, from the cache or from `lookup`.
    pub fn get(
        &mut self,
        sid: &Sid,
        lookup: impl FnOnce(&Sid) -> Option<String>,
    ) -> Option<String> {
        if let Some(name) = self.names.get(sid) {
            return name.clone();
        }
        if self.names.len() >= ACCOUNT_CACHE_MAX {
            self.names.clear();
        }
        self.lookups += 1;
        let name = lookup(sid);
        self.names.insert(sid.clone(), name.clone());
        name
    }

    /// How many look-ups missed the cache.
    pub fn lookups(&self) -> u64 {
        self.lookups
    }
}

/// `DOMAIN\user` of `sid` (`NT AUTHORITY\SYSTEM` for S-1-5-18), or just the name where the
/// domain is empty; `None` when `LookupAccountSidW` cannot name it (e.g. a deleted account).
#[cfg(windows)]
pub fn lookup_account(sid: &Sid) -> Option<String> {
    use windows_sys::Win32::Security::{LookupAccountSidW, SID_NAME_USE};

    let mut name = vec![0u16; 256];
    let mut domain = vec![0u16; 256];
    for _ in 0..2 {
        let mut name_len = name.len() as u32;
        let mut domain_len = domain.len() as u32;
        let mut use_: SID_NAME_USE = 0;
        // SAFETY: the SID is a well-formed binary SID (checked by `Sid::from_bytes`); the
        // buffers are writable for the lengths given.
        let ok = unsafe {
            LookupAccountSidW(
                std::ptr::null(),
                sid.as_bytes().as_ptr() as *mut _,
                name.as_mut_ptr(),
                &mut name_len,
                domain.as_mut_ptr(),
                &mut domain_len,
                &mut use_,
            )
        };
        if ok != 0 {
            let name = String::from_utf16_lossy(&name[..name_len as usize]);
            let domain = String::from_utf16_lossy(&domain[..domain_len as usize]);
            return Some(if domain.is_empty() {
                name
            } else {
                format!("{domain}\\{name}")
            });
        }
        // ERROR_INSUFFICIENT_BUFFER: the lengths now hold what is needed.
        if std::io::Error::last_os_error().raw_os_error() != Some(122) {
            return None;
        }
        name.resize(name_len as usize + 1, 0);
        domain.resize(domain_len as usize + 1, 0);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// S-1-5-21-1004336348-1177238915-682003330-1001, the SID of a local user, as bytes.
    fn user_sid_bytes() -> Vec<u8> {
        let mut b = vec![1, 5, 0, 0, 0, 0, 0, 5];
        for sub in [21u32, 1_004_336_348, 1_177_238_915, 682_003_330, 1001] {
            b.extend_from_slice(&sub.to_le_bytes());
        }
        b
    }

    #[test]
    fn binary_sids_print_as_strings() {
        let sid = Sid::from_bytes(&user_sid_bytes()).unwrap();
        assert_eq!(
            sid.to_string(),
            "S-1-5-21-1004336348-1177238915-682003330-1001"
        );
        let system = Sid::from_bytes(&[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]).unwrap();
        assert_eq!(system.to_string(), "S-1-5-18");
        let everyone = Sid::from_bytes(&[1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]).unwrap();
        assert_eq!(everyone.to_string(), "S-1-1-0");
        // An authority above 2^32 is written in hex.
        let odd = Sid::from_bytes(&[1, 0, 0x12, 0x34, 0, 0, 0, 1]).unwrap();
        assert_eq!(odd.to_string(), "S-1-0x123400000001");
        // Trailing bytes are not part of the SID.
        let mut long = user_sid_bytes();
        long.extend_from_slice(&[0xAA, 0xBB]);
        assert_eq!(Sid::from_bytes(&long).unwrap().as_bytes(), user_sid_bytes());
    }

    #[test]
    fn malformed_sids_are_refused() {
        assert_eq!(Sid::from_bytes(&[]), None);
        assert_eq!(Sid::from_bytes(&[1]), None);
        assert_eq!(
            Sid::from_bytes(&[2, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]),
            None
        );
        assert_eq!(Sid::from_bytes(&[1, 16]), None, "too many sub-authorities");
        let b = user_sid_bytes();
        assert_eq!(Sid::from_bytes(&b[..b.len() - 1]), None, "cut short");
    }

    #[test]
    fn wbem_sids_skip_the_token_user() {
        // 64-bit kernel: TOKEN_USER is { PSID (8), DWORD Attributes (4), padding (4) }.
        let mut blob = vec![
            0x50, 0x1e, 0x8f, 0x3a, 0x8c, 0xd9, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        blob.extend_from_slice(&user_sid_bytes());
        assert_eq!(
            Sid::from_wbem(&blob, 8).unwrap().to_string(),
            "S-1-5-21-1004336348-1177238915-682003330-1001"
        );
        // 32-bit: { PSID (4), DWORD (4) }.
        let mut blob32 = vec![0x10, 0x20, 0x30, 0x40, 0, 0, 0, 0];
        blob32.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0]);
        assert_eq!(Sid::from_wbem(&blob32, 4).unwrap().to_string(), "S-1-5-18");
        // A null SID pointer: no user.
        let mut null = vec![0u8; 16];
        null.extend_from_slice(&user_sid_bytes());
        assert_eq!(Sid::from_wbem(&null, 8), None);
        assert_eq!(Sid::from_wbem(&blob[..10], 8), None);
        assert_eq!(Sid::from_wbem(&blob, 2), None);
    }

    #[test]
    fn strings_parse_back() {
        for s in [
            "S-1-5-18",
            "S-1-5-21-1004336348-1177238915-682003330-1001",
            "S-1-0x123400000001",
            "S-1-16-12288",
        ] {
            assert_eq!(Sid::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(
            Sid::parse("S-1-5-21-1004336348-1177238915-682003330-1001")
                .unwrap()
                .as_bytes(),
            user_sid_bytes()
        );
        for bad in [
            "",
            "S-1",
            "S-2-5-18",
            "X-1-5-18",
            "S-1-5-x",
            "S-1-5-4294967296",
        ] {
            assert_eq!(Sid::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn account_names_are_looked_up_once_per_sid() {
        let table: HashMap<String, String> = [
            (
                "S-1-5-21-1004336348-1177238915-682003330-1001".to_string(),
                r"CONTOSO\a".to_string(),
            ),
            ("S-1-5-18".to_string(), r"NT AUTHORITY\SYSTEM".to_string()),
        ]
        .into();
        let lookup = |sid: &Sid| table.get(&sid.to_string()).cloned();
        let mut cache = AccountCache::default();
        let user = Sid::from_bytes(&user_sid_bytes()).unwrap();
        let system = Sid::parse("S-1-5-18").unwrap();
        let gone = Sid::parse("S-1-5-21-1-2-3-1111").unwrap();
        for _ in 0..3 {
            assert_eq!(cache.get(&user, lookup).as_deref(), Some(r"CONTOSO\a"));
            assert_eq!(
                cache.get(&system, lookup).as_deref(),
                Some(r"NT AUTHORITY\SYSTEM")
            );
            assert_eq!(cache.get(&gone, lookup), None);
        }
        assert_eq!(cache.lookups(), 3);
    }
}
