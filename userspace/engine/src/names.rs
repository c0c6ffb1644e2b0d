//! Names for addresses, from the DNS answers the sensor saw: a response's A and AAAA records
//! that answer its question (directly or at the end of a CNAME chain) name their addresses by
//! the name asked, with the process that asked and until the answer's TTL runs out. A later
//! connection to such an address then carries the name, whether its own process resolved it or
//! a resolver daemon did on its behalf (systemd-resolved's NSS module, a local dnsmasq).
//!
//! Bounded: at most [`MAX_ADDRESSES`] addresses, each with its [`MAX_NAMES_PER_ADDRESS`] most
//! recent names (a CDN address serves many); when full, the address learned longest ago goes
//! first. Time is the caller's (nanoseconds on the caller's clock: boot time on Linux, FILETIME
//! times 100 on Windows), so that tests and replay control it.
//!
//! Both sensors use it: the Linux sensor learns from the DNS responses it decodes ([`learn`]),
//! the Windows sensor from Microsoft-Windows-DNS-Client's 3008 `QueryResults`, which give the
//! addresses of the question's name (the CNAME chain already followed) and no TTL
//! ([`learn_addresses`]).
//!
//! Apart from the floors, beside `dns`: it uses `dns` (the decoded messages) and nothing else of
//! the engine, and the engine's floors do not use it.
//!
//! [`learn`]: NameCache::learn
//! [`learn_addresses`]: NameCache::learn_addresses

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Arc,
};

use crate::dns::DnsMessage;

/// Addresses remembered at most.
pub const MAX_ADDRESSES: usize = 16_384;
/// Names remembered per address at most.
pub const MAX_NAMES_PER_ADDRESS: usize = 4;
/// CNAME links followed from the question at most.
const MAX_CHAIN: usize = 16;
/// Shortest time a name is kept, whatever its TTL (a TTL of 0 still names the connection that
/// follows the answer at once).
pub const MIN_KEEP_NS: u64 = 30_000_000_000;
/// Longest time a name is kept, whatever its TTL.
pub const MAX_KEEP_NS: u64 = 86_400_000_000_000;
/// Record types.
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;

/// A name an address was given, by whom and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Learned {
    /// The name asked for (normalized as DNS names are).
    pub name: Arc<str>,
    /// Process id of the process that sent the query (a resolver daemon, perhaps).
    pub asker_pid: u32,
    /// Its name, as far as known.
    pub asker_name: Arc<str>,
    /// Boot-time nanoseconds when the answer came.
    pub learned_ns: u64,
    /// Boot-time nanoseconds after which the name is no longer used.
    pub expires_ns: u64,
}

struct Slot {
    names: Vec<Learned>,
    /// Position in `order` of this address's latest learning.
    generation: u64,
}

/// Address -> names.
#[derive(Default)]
pub struct NameCache {
    slots: HashMap<IpAddr, Slot>,
    /// Addresses in the order they were last learned, with the generation then (an entry whose
    /// generation is not the slot's is stale and skipped).
    order: VecDeque<(IpAddr, u64)>,
    generation: u64,
    /// Addresses forgotten to make room before their TTL ran out.
    pub evicted: u64,
}

impl NameCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Learns from a DNS response `m` that `asker_pid` (named `asker_name`) received at `now`.
    /// Returns how many addresses it named.
    pub fn learn(
        &mut self,
        m: &DnsMessage,
        asker_pid: u32,
        asker_name: &Arc<str>,
        now: u64,
    ) -> usize {
        if !m.response || m.rcode != 0 {
            return 0;
        }
        let Some(question) = m.questions.first() else {
            return 0;
        };
        // The question's name and the names its CNAME chain leads to.
        let mut chain: Vec<&str> = vec![question.name.as_str()];
        for _ in 0..MAX_CHAIN {
            let last = chain[chain.len() - 1];
            let Some(next) = m.answers.iter().find(|a| {
                a.rtype == TYPE_CNAME && a.name == last && !chain.contains(&a.data.as_str())
            }) else {
                break;
            };
            chain.push(&next.data);
        }
        let name: Arc<str> = question.name.as_str().into();
        let mut learned = 0;
        for a in &m.answers {
            if (a.rtype != TYPE_A && a.rtype != TYPE_AAAA) || !chain.contains(&a.name.as_str()) {
                continue;
            }
            let Ok(ip) = a.data.parse::<IpAddr>() else {
                continue;
            };
            let keep = a.ttl as u64 * 1_000_000_000;
            self.insert(ip, learning(&name, (asker_pid, asker_name), now, keep));
            learned += 1;
        }
        learned
    }

    /// Learns that `name` has the addresses `addrs`, as `asker_pid` (named `asker_name`) was
    /// told at `now`, for `keep_ns` (clamped as a TTL is). Returns how many addresses it named.
    pub fn learn_addresses(
        &mut self,
        name: &str,
        addrs: &[IpAddr],
        (asker_pid, asker_name): (u32, &Arc<str>),
        now: u64,
        keep_ns: u64,
    ) -> usize {
        if name.is_empty() {
            return 0;
        }
        let name: Arc<str> = name.into();
        for &ip in addrs {
            self.insert(ip, learning(&name, (asker_pid, asker_name), now, keep_ns));
        }
        addrs.len()
    }

    fn insert(&mut self, ip: IpAddr, l: Learned) {
        let ip = canonical(ip);
        self.generation += 1;
        let generation = self.generation;
        if !self.slots.contains_key(&ip) && self.slots.len() >= MAX_ADDRESSES {
            self.make_room(l.learned_ns);
        }
        let slot = self.slots.entry(ip).or_insert_with(|| Slot {
            names: Vec::new(),
            generation,
        });
        slot.generation = generation;
        // The same name again replaces its older learning.
        slot.names
            .retain(|old| !(old.name == l.name && old.asker_pid == l.asker_pid));
        if slot.names.len() >= MAX_NAMES_PER_ADDRESS {
            slot.names.remove(0);
        }
        slot.names.push(l);
        self.order.push_back((ip, generation));
        // Stale order entries never outnumber live ones by much.
        if self.order.len() > 2 * MAX_ADDRESSES {
            let slots = &self.slots;
            self.order
                .retain(|(ip, g)| slots.get(ip).is_some_and(|s| s.generation == *g));
        }
    }

    /// Frees one slot: the address learned longest ago (after dropping what expired).
    fn make_room(&mut self, now: u64) {
        self.expire(now);
        while self.slots.len() >= MAX_ADDRESSES {
            let Some((ip, g)) = self.order.pop_front() else {
                break;
            };
            if self.slots.get(&ip).is_some_and(|s| s.generation == g) {
                self.slots.remove(&ip);
                self.evicted += 1;
            }
        }
    }

    /// Forgets every name whose time ran out by `now`.
    pub fn expire(&mut self, now: u64) {
        self.slots.retain(|_, s| {
            s.names.retain(|l| l.expires_ns > now);
            !s.names.is_empty()
        });
        let slots = &self.slots;
        self.order
            .retain(|(ip, g)| slots.get(ip).is_some_and(|s| s.generation == *g));
    }

    /// The name of `ip` for a connection by process `pid` at `now`: the latest that `pid` itself
    /// learned, else the latest anyone learned (a resolver daemon's, on its behalf).
    pub fn lookup(&self, ip: IpAddr, pid: u32, now: u64) -> Option<&Learned> {
        let slot = self.slots.get(&canonical(ip))?;
        let live = slot.names.iter().filter(|l| l.expires_ns > now);
        live.clone()
            .filter(|l| l.asker_pid == pid)
            .max_by_key(|l| l.learned_ns)
            .or_else(|| live.max_by_key(|l| l.learned_ns))
    }
}

/// `name` as `asker` was told at `now`, kept `keep_ns` (clamped to [`MIN_KEEP_NS`],
/// [`MAX_KEEP_NS`]).
fn learning(name: &Arc<str>, (pid, asker): (u32, &Arc<str>), now: u64, keep_ns: u64) -> Learned {
    Learned {
        name: name.clone(),
        asker_pid: pid,
        asker_name: asker.clone(),
        learned_ns: now,
        expires_ns: now.saturating_add(keep_ns.clamp(MIN_KEEP_NS, MAX_KEEP_NS)),
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of an IPv4 peer) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use crate::dns::{DnsAnswer, DnsQuestion};

    use super::*;

    const S: u64 = 1_000_000_000;

    fn response(q: &str, answers: &[(&str, u16, u32, &str)]) -> DnsMessage {
        DnsMessage {
            id: 1,
            response: true,
            opcode: 0,
            truncated: false,
            rcode: 0,
            questions: vec![DnsQuestion {
                name: q.into(),
                qtype: TYPE_A,
                qclass: 1,
            }],
            answers: answers
                .iter()
                .map(|&(name, rtype, ttl, data)| DnsAnswer {
                    name: name.into(),
                    rtype,
                    ttl,
                    data: data.into(),
                })
                .collect(),
            partial: false,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cname_chain_ttl_and_who_asked() {
        let mut c = NameCache::new();
        let resolved: Arc<str> = "systemd-resolve".into();
        let m = response(
            "tunnel.us.ngrok.com",
            &[
                (
                    "tunnel.us.ngrok.com",
                    TYPE_CNAME,
                    60,
                    "edge.ngrok-cdn.example",
                ),
                ("edge.ngrok-cdn.example", TYPE_A, 120, "203.0.113.7"),
                ("edge.ngrok-cdn.example", TYPE_AAAA, 120, "2001:db8::7"),
                // Not on the question's chain.
                ("unrelated.example", TYPE_A, 120, "198.51.100.1"),
            ],
        );
        assert_eq!(c.learn(&m, 700, &resolved, 10 * S), 2);
        let l = c.lookup(ip("203.0.113.7"), 4242, 11 * S).unwrap();
        assert_eq!(&*l.name, "tunnel.us.ngrok.com");
        assert_eq!(l.asker_pid, 700);
        assert_eq!(&*l.asker_name, "systemd-resolve");
        assert!(c.lookup(ip("2001:db8::7"), 1, 11 * S).is_some());
        assert!(
            c.lookup(ip("::ffff:203.0.113.7"), 1, 11 * S).is_some(),
            "mapped"
        );
        assert!(c.lookup(ip("198.51.100.1"), 1, 11 * S).is_none());
        // Expired after its TTL (120 s after 10 s).
        assert!(c.lookup(ip("203.0.113.7"), 1, 130 * S + 1).is_none());
        c.expire(131 * S);
        assert!(c.is_empty());
    }

    #[test]
    fn own_answer_first_then_latest_and_short_ttls() {
        let mut c = NameCache::new();
        let p: Arc<str> = "p".into();
        c.learn(
            &response("a.example", &[("a.example", TYPE_A, 0, "192.0.2.1")]),
            1,
            &p,
            0,
        );
        c.learn(
            &response("b.example", &[("b.example", TYPE_A, 300, "192.0.2.1")]),
            2,
            &p,
            S,
        );
        assert_eq!(
            &*c.lookup(ip("192.0.2.1"), 1, 2 * S).unwrap().name,
            "a.example"
        );
        assert_eq!(
            &*c.lookup(ip("192.0.2.1"), 9, 2 * S).unwrap().name,
            "b.example"
        );
        // TTL 0 is kept MIN_KEEP_NS.
        assert!(
            c.lookup(ip("192.0.2.1"), 1, MIN_KEEP_NS - 1)
                .is_some_and(|l| &*l.name == "a.example")
        );
        assert_eq!(
            &*c.lookup(ip("192.0.2.1"), 1, MIN_KEEP_NS + 1).unwrap().name,
            "b.example"
        );
        // Failed and non-responses teach nothing.
        let mut nx = response("c.example", &[("c.example", TYPE_A, 300, "192.0.2.3")]);
        nx.rcode = 3;
        assert_eq!(c.learn(&nx, 1, &p, 0), 0);
        nx.rcode = 0;
        nx.response = false;
        assert_eq!(c.learn(&nx, 1, &p, 0), 0);
        // A CNAME loop ends.
        let l = response(
            "x.example",
            &[
                ("x.example", TYPE_CNAME, 9, "y.example"),
                ("y.example", TYPE_CNAME, 9, "x.example"),
                ("y.example", TYPE_A, 9, "192.0.2.9"),
            ],
        );
        assert_eq!(c.learn(&l, 1, &p, 0), 1);
    }

    #[test]
    fn addresses_without_a_message() {
        let mut c = NameCache::new();
        let svchost: Arc<str> = "svchost.exe".into();
        let addrs = [ip("203.0.113.7"), ip("::ffff:203.0.113.8")];
        assert_eq!(
            c.learn_addresses(
                "tunnel.us.ngrok.com",
                &addrs,
                (900, &svchost),
                5 * S,
                600 * S
            ),
            2
        );
        let l = c.lookup(ip("203.0.113.8"), 1, 6 * S).unwrap();
        assert_eq!((&*l.name, l.asker_pid), ("tunnel.us.ngrok.com", 900));
        assert!(c.lookup(ip("203.0.113.7"), 1, 605 * S + 1).is_none());
        // A keep of 0 is kept MIN_KEEP_NS; no name teaches nothing.
        c.learn_addresses("a.example", &[ip("192.0.2.1")], (1, &svchost), 0, 0);
        assert!(c.lookup(ip("192.0.2.1"), 1, MIN_KEEP_NS - 1).is_some());
        assert_eq!(c.learn_addresses("", &addrs, (1, &svchost), 0, S), 0);
    }

    #[test]
    fn bounded_by_addresses_and_names() {
        let mut c = NameCache::new();
        let p: Arc<str> = "p".into();
        for i in 0..(MAX_ADDRESSES + 100) as u32 {
            let addr = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            c.learn(
                &response("n.example", &[("n.example", TYPE_A, 3600, &addr)]),
                1,
                &p,
                i as u64,
            );
        }
        assert_eq!(c.len(), MAX_ADDRESSES);
        assert_eq!(c.evicted, 100);
        assert!(c.order.len() <= 2 * MAX_ADDRESSES);
        // The oldest went first.
        assert!(c.lookup(ip("10.0.0.0"), 1, 0).is_none());
        assert!(c.lookup(ip("10.0.0.100"), 1, 0).is_some());
        for i in 0..10 {
            let name = format!("n{i}.example");
            c.learn(
                &response(&name, &[(&name, TYPE_A, 3600, "10.0.0.200")]),
                i,
                &p,
                0,
            );
        }
        assert_eq!(
            c.slots[&ip("10.0.0.200")].names.len(),
            MAX_NAMES_PER_ADDRESS
        );
    }
}
