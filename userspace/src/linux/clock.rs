//! Kernel timestamps (`CLOCK_BOOTTIME` nanoseconds) to wall-clock time.
//!
//! Uses: nothing of this crate.

use std::time::{Duration, SystemTime};

use nix::time::{ClockId, clock_gettime};

/// Converts boot-time nanoseconds to [`SystemTime`]. The offset between the clocks is taken
/// when created and on [`BootClock::resync`] (the sensor calls it with each stats tick, so a
/// wall-clock step is followed within one interval).
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// Wall-clock time at boot-time zero, in nanoseconds since the Unix epoch.
    epoch_at_boot_ns: i128,
}

impl BootClock {
    pub fn new() -> Self {
        let mut c = BootClock {
            epoch_at_boot_ns: 0,
        };
        c.resync();
        c
    }

    pub fn resync(&mut self) {
        let ns = |id| {
            clock_gettime(id)
                .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
                .unwrap_or(0)
        };
        let boot = ns(ClockId::CLOCK_BOOTTIME);
        let real = ns(ClockId::CLOCK_REALTIME);
        self.epoch_at_boot_ns = real - boot;
    }

    /// Boot-time nanoseconds, as the kernel stamps them now.
    pub fn now_boot_ns() -> u64 {
        clock_gettime(ClockId::CLOCK_BOOTTIME)
            .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
            .unwrap_or(0)
    }

    pub fn to_system_time(&self, boot_ns: u64) -> SystemTime {
        let ns = self.epoch_at_boot_ns + boot_ns as i128;
        if ns <= 0 {
            return SystemTime::UNIX_EPOCH;
        }
        SystemTime::UNIX_EPOCH + Duration::from_nanos(ns as u64)
    }
}

impl Default for BootClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_maps_to_now() {
        let clock = BootClock::new();
        let t = clock.to_system_time(BootClock::now_boot_ns());
        let skew = SystemTime::now()
            .duration_since(t)
            .unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_secs(1), "skew {skew:?}");
    }
}
