//! One ETW event as the rest of this crate sees it: a small header (where it came from, its id,
//! opcode, process id and time) and its properties by name, copied out of the ETW buffer.
//!
//! On Windows the ETW callback fills a [`RawEvent`] (the kernel's Process events from their
//! user data through `process_v4.rs`, the manifest providers' from ferrisetw's `Parser`, see
//! `consumer.rs`) and hands it over a channel; `.etl` replay fills it from the trace file
//! (`replay.rs`); the tests build the same structure from the documented event layouts (see
//! `schema.rs`). Everything after that point is the same code.

use std::{
    net::IpAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::sid::Sid;

/// Which provider (or kernel event class) an event comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Microsoft-Windows-Kernel-Process, a manifest provider in the user session.
    KernelProcess,
    /// The kernel logger's `Process` event class (MOF), in the kernel session.
    KernelTrace,
    /// Microsoft-Windows-DNS-Client, a manifest provider in the user session.
    DnsClient,
    /// Microsoft-Windows-Kernel-Network, a manifest provider in the user session.
    KernelNetwork,
}

/// The parts of `EVENT_HEADER` the mapping uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub source: Source,
    /// `EventDescriptor.Id` (manifest providers; 0 for kernel MOF events).
    pub event_id: u16,
    /// `EventDescriptor.Opcode` (the event type of a kernel MOF event: 1 Start, 3 DCStart, ...).
    pub opcode: u8,
    /// `EventDescriptor.Version`.
    pub version: u8,
    /// `EVENT_HEADER.ProcessId`: the process that logged the event. For DNS-Client's in-process
    /// events (3006, 3008) this is the process that asked.
    pub pid: u32,
    /// `EVENT_HEADER.TimeStamp` as FILETIME: 100 ns units since 1601-01-01 UTC (what
    /// `ProcessTrace` delivers unless raw timestamps are asked for).
    pub timestamp: i64,
    /// Size of a pointer in the logging process or kernel: 4 or 8 (from the header flags, see
    /// [`pointer_size`]); it sizes the `TOKEN_USER` in front of a WBEM SID.
    pub pointer_size: u8,
}

/// A decoded property value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    U32(u32),
    U64(u64),
    Str(String),
    Bytes(Vec<u8>),
    /// A security identifier (the kernel Process event's `UserSID`, decoded).
    Sid(Sid),
    /// An IPv4 or IPv6 address (Kernel-Network's `daddr`, `saddr`).
    Ip(IpAddr),
}

/// An event's properties, by the names its manifest (or MOF class) gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    pub fn new() -> Fields {
        Fields(Vec::new())
    }

    /// Adds (or replaces) `name`.
    pub fn insert(&mut self, name: &'static str, value: Value) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    /// `self` with `name` set: for building fixtures.
    pub fn with(mut self, name: &'static str, value: Value) -> Fields {
        self.insert(name, value);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// A 32-bit integer (a 64-bit one that fits is accepted too).
    pub fn u32(&self, name: &str) -> Option<u32> {
        match self.get(name)? {
            Value::U32(v) => Some(*v),
            Value::U64(v) => u32::try_from(*v).ok(),
            _ => None,
        }
    }

    pub fn u64(&self, name: &str) -> Option<u64> {
        match self.get(name)? {
            Value::U32(v) => Some(u64::from(*v)),
            Value::U64(v) => Some(*v),
            _ => None,
        }
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        match self.get(name)? {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        match self.get(name)? {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn ip(&self, name: &str) -> Option<IpAddr> {
        match self.get(name)? {
            Value::Ip(a) => Some(*a),
            _ => None,
        }
    }

    pub fn sid(&self, name: &str) -> Option<&Sid> {
        match self.get(name)? {
            Value::Sid(s) => Some(s),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One event, owned: what crosses the channel from the ETW callback to the main loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub header: Header,
    pub fields: Fields,
}

/// 100 ns intervals between 1601-01-01 and 1970-01-01 (both UTC).
const FILETIME_UNIX_EPOCH: i64 = 116_444_736_000_000_000;

/// The wall-clock time of a FILETIME value; times before 1970 become the Unix epoch.
pub fn filetime_to_system_time(filetime: i64) -> SystemTime {
    let since_unix = filetime.saturating_sub(FILETIME_UNIX_EPOCH);
    if since_unix <= 0 {
        return UNIX_EPOCH;
    }
    let ticks = since_unix as u64;
    UNIX_EPOCH + Duration::new(ticks / 10_000_000, (ticks % 10_000_000) as u32 * 100)
}

/// The FILETIME of a wall-clock time (for fixtures and for "now" in the main loop).
pub fn system_time_to_filetime(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => FILETIME_UNIX_EPOCH
            .saturating_add(i64::try_from(d.as_nanos() / 100).unwrap_or(i64::MAX / 2)),
        Err(_) => FILETIME_UNIX_EPOCH,
    }
}

/// FILETIME ticks per second.
pub const FILETIME_SECOND: i64 = 10_000_000;

/// `EVENT_HEADER_FLAG_32_BIT_HEADER`.
const FLAG_32_BIT: u16 = 0x0020;
/// `EVENT_HEADER_FLAG_64_BIT_HEADER`.
const FLAG_64_BIT: u16 = 0x0040;

/// The pointer size of the event's logger from `EVENT_HEADER.Flags`; 8 when neither flag is
/// set (this sensor is a 64-bit program on a 64-bit kernel).
pub fn pointer_size(flags: u16) -> u8 {
    if flags & FLAG_64_BIT != 0 {
        8
    } else if flags & FLAG_32_BIT != 0 {
        4
    } else {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetime_round_trips_and_clamps() {
        // 2026-11-23T01:02:03.1234567Z
        let t = UNIX_EPOCH + Duration::new(1_795_395_723, 123_456_700);
        let ft = system_time_to_filetime(t);
        assert_eq!(ft, 134_398_693_231_234_567);
        assert_eq!(filetime_to_system_time(ft), t);
        assert_eq!(filetime_to_system_time(0), UNIX_EPOCH);
        assert_eq!(filetime_to_system_time(-5), UNIX_EPOCH);
        assert_eq!(
            filetime_to_system_time(FILETIME_UNIX_EPOCH + FILETIME_SECOND),
            UNIX_EPOCH + Duration::from_secs(1)
        );
    }

    #[test]
    fn pointer_size_follows_the_header_flags() {
        assert_eq!(pointer_size(0x0040 | 0x0200), 8);
        assert_eq!(pointer_size(0x0020), 4);
        assert_eq!(pointer_size(0), 8);
    }

    #[test]
    fn fields_get_by_name_and_type() {
        let mut f = Fields::new()
            .with("ProcessId", Value::U32(42))
            .with("QueryOptions", Value::U64(1 << 40))
            .with("Big", Value::U64(7))
            .with("ImageFileName", Value::Str("ngrok.exe".into()))
            .with("UserSID", Value::Bytes(vec![1, 2]));
        assert_eq!(f.u32("ProcessId"), Some(42));
        assert_eq!(f.u64("ProcessId"), Some(42));
        assert_eq!(f.u32("QueryOptions"), None, "does not fit");
        assert_eq!(f.u32("Big"), Some(7));
        assert_eq!(f.str("ImageFileName"), Some("ngrok.exe"));
        assert_eq!(f.str("ProcessId"), None, "wrong type");
        assert_eq!(f.bytes("UserSID"), Some(&[1u8, 2][..]));
        assert_eq!(f.u32("Missing"), None);
        f.insert("ProcessId", Value::U32(43));
        assert_eq!(f.u32("ProcessId"), Some(43));
        assert_eq!(f.len(), 5);
        assert!(!f.is_empty());
    }
}
