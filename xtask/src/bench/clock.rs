//! The clocks the bench compares: CLOCK_MONOTONIC, which the workers, the latency launcher and
//! the reader of the sensor's stdout share, and CLOCK_REALTIME, against which the sensor's own
//! RFC 3339 `time` field is read.
//!
//! May use: nix, humantime (a leaf of the bench).

use std::time::UNIX_EPOCH;

use nix::time::{ClockId, clock_gettime};

/// CLOCK_MONOTONIC in nanoseconds.
pub fn mono_ns() -> u64 {
    clock_ns(ClockId::CLOCK_MONOTONIC)
}

/// CLOCK_REALTIME in nanoseconds since the epoch.
pub fn real_ns() -> u64 {
    clock_ns(ClockId::CLOCK_REALTIME)
}

fn clock_ns(clock: ClockId) -> u64 {
    // Both clocks always exist.
    let ts = clock_gettime(clock).expect("clock_gettime");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// Nanoseconds since the epoch of an RFC 3339 UTC time as the sensor writes it
/// (`2026-11-23T01:58:59.585378Z`).
pub fn rfc3339_ns(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(s).ok()?;
    u64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_nanos()).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339() {
        assert_eq!(
            super::rfc3339_ns("1970-01-01T00:00:01.5Z"),
            Some(1_500_000_000)
        );
        assert_eq!(
            super::rfc3339_ns("2026-11-23T01:58:59.585378Z"),
            Some(1_795_399_139_585_378_000)
        );
        assert_eq!(super::rfc3339_ns("2026-11-23 01:58:59Z"), None);
    }

    #[test]
    fn clocks_move() {
        let (a, b) = (super::mono_ns(), super::mono_ns());
        assert!(b >= a);
        assert!(super::real_ns() > 1_700_000_000_000_000_000);
    }
}
