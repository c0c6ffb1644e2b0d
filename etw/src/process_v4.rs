//! The kernel logger's Process event (`Process_V4_TypeGroup1`: Start, End, DCStart, DCEnd,
//! Defunct), decoded from its documented layout rather than property by property through
//! TDH. The live sensor (`consumer.rs`, from the event's user data) and `.etl` replay
//! (`etl.rs`) both decode it here.
//!
//! Layout (P = the trace's pointer size, 4 or 8; all little-endian; Microsoft Learn
//! "Process_V4_TypeGroup1 class", cross-checked with PerfView's `ProcessTraceData` and two
//! independent `.etl` parsers on real traces, see etw/README.md):
//!
//! | field | size | from version |
//! |---|---|---|
//! | UniqueProcessKey | P | 2 |
//! | ProcessId, ParentId, SessionId, ExitStatus | 4 each | 1 |
//! | DirectoryTableBase | P | 3 |
//! | Flags | 4 | 4 |
//! | UserSID | a `TOKEN_USER` (2 P) then the SID; 4 zero bytes when there is none | |
//! | ImageFileName | ANSI, NUL-terminated | |
//! | CommandLine | UTF-16LE, NUL-terminated | 2 |
//! | PackageFullName, ApplicationId | UTF-16LE, NUL-terminated | 4 |
//!
//! The `UserSID` is what ferrisetw's property parser has no type for (TDH's WBEMSID): its
//! header's size depends on the pointer size of the trace, not of the reader. Every read is
//! bounds-checked; strings that end without their NUL (a payload cut short) are taken as far
//! as they go, and later fields are then empty. A payload too short for the fixed part, a
//! bad SID or a version this code does not know is an error, never a panic.

use crate::{
    fields::{Fields, Header, RawEvent, Value},
    sid::Sid,
};

/// One decoded kernel Process event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessRecord {
    pub unique_process_key: u64,
    pub pid: u32,
    pub ppid: u32,
    pub session_id: u32,
    pub exit_status: i32,
    pub directory_table_base: u64,
    pub flags: u32,
    /// `None` for a null `UserSID` (4 zero bytes).
    pub sid: Option<Sid>,
    /// The image's file name as the kernel keeps it (`ngrok.exe`).
    pub image_file_name: String,
    pub command_line: String,
    pub package_full_name: String,
    pub application_id: String,
}

/// Why a payload was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the fixed fields of its version.
    Short,
    /// A pointer size other than 4 or 8.
    PointerSize,
    /// A version before 2 (Windows XP's layout) or after 5.
    Version,
    /// A non-null `UserSID` that is not a well-formed SID within the payload.
    Sid,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodeError::Short => "kernel Process event shorter than its fixed fields",
            DecodeError::PointerSize => "pointer size is neither 4 nor 8",
            DecodeError::Version => "kernel Process event version not known (2 to 5 are)",
            DecodeError::Sid => "kernel Process event with a malformed UserSID",
        })
    }
}

impl std::error::Error for DecodeError {}

/// A bounds-checked cursor over the payload.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.data.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn pointer(&mut self, size: usize) -> Option<u64> {
        let b = self.take(size)?;
        let mut v = [0u8; 8];
        v[..size].copy_from_slice(b);
        Some(u64::from_le_bytes(v))
    }

    /// A NUL-terminated byte string (without its NUL); to the end when unterminated.
    fn ansi(&mut self) -> String {
        let rest = self.data.get(self.at..).unwrap_or_default();
        let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        self.at += (len + 1).min(rest.len());
        String::from_utf8_lossy(&rest[..len]).into_owned()
    }

    /// A NUL-terminated UTF-16LE string (without its NUL); to the end when unterminated.
    fn utf16(&mut self) -> String {
        let rest = self.data.get(self.at..).unwrap_or_default();
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        self.at += (2 * units.len() + 2).min(rest.len());
        String::from_utf16_lossy(&units)
    }
}

/// Reads a `UserSID`: 4 zero bytes for none, else a `TOKEN_USER` (two pointers' size) and
/// the SID after it.
fn user_sid(c: &mut Cursor<'_>, pointer: usize) -> Result<Option<Sid>, DecodeError> {
    let first = c.data.get(c.at..c.at + 4).ok_or(DecodeError::Short)?;
    if first == [0, 0, 0, 0] {
        c.at += 4;
        return Ok(None);
    }
    c.take(2 * pointer).ok_or(DecodeError::Short)?;
    let rest = c.data.get(c.at..).unwrap_or_default();
    let sid = Sid::from_bytes(rest).ok_or(DecodeError::Sid)?;
    c.at += sid.as_bytes().len();
    Ok(Some(sid))
}

/// Decodes the user data of a kernel Process event of `version` (2 to 5; 5 is Defunct's,
/// V4 with the exit time after it) logged with pointers of `pointer_size` bytes.
pub fn decode(payload: &[u8], version: u8, pointer_size: u8) -> Result<ProcessRecord, DecodeError> {
    let p = usize::from(pointer_size);
    if p != 4 && p != 8 {
        return Err(DecodeError::PointerSize);
    }
    if !(2..=5).contains(&version) {
        return Err(DecodeError::Version);
    }
    let mut c = Cursor {
        data: payload,
        at: 0,
    };
    let short = DecodeError::Short;
    let mut r = ProcessRecord {
        unique_process_key: c.pointer(p).ok_or(short)?,
        pid: c.u32().ok_or(short)?,
        ppid: c.u32().ok_or(short)?,
        session_id: c.u32().ok_or(short)?,
        exit_status: c.u32().ok_or(short)? as i32,
        ..ProcessRecord::default()
    };
    if version >= 3 {
        r.directory_table_base = c.pointer(p).ok_or(short)?;
    }
    if version >= 4 {
        r.flags = c.u32().ok_or(short)?;
    }
    r.sid = user_sid(&mut c, p)?;
    r.image_file_name = c.ansi();
    r.command_line = c.utf16();
    if version >= 4 {
        r.package_full_name = c.utf16();
        r.application_id = c.utf16();
    }
    Ok(r)
}

impl ProcessRecord {
    /// The record as the mapping reads it, under the MOF class's property names.
    pub fn into_fields(self) -> Fields {
        let mut f = Fields::new()
            .with("UniqueProcessKey", Value::U64(self.unique_process_key))
            .with("ProcessId", Value::U32(self.pid))
            .with("ParentId", Value::U32(self.ppid))
            .with("SessionId", Value::U32(self.session_id))
            .with("ExitStatus", Value::U32(self.exit_status as u32))
            .with("DirectoryTableBase", Value::U64(self.directory_table_base))
            .with("Flags", Value::U32(self.flags))
            .with("ImageFileName", Value::Str(self.image_file_name))
            .with("CommandLine", Value::Str(self.command_line))
            .with("PackageFullName", Value::Str(self.package_full_name))
            .with("ApplicationId", Value::Str(self.application_id));
        if let Some(sid) = self.sid {
            f.insert("UserSID", Value::Sid(sid));
        }
        f
    }
}

/// The event for a kernel Process event's user data: decoded with the header's version and
/// pointer size.
pub fn raw_event(header: Header, payload: &[u8]) -> Result<RawEvent, DecodeError> {
    let r = decode(payload, header.version, header.pointer_size)?;
    Ok(RawEvent {
        header,
        fields: r.into_fields(),
    })
}

/// Builds the payload of a kernel Process event of `version` 2 to 4 (for tests, fixtures and
/// the fuzz corpus): the inverse of [`decode`]. `token_user` is the `TOKEN_USER`'s pointer
/// value (ignored without a SID).
pub fn encode(r: &ProcessRecord, version: u8, pointer_size: u8, token_user: u64) -> Vec<u8> {
    let p = usize::from(pointer_size);
    let mut b = Vec::new();
    b.extend_from_slice(&r.unique_process_key.to_le_bytes()[..p]);
    for v in [r.pid, r.ppid, r.session_id, r.exit_status as u32] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    if version >= 3 {
        b.extend_from_slice(&r.directory_table_base.to_le_bytes()[..p]);
    }
    if version >= 4 {
        b.extend_from_slice(&r.flags.to_le_bytes());
    }
    match &r.sid {
        None => b.extend_from_slice(&[0; 4]),
        Some(sid) => {
            // TOKEN_USER: SID_AND_ATTRIBUTES { PSID Sid; DWORD Attributes; } padded to 2 P.
            b.extend_from_slice(&token_user.to_le_bytes()[..p]);
            b.extend_from_slice(&vec![0; p]);
            b.extend_from_slice(sid.as_bytes());
        }
    }
    b.extend_from_slice(r.image_file_name.as_bytes());
    b.push(0);
    let mut wide = |s: &str| {
        for u in s.encode_utf16().chain([0]) {
            b.extend_from_slice(&u.to_le_bytes());
        }
    };
    wide(&r.command_line);
    if version >= 4 {
        wide(&r.package_full_name);
        wide(&r.application_id);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Process End from a real 64-bit Windows 10 trace (airbus-cert/etl-parser's
    /// `tests/example/ShutdownPerfDiagLogger.etl`), as its parser and dissect.etl read it.
    fn one_drive() -> ProcessRecord {
        ProcessRecord {
            unique_process_key: 18446685277900927104,
            pid: 7064,
            ppid: 3856,
            session_id: 1,
            exit_status: 1073807364,
            directory_table_base: 588734464,
            flags: 2,
            sid: Sid::parse("S-1-5-21-4151223144-1238771585-1724997581-1000"),
            image_file_name: "OneDrive.exe".into(),
            command_line:
                r#""C:\Users\sylvain\AppData\Local\Microsoft\OneDrive\OneDrive.exe" /background"#
                    .into(),
            package_full_name: String::new(),
            application_id: String::new(),
        }
    }

    #[test]
    fn a_v4_payload_round_trips_at_both_pointer_sizes() {
        let r = one_drive();
        for p in [8u8, 4] {
            let mut r = r.clone();
            if p == 4 {
                r.unique_process_key &= 0xffff_ffff;
                r.directory_table_base &= 0xffff_ffff;
            }
            let bytes = encode(&r, 4, p, 0xffff_b488_fcb3_5ee0);
            assert_eq!(decode(&bytes, 4, p), Ok(r.clone()), "pointer size {p}");
        }
        // The TOKEN_USER's size follows the trace's pointer size: read with the other size,
        // the SID is not where the decoder looks.
        let bytes = encode(&r, 4, 8, 0xffff_b488_fcb3_5ee0);
        assert_ne!(decode(&bytes, 4, 4).ok().and_then(|d| d.sid), r.sid);
    }

    #[test]
    fn the_real_payload_layout_decodes() {
        // The bytes of the event above as the trace holds them (the TOKEN_USER
        // e05eb3fc88b4ffff0000000088b4ffff copied from the trace: a pointer, the attributes and
        // the padding's leftovers).
        let mut b = Vec::new();
        b.extend_from_slice(&18446685277900927104u64.to_le_bytes());
        for v in [7064u32, 3856, 1, 1073807364] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&588734464u64.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&[
            0xe0, 0x5e, 0xb3, 0xfc, 0x88, 0xb4, 0xff, 0xff, 0, 0, 0, 0, 0x88, 0xb4, 0xff, 0xff,
        ]);
        b.extend_from_slice(
            Sid::parse("S-1-5-21-4151223144-1238771585-1724997581-1000")
                .unwrap()
                .as_bytes(),
        );
        b.extend_from_slice(b"OneDrive.exe\0");
        for u in one_drive().command_line.encode_utf16().chain([0, 0, 0]) {
            b.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(decode(&b, 4, 8), Ok(one_drive()));
    }

    #[test]
    fn versions_2_and_3_lack_the_later_fields() {
        let mut r = one_drive();
        r.flags = 0;
        r.directory_table_base = 0;
        let v2 = encode(&r, 2, 8, 1);
        assert_eq!(decode(&v2, 2, 8), Ok(r.clone()));
        r.directory_table_base = 0x1000;
        let v3 = encode(&r, 3, 8, 1);
        assert_eq!(decode(&v3, 3, 8), Ok(r.clone()));
        // Defunct (version 5): V4 and the exit time after it.
        let mut v5 = encode(&one_drive(), 4, 8, 1);
        v5.extend_from_slice(&132404548206521099u64.to_le_bytes());
        assert_eq!(decode(&v5, 5, 8), Ok(one_drive()));
    }

    #[test]
    fn a_null_sid_takes_four_bytes() {
        // The Idle process at rundown: no SID, no command line.
        let idle = ProcessRecord {
            image_file_name: "Idle".into(),
            ..ProcessRecord::default()
        };
        let b = encode(&idle, 4, 8, 0);
        assert_eq!(b.len(), 8 + 16 + 8 + 4 + 4 + 5 + 2 + 2 + 2);
        assert_eq!(decode(&b, 4, 8), Ok(idle));
    }

    #[test]
    fn hostile_payloads_are_refused_or_cut_never_panic() {
        let good = encode(&one_drive(), 4, 8, 0xffff_0000_1234_5678);
        // Every truncation: an error in the fixed part, shorter strings after it.
        for n in 0..good.len() {
            match decode(&good[..n], 4, 8) {
                Ok(r) => {
                    assert_eq!(r.pid, 7064);
                    assert!(n >= 36 + 16 + 28, "decoded from {n} bytes");
                }
                Err(e) => assert!(matches!(e, DecodeError::Short | DecodeError::Sid), "{e}"),
            }
        }
        assert_eq!(decode(&good, 4, 6), Err(DecodeError::PointerSize));
        assert_eq!(decode(&good, 1, 8), Err(DecodeError::Version));
        assert_eq!(decode(&good, 6, 8), Err(DecodeError::Version));
        // A SID with revision 2, or 200 sub-authorities.
        let mut bad = good.clone();
        bad[52] = 2;
        assert_eq!(decode(&bad, 4, 8), Err(DecodeError::Sid));
        let mut bad = good.clone();
        bad[53] = 200;
        assert_eq!(decode(&bad, 4, 8), Err(DecodeError::Sid));
        // Odd-length and unterminated strings.
        let mut odd = good[..good.len() - 7].to_vec();
        odd.push(0x41);
        let r = decode(&odd, 4, 8).unwrap();
        assert_eq!(r.image_file_name, "OneDrive.exe");
        // Not UTF-8 in the ANSI name: replaced, not refused.
        let mut latin = good.clone();
        latin[80] = 0xe9;
        assert!(
            decode(&latin, 4, 8)
                .unwrap()
                .image_file_name
                .contains('\u{fffd}')
        );
    }
}
