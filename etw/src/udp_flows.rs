//! Which UDP datagrams start a flow: Microsoft-Windows-Kernel-Network logs an event per
//! datagram sent (42, 58), and a flow should be one connection event, as on Linux (where the
//! kernel side reports a UDP socket's new destinations, not its datagrams). A flow is a process,
//! its local port and the destination; its first datagram is reported, the ones that follow
//! are counted, and a flow silent for [`UDP_IDLE`] is forgotten (its next datagram is reported
//! again, as a new flow).
//!
//! Bounded: at most [`MAX_FLOWS`] flows are remembered; to make room, the flow that has been
//! silent longest goes first (counted in `forgotten`, since its next datagram is reported
//! again). Each flow is queued once; amortised constant work per datagram: a flow's place in
//! the queue is refreshed only when it reaches the front.
//!
//! Time is FILETIME (100 ns units), the events' own.
//!
//! Uses: `fields` (the time unit).

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
};

use crate::fields::FILETIME_SECOND;

/// Flows remembered at most.
pub const MAX_FLOWS: usize = 16_384;
/// Silence after which a flow is forgotten: 2 minutes.
pub const UDP_IDLE: i64 = 120 * FILETIME_SECOND;

/// A flow: process id, local port, destination.
type Key = (u32, u16, SocketAddr);

/// What the flow table saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpCounters {
    /// Datagrams of flows already reported (no event).
    pub repeats: u64,
    /// Flows forgotten to make room before they fell silent.
    pub forgotten: u64,
}

/// The UDP flows reported and still live.
#[derive(Debug, Default)]
pub struct UdpFlows {
    /// Last datagram of each flow.
    last: HashMap<Key, i64>,
    /// Flows in the order they were last queued, with the time they were queued at.
    order: VecDeque<(Key, i64)>,
    pub counters: UdpCounters,
}

impl UdpFlows {
    pub fn new() -> Self {
        Self::default()
    }

    /// Flows remembered now.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    /// A datagram from `pid`'s local port `sport` to `dest` at `now`: whether it starts a flow
    /// (to be reported).
    pub fn datagram(&mut self, pid: u32, sport: u16, dest: SocketAddr, now: i64) -> bool {
        let key = (pid, sport, dest);
        if let Some(last) = self.last.get_mut(&key) {
            let silent = now.saturating_sub(*last) >= UDP_IDLE;
            *last = (*last).max(now);
            if !silent {
                self.counters.repeats += 1;
            }
            // Its place in the queue is refreshed when it reaches the front.
            return silent;
        }
        while self.last.len() >= MAX_FLOWS {
            self.make_room(now);
        }
        self.last.insert(key, now);
        self.order.push_back((key, now));
        true
    }

    /// Forgets the flows silent for [`UDP_IDLE`] by `now`.
    pub fn expire(&mut self, now: i64) {
        while let Some(&(key, queued)) = self.order.front() {
            if now.saturating_sub(queued) < UDP_IDLE {
                break;
            }
            self.order.pop_front();
            match self.last.get(&key) {
                Some(&last) if now.saturating_sub(last) >= UDP_IDLE => {
                    self.last.remove(&key);
                }
                Some(&last) => self.order.push_back((key, last)),
                None => {}
            }
        }
    }

    /// Frees one place: the flow silent longest.
    fn make_room(&mut self, now: i64) {
        let Some((key, queued)) = self.order.pop_front() else {
            // Cannot happen (every flow is queued once); never loop on it.
            self.last.clear();
            return;
        };
        match self.last.get(&key) {
            Some(&last) if last == queued => {
                self.last.remove(&key);
                if now.saturating_sub(last) < UDP_IDLE {
                    self.counters.forgotten += 1;
                }
            }
            // Heard from since it was queued: to the back, with its last time.
            Some(&last) => self.order.push_back((key, last)),
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dst(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_flow_is_reported_once_until_it_falls_silent() {
        let mut u = UdpFlows::new();
        let cf = dst("198.41.192.77:7844");
        assert!(u.datagram(7, 61000, cf, 0));
        for i in 1..100 {
            assert!(!u.datagram(7, 61000, cf, i * FILETIME_SECOND));
        }
        assert_eq!(u.counters.repeats, 99);
        // Another port, another process, another destination: other flows.
        assert!(u.datagram(7, 61001, cf, 100 * FILETIME_SECOND));
        assert!(u.datagram(8, 61000, cf, 100 * FILETIME_SECOND));
        assert!(u.datagram(7, 61000, dst("198.41.192.78:7844"), 100 * FILETIME_SECOND));
        // Silent for UDP_IDLE after its last datagram (99 s): a new flow.
        let later = 99 * FILETIME_SECOND + UDP_IDLE;
        assert!(!u.datagram(7, 61000, cf, later - 1));
        assert!(u.datagram(7, 61000, cf, later - 1 + UDP_IDLE));
        assert_eq!(u.counters.forgotten, 0);
    }

    #[test]
    fn silent_flows_expire_and_live_ones_stay() {
        let mut u = UdpFlows::new();
        let a = dst("192.0.2.1:53");
        let b = dst("192.0.2.2:443");
        u.datagram(1, 1000, a, 0);
        u.datagram(1, 1001, b, 0);
        u.datagram(1, 1001, b, UDP_IDLE - 1);
        u.expire(UDP_IDLE);
        assert_eq!(u.len(), 1, "a went silent, b did not");
        assert!(!u.datagram(1, 1001, b, UDP_IDLE + 1));
        u.expire(3 * UDP_IDLE);
        assert!(u.is_empty());
        assert!(u.order.is_empty());
    }

    #[test]
    fn bounded_the_silent_longest_going_first() {
        let mut u = UdpFlows::new();
        let d = dst("192.0.2.9:443");
        for i in 0..MAX_FLOWS as u32 {
            assert!(u.datagram(i, 1, d, i64::from(i)));
        }
        // Flow 0 speaks again: flow 1 is now the silent longest.
        assert!(!u.datagram(0, 1, d, MAX_FLOWS as i64));
        assert!(u.datagram(u32::MAX, 1, d, MAX_FLOWS as i64 + 1));
        assert_eq!(u.len(), MAX_FLOWS);
        assert_eq!(u.counters.forgotten, 1);
        assert!(!u.datagram(0, 1, d, MAX_FLOWS as i64 + 2), "kept");
        assert!(u.datagram(1, 1, d, MAX_FLOWS as i64 + 3), "forgotten");
        assert_eq!(u.order.len(), u.len(), "each flow queued once");
    }
}
