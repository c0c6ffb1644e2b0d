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
//! - Microsoft-Windows-Kernel-Network 12, 28 (TCP connection attempted) and 42, 58 (UDP data
//!   sent), version 0 (the only version in the manifests of Windows 7 to Windows 10 19H2 as
//!   transcribed in repnz/etw-providers-docs): `PID` UInt32, `size` UInt32, `daddr` and `saddr`
//!   (4 bytes for 12 and 42, 16 for 28 and 58, network order), `dport` and `sport` (UInt16 in
//!   network order), then the TCP options, `seqnum` and `connid`, which are not read.
//!
//! Bounds-checked; a payload short of a field the mapping needs gives `None`.
//!
//! Live, the versions listed here ([`is_known`]) are decoded by these functions too, so that
//! replay runs what the live sensor runs; a later version (a Windows newer than the manifests
//! these layouts were read from) goes to TDH, which reads the host's own manifest.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::{
    fields::{Fields, Source, Value},
    schema::{dns_client, kernel_network, kernel_process},
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

    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        let b = self.data.get(self.at..self.at.checked_add(N)?)?;
        self.at += N;
        b.try_into().ok()
    }

    /// A UInt16 in network byte order (out-type `win:Port`).
    fn port(&mut self) -> Option<u16> {
        self.bytes::<2>().map(u16::from_be_bytes)
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
        (Source::KernelNetwork, id) => kernel_network::EVENTS.contains(&id) && version == 0,
        _ => false,
    }
}

/// The fields of `source`'s event `id` (Kernel-Process or DNS-Client).
pub fn fields(source: Source, id: u16, version: u8, payload: &[u8]) -> Option<Fields> {
    match source {
        Source::KernelProcess => kernel_process(id, version, payload),
        Source::DnsClient => dns_client(id, payload),
        Source::KernelNetwork => kernel_network(id, payload),
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

/// The fields of a Kernel-Network event (`id` 12, 28, 42 or 58): `PID`, `daddr`, `saddr`,
/// `dport`, `sport` (ports in host order).
pub fn kernel_network(id: u16, payload: &[u8]) -> Option<Fields> {
    let mut c = Cursor {
        data: payload,
        at: 0,
    };
    let pid = c.u32()?;
    c.u32()?; // size
    let (daddr, saddr) = match id {
        kernel_network::TCP_CONNECT_V4 | kernel_network::UDP_SEND_V4 => (
            IpAddr::V4(Ipv4Addr::from(c.bytes::<4>()?)),
            IpAddr::V4(Ipv4Addr::from(c.bytes::<4>()?)),
        ),
        kernel_network::TCP_CONNECT_V6 | kernel_network::UDP_SEND_V6 => (
            IpAddr::V6(Ipv6Addr::from(c.bytes::<16>()?)),
            IpAddr::V6(Ipv6Addr::from(c.bytes::<16>()?)),
        ),
        _ => return None,
    };
    let dport = c.port()?;
    let sport = c.port()?;
    Some(
        Fields::new()
            .with("PID", Value::U32(pid))
            .with("daddr", Value::Ip(daddr))
            .with("saddr", Value::Ip(saddr))
            .with("dport", Value::U32(dport.into()))
            .with("sport", Value::U32(sport.into())),
    )
}

/// The payload of a Kernel-Network TCP connect (12 or 28, by the addresses' family) or UDP send
/// (42 or 58) of `size` bytes from `src` to `dst` by process `pid`, with the whole template
/// (for tests and fixtures). Returns the event id with it.
pub fn encode_kernel_network(
    tcp: bool,
    pid: u32,
    size: u32,
    src: SocketAddr,
    dst: SocketAddr,
) -> (u16, Vec<u8>) {
    let mut b = pid.to_le_bytes().to_vec();
    b.extend_from_slice(&size.to_le_bytes());
    let v6 = dst.is_ipv6();
    for a in [dst.ip(), src.ip()] {
        match a {
            IpAddr::V4(a) if !v6 => b.extend_from_slice(&a.octets()),
            IpAddr::V4(a) => b.extend_from_slice(&a.to_ipv6_mapped().octets()),
            IpAddr::V6(a) => b.extend_from_slice(&a.octets()),
        }
    }
    b.extend_from_slice(&dst.port().to_be_bytes());
    b.extend_from_slice(&src.port().to_be_bytes());
    if tcp {
        // mss, sackopt, tsopt, wsopt, rcvwin, rcvwinscale, sndwinscale.
        for v in [1460u16, 1, 0, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&[8, 0, 8, 0]);
    }
    b.extend_from_slice(&0u32.to_le_bytes()); // seqnum
    b.extend_from_slice(&0u32.to_le_bytes()); // connid
    let id = match (tcp, v6) {
        (true, false) => kernel_network::TCP_CONNECT_V4,
        (true, true) => kernel_network::TCP_CONNECT_V6,
        (false, false) => kernel_network::UDP_SEND_V4,
        (false, true) => kernel_network::UDP_SEND_V6,
    };
    (id, b)
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
    fn kernel_network_events_decode_from_the_documented_layout() {
        // TCPv4 12, written byte by byte after the template: PID 5832, size 0,
        // daddr 3.134.125.175, saddr 192.168.1.20, dport 443, sport 50123 (network order).
        let mut v4 = Vec::new();
        v4.extend_from_slice(&5832u32.to_le_bytes());
        v4.extend_from_slice(&0u32.to_le_bytes());
        v4.extend_from_slice(&[3, 134, 125, 175, 192, 168, 1, 20]);
        v4.extend_from_slice(&[0x01, 0xbb, 0xc3, 0xcb]);
        // mss, sackopt, tsopt, wsopt, rcvwin, rcvwinscale, sndwinscale, seqnum, connid.
        v4.extend_from_slice(&[0; 24]);
        let f = kernel_network(12, &v4).unwrap();
        assert_eq!(f.u32("PID"), Some(5832));
        assert_eq!(f.ip("daddr"), Some("3.134.125.175".parse().unwrap()));
        assert_eq!(f.ip("saddr"), Some("192.168.1.20".parse().unwrap()));
        assert_eq!((f.u32("dport"), f.u32("sport")), (Some(443), Some(50123)));
        assert_eq!(
            fields(Source::KernelNetwork, 12, 0, &v4),
            Some(f.clone()),
            "the live path"
        );
        // The encoder writes the same fields, and the whole template.
        let (id, enc) = encode_kernel_network(
            true,
            5832,
            0,
            "192.168.1.20:50123".parse().unwrap(),
            "3.134.125.175:443".parse().unwrap(),
        );
        assert_eq!((id, &enc[..20], enc.len()), (12, &v4[..20], v4.len()));
        // UDPv6 58.
        let (id, v6) = encode_kernel_network(
            false,
            77,
            1200,
            "[2001:db8::2]:61000".parse().unwrap(),
            "[2606:4700:a0::1]:7844".parse().unwrap(),
        );
        assert_eq!(id, 58);
        let f = kernel_network(58, &v6).unwrap();
        assert_eq!(f.ip("daddr"), Some("2606:4700:a0::1".parse().unwrap()));
        assert_eq!((f.u32("dport"), f.u32("sport")), (Some(7844), Some(61000)));
        // The same bytes as an IPv4 event read other addresses: the id decides the family.
        assert_ne!(kernel_network(42, &v6).unwrap().ip("daddr"), f.ip("daddr"));
        assert!(kernel_network(13, &v4).is_none(), "not one of the four");
        assert!(is_known(Source::KernelNetwork, 58, 0));
        assert!(
            !is_known(Source::KernelNetwork, 58, 1),
            "a later version: TDH"
        );
        assert!(!is_known(Source::KernelNetwork, 10, 0));
    }

    #[test]
    fn kernel_network_short_and_hostile_payloads() {
        for (tcp, dst) in [
            (true, "3.134.125.175:443"),
            (false, "[2606:4700:a0::1]:7844"),
        ] {
            let dst: SocketAddr = dst.parse().unwrap();
            let src = SocketAddr::new(dst.ip(), 1);
            let (id, full) = encode_kernel_network(tcp, 1, 2, src, dst);
            let prefix = if dst.is_ipv6() { 44 } else { 20 };
            for n in 0..full.len() {
                assert_eq!(kernel_network(id, &full[..n]).is_some(), n >= prefix, "{n}");
            }
        }
        // Any bytes: a result or none, never a panic; every id.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            for id in 0..64 {
                let _ = kernel_network(id, &bytes);
            }
        }
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
