//! The user data of the manifest providers' events this sensor maps, decoded from the
//! manifests' templates (no TDH, so that `.etl` replay works on any OS). Live, ETW's TDH
//! decodes the same events (`consumer.rs`); both give the same [`Fields`] names.
//!
//! Templates (`wevtutil gp <provider> /ge /gm`; as transcribed in dissect.etl's manifest
//! collection and OTRF/OSSEM's data dictionaries):
//! - Microsoft-Windows-Kernel-Process 1 ProcessStart: v0 `ProcessID` UInt32, `CreateTime`
//!   FILETIME, `ParentProcessID` UInt32, `SessionID` UInt32, `ImageName` UnicodeString; v1
//!   adds `Flags` UInt32 before `ImageName`; v2 adds `ImageChecksum`, `TimeDateStamp` UInt32,
//!   `PackageFullName`, `PackageRelativeAppId` after it; v3 adds `ProcessSequenceNumber` UInt64
//!   after `ProcessID`, `ParentProcessSequenceNumber` UInt64 after `ParentProcessID`, and
//!   `ProcessTokenElevationType`, `ProcessTokenIsElevated` UInt32 and `MandatoryLabel` SID after
//!   `Flags`. Later versions append.
//! - Microsoft-Windows-Kernel-Process 2 ProcessStop: `ProcessID` first in every version.
//! - Microsoft-Windows-DNS-Client 3006 v0: `QueryName` UnicodeString, `QueryType` UInt32,
//!   `QueryOptions` UInt64, `ServerList` UnicodeString, then four UInt32; 3008 v0: `QueryName`,
//!   `QueryType`, `QueryOptions`, `QueryStatus` UInt32, `QueryResults` UnicodeString.
//!
//! Bounds-checked; a payload short of a field the mapping needs gives `None`.
//!
//! Live, the versions listed here ([`is_known`]) are decoded by these functions too, so that
//! replay runs what the live sensor runs; a later version (a Windows newer than the manifests
//! these layouts were read from) goes to TDH, which reads the host's own manifest.

use crate::{
    fields::{Fields, Source, Value},
    schema::{dns_client, kernel_process},
    sid::Sid,
};

struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn skip(&mut self, n: usize) -> Option<()> {
        let end = self.at.checked_add(n)?;
        (end <= self.data.len()).then(|| self.at = end)
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.data.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.data.get(self.at..self.at + 8)?;
        self.at += 8;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }

    /// A NUL-terminated UTF-16LE string; `None` when it does not end within the payload.
    fn utf16(&mut self) -> Option<String> {
        let rest = self.data.get(self.at..)?;
        let mut units = Vec::new();
        for c in rest.chunks_exact(2) {
            let u = u16::from_le_bytes([c[0], c[1]]);
            if u == 0 {
                self.at += 2 * units.len() + 2;
                return Some(String::from_utf16_lossy(&units));
            }
            units.push(u);
        }
        None
    }

    fn sid(&mut self) -> Option<()> {
        let sid = Sid::from_bytes(self.data.get(self.at..)?)?;
        self.skip(sid.as_bytes().len())
    }
}

/// Whether the layout of `source`'s event `id` at `version` is one of those above.
pub fn is_known(source: Source, id: u16, version: u8) -> bool {
    match (source, id) {
        (Source::KernelProcess, kernel_process::PROCESS_START) => version <= 3,
        // ProcessID comes first in every version.
        (Source::KernelProcess, kernel_process::PROCESS_STOP) => true,
        (Source::DnsClient, dns_client::QUERY | dns_client::COMPLETED) => version == 0,
        _ => false,
    }
}

/// The fields of `source`'s event `id` (Kernel-Process or DNS-Client).
pub fn fields(source: Source, id: u16, version: u8, payload: &[u8]) -> Option<Fields> {
    match source {
        Source::KernelProcess => kernel_process(id, version, payload),
        Source::DnsClient => dns_client(id, payload),
        Source::KernelTrace => None,
    }
}

/// The fields of a Kernel-Process event (`id` 1 or 2) of `version`.
pub fn kernel_process(id: u16, version: u8, payload: &[u8]) -> Option<Fields> {
    let mut c = Cursor {
        data: payload,
        at: 0,
    };
    let pid = c.u32()?;
    let f = Fields::new().with("ProcessID", Value::U32(pid));
    match id {
        kernel_process::PROCESS_STOP => Some(f),
        kernel_process::PROCESS_START => {
            if version >= 3 {
                c.u64()?; // ProcessSequenceNumber
            }
            c.u64()?; // CreateTime
            let ppid = c.u32()?;
            if version >= 3 {
                c.u64()?; // ParentProcessSequenceNumber
            }
            c.u32()?; // SessionID
            if version >= 1 {
                c.u32()?; // Flags
            }
            if version >= 3 {
                c.u32()?; // ProcessTokenElevationType
                c.u32()?; // ProcessTokenIsElevated
                c.sid()?; // MandatoryLabel
            }
            let image = c.utf16()?;
            Some(
                f.with("ParentProcessID", Value::U32(ppid))
                    .with("ImageName", Value::Str(image)),
            )
        }
        _ => None,
    }
}

/// The fields of a DNS-Client event (`id` 3006 or 3008).
pub fn dns_client(id: u16, payload: &[u8]) -> Option<Fields> {
    let mut c = Cursor {
        data: payload,
        at: 0,
    };
    let name = c.utf16()?;
    let qtype = c.u32()?;
    let f = Fields::new()
        .with("QueryName", Value::Str(name))
        .with("QueryType", Value::U32(qtype));
    match id {
        dns_client::QUERY => Some(f),
        dns_client::COMPLETED => {
            c.u64()?; // QueryOptions
            let status = c.u32()?;
            let results = c.utf16()?;
            Some(
                f.with("QueryStatus", Value::U32(status))
                    .with("QueryResults", Value::Str(results)),
            )
        }
        _ => None,
    }
}

fn wide(b: &mut Vec<u8>, s: &str) {
    for u in s.encode_utf16().chain([0]) {
        b.extend_from_slice(&u.to_le_bytes());
    }
}

/// The payload of a Kernel-Process ProcessStart of version 3 (for tests and fixtures).
pub fn encode_process_start_v3(pid: u32, ppid: u32, create_time: i64, image_name: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&pid.to_le_bytes());
    b.extend_from_slice(&4711u64.to_le_bytes());
    b.extend_from_slice(&create_time.to_le_bytes());
    b.extend_from_slice(&ppid.to_le_bytes());
    b.extend_from_slice(&4700u64.to_le_bytes());
    for v in [1u32, 0, 1, 0] {
        // SessionID, Flags, ProcessTokenElevationType, ProcessTokenIsElevated
        b.extend_from_slice(&v.to_le_bytes());
    }
    // MandatoryLabel: S-1-16-8192 (medium integrity).
    b.extend_from_slice(&[1, 1, 0, 0, 0, 0, 0, 16, 0, 0x20, 0, 0]);
    wide(&mut b, image_name);
    b.extend_from_slice(&[0; 8]); // ImageChecksum, TimeDateStamp
    wide(&mut b, "");
    wide(&mut b, "");
    b
}

/// The payload of a Kernel-Process ProcessStop (version 2: `ProcessID`, `ProcessSequenceNumber`,
/// `CreateTime`, `ExitTime`, `ExitCode`, ...; only the first is read).
pub fn encode_process_stop(pid: u32) -> Vec<u8> {
    let mut b = pid.to_le_bytes().to_vec();
    b.extend_from_slice(&[0; 36]);
    b.extend_from_slice(b"x.exe\0");
    b
}

/// The payload of a DNS-Client 3006.
pub fn encode_dns_query(name: &str, qtype: u32) -> Vec<u8> {
    let mut b = Vec::new();
    wide(&mut b, name);
    b.extend_from_slice(&qtype.to_le_bytes());
    b.extend_from_slice(&0x4000_6000u64.to_le_bytes());
    wide(&mut b, "");
    b.extend_from_slice(&[0; 16]);
    b
}

/// The payload of a DNS-Client 3008.
pub fn encode_dns_completed(name: &str, qtype: u32, status: u32, results: &str) -> Vec<u8> {
    let mut b = Vec::new();
    wide(&mut b, name);
    b.extend_from_slice(&qtype.to_le_bytes());
    b.extend_from_slice(&0x4000_6000u64.to_le_bytes());
    b.extend_from_slice(&status.to_le_bytes());
    wide(&mut b, results);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_start_versions_decode() {
        let v3 = encode_process_start_v3(5832, 4000, 7, r"\Device\HarddiskVolume3\x\ngrok.exe");
        let f = kernel_process(1, 3, &v3).unwrap();
        assert_eq!(f.u32("ProcessID"), Some(5832));
        assert_eq!(f.u32("ParentProcessID"), Some(4000));
        assert_eq!(
            f.str("ImageName"),
            Some(r"\Device\HarddiskVolume3\x\ngrok.exe")
        );
        // Version 1: ProcessID, CreateTime, ParentProcessID, SessionID, Flags, ImageName.
        let mut v1 = Vec::new();
        v1.extend_from_slice(&3676u32.to_le_bytes());
        v1.extend_from_slice(&0u64.to_le_bytes());
        v1.extend_from_slice(&3508u32.to_le_bytes());
        v1.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
        wide(&mut v1, r"\Device\HarddiskVolume2\Test.x64.exe");
        let f = kernel_process(1, 1, &v1).unwrap();
        assert_eq!(f.u32("ParentProcessID"), Some(3508));
        assert_eq!(
            f.str("ImageName"),
            Some(r"\Device\HarddiskVolume2\Test.x64.exe")
        );
        // Version 0 has no Flags: the same bytes read as v0 take Flags for the name's start.
        assert_ne!(
            kernel_process(1, 0, &v1).and_then(|f| f.str("ImageName").map(str::to_owned)),
            Some(r"\Device\HarddiskVolume2\Test.x64.exe".into())
        );
        assert_eq!(
            kernel_process(2, 1, &encode_process_stop(9))
                .unwrap()
                .u32("ProcessID"),
            Some(9)
        );
    }

    #[test]
    fn dns_events_decode() {
        let f = dns_client(3006, &encode_dns_query("x.ngrok.io", 1)).unwrap();
        assert_eq!(f.str("QueryName"), Some("x.ngrok.io"));
        assert_eq!(f.u32("QueryType"), Some(1));
        let f = dns_client(
            3008,
            &encode_dns_completed("x.ngrok.io", 28, 0, "::ffff:3.134.125.175;"),
        )
        .unwrap();
        assert_eq!(f.u32("QueryStatus"), Some(0));
        assert_eq!(f.str("QueryResults"), Some("::ffff:3.134.125.175;"));
        assert!(dns_client(3020, &encode_dns_query("x", 1)).is_none());
    }

    #[test]
    fn the_known_layouts_are_those_documented() {
        assert!(is_known(Source::KernelProcess, 1, 3));
        assert!(
            !is_known(Source::KernelProcess, 1, 4),
            "a later version goes to TDH"
        );
        assert!(is_known(Source::KernelProcess, 2, 7));
        assert!(is_known(Source::DnsClient, 3008, 0));
        assert!(!is_known(Source::DnsClient, 3008, 1));
        assert!(!is_known(Source::DnsClient, 3020, 0));
        let f = fields(Source::DnsClient, 3006, 0, &encode_dns_query("a.b", 28)).unwrap();
        assert_eq!(f.u32("QueryType"), Some(28));
        assert!(fields(Source::KernelTrace, 1, 4, &[0; 64]).is_none());
    }

    #[test]
    fn short_payloads_give_none() {
        let full = encode_dns_completed("x.ngrok.io", 28, 0, "1.2.3.4;");
        for n in 0..full.len() {
            assert!(dns_client(3008, &full[..n]).is_none(), "{n}");
        }
        let start = encode_process_start_v3(1, 2, 3, "a");
        for n in 0..start.len() - 8 - 4 {
            assert!(kernel_process(1, 3, &start[..n]).is_none(), "{n}");
        }
    }
}
