//! Folded repeats: the first alert of a rule for a process and a key prints at once; the
//! alerts that repeat it within a window are counted, and when the window closes one summary
//! line says how many there were and when the first and the last came (`count`, `firstTime`,
//! `lastTime`). A reconnecting tunnel agent is one alert and one summary, not forty alerts.
//!
//! - The **key** of an alert: its rule (id, else title), the host, the process as a fleet
//!   sees it (executable path, user id and container id: not the pid, a reconnecting agent
//!   restarts), and the event's own key: the command line of a process start, the registered
//!   domain of a DNS query (public suffix list: `tunnel.us.ngrok.com` and
//!   `connect.ngrok-agent.com` are `ngrok.com` and `ngrok-agent.com`), and a connection's
//!   transport with the registered domain of its destination's name, else with its address
//!   and port (`udp 127.0.0.1:7844`).
//! - The **window** opens at the first alert's time and lasts the configured duration. The
//!   events' own times drive it (so `replay` folds as the live sensor did): an event whose
//!   time is past a window's end closes it before its own lines are written; the live sensor
//!   also closes windows by the clock ([`Folder::close_due`]) and all of them when it stops.
//!   An alert after its window closed prints at once again and opens a new window.
//! - **The count adds up**: `count` on a summary is the number of alerts it folds, not
//!   counting the one printed first; a window without repeats writes no summary. The first
//!   alert plus the summaries' counts are every alert the rule raised for that key.
//! - **Bounded**: at most [`MAX_WINDOWS`] windows are open; an alert that would open one more
//!   prints at once and is not folded (counted in `fold_untracked`): nothing is dropped.
//!
//! Floor 7 (the engine and its output): may use `alert`, `rule`, `line` and `event`.

use std::{
    borrow::Cow,
    cmp::Reverse,
    collections::{BinaryHeap, HashMap, hash_map::Entry},
    hash::{DefaultHasher, Hash, Hasher},
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{
    alert::Alert,
    event::{Event, Process},
    line::{AlertFields, Repeats, Required},
};

/// Most windows open at once.
pub const MAX_WINDOWS: usize = 1024;

/// What the folder decided for one alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Print it (the first of its key, or one that could not be folded).
    Print,
    /// Counted in an open window: print nothing now.
    Folded,
}

/// What a fleet's view of an alert is keyed by; borrowed from the alert and its event.
#[derive(Hash, PartialEq, Eq)]
struct KeyRef<'a> {
    rule: &'a str,
    host: &'a str,
    path: &'a str,
    user_id: &'a str,
    container_id: &'a str,
    key: &'a str,
}

/// The same, kept with a window.
#[derive(Debug)]
struct Key {
    rule: String,
    host: Arc<str>,
    path: Arc<str>,
    user_id: Arc<str>,
    container_id: Arc<str>,
    key: String,
}

impl Key {
    fn is(&self, k: &KeyRef<'_>) -> bool {
        self.rule == k.rule
            && *self.host == *k.host
            && *self.path == *k.path
            && *self.user_id == *k.user_id
            && *self.container_id == *k.container_id
            && self.key == k.key
    }
}

/// The alert printed first, as its summary line repeats it.
#[derive(Clone, Debug)]
pub struct FirstAlert {
    pub rule_id: Option<String>,
    pub rule_name: String,
    pub rule_type: Option<String>,
    pub severity: Option<&'static str>,
    pub mitre_technique_id: Vec<String>,
    pub risk_score: Option<u32>,
    pub message: String,
    pub falsepositives: Vec<String>,
}

impl FirstAlert {
    fn of(alert: &Alert<'_>) -> FirstAlert {
        let rule = alert.rule;
        FirstAlert {
            rule_id: rule.id.clone(),
            rule_name: rule.title.clone(),
            rule_type: rule.analytic_type.clone(),
            severity: rule.level.map(|l| l.as_str()),
            mitre_technique_id: rule.mitre_technique_ids.clone(),
            risk_score: rule.risk_score,
            message: alert.message.clone(),
            falsepositives: rule.falsepositives.clone(),
        }
    }

    /// Its fields on a line.
    pub fn fields(&self) -> AlertFields<'_> {
        AlertFields {
            rule_id: self.rule_id.as_deref(),
            rule_name: Required(&self.rule_name),
            rule_type: self.rule_type.as_deref(),
            severity: self.severity,
            mitre_technique_id: (&self.mitre_technique_id[..]).into(),
            risk_score: self.risk_score,
            message: Required(&self.message),
            falsepositives: (&self.falsepositives[..]).into(),
        }
    }
}

/// One open window.
#[derive(Debug)]
struct Window {
    key: Key,
    /// The first alert's event and fields, which the summary repeats.
    event: Event,
    alert: FirstAlert,
    count: u64,
    first: SystemTime,
    last: SystemTime,
}

/// A closed window with repeats: what its summary line says.
#[derive(Debug)]
pub struct Summary {
    /// The event of the alert printed first.
    pub event: Event,
    pub alert: FirstAlert,
    /// The key's own part (command line, registered domain, destination).
    pub key: String,
    /// Alerts folded (the first one not included).
    pub count: u64,
    /// Times of the first and the last folded alert.
    pub first: SystemTime,
    pub last: SystemTime,
}

impl Summary {
    /// Its `count`, `firstTime` and `lastTime`, with the key.
    pub fn repeats(&self) -> Repeats<'_> {
        Repeats {
            fold_key: &self.key,
            count: Some(self.count),
            firstTime: Some(self.first),
            lastTime: Some(self.last),
        }
    }
}

/// Open windows, by key.
#[derive(Debug)]
pub struct Folder {
    window: Duration,
    /// Windows by the hash of their key (a collision with another key is not folded).
    open: HashMap<u64, Window>,
    /// (end, key hash) of the open windows, soonest first.
    ends: BinaryHeap<Reverse<(SystemTime, u64)>>,
    /// Alerts folded so far.
    pub folded: u64,
    /// Alerts printed unfolded because [`MAX_WINDOWS`] windows were open (or, very rarely,
    /// because another key had the same hash).
    pub untracked: u64,
}

impl Folder {
    /// A folder with windows of `window` (not zero).
    pub fn new(window: Duration) -> Folder {
        Folder {
            window,
            open: HashMap::new(),
            ends: BinaryHeap::new(),
            folded: 0,
            untracked: 0,
        }
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Decides for `alert`, raised on `event`: print it, or fold it into its open window.
    pub fn admit(&mut self, alert: &Alert<'_>, event: &Event) -> Admit {
        self.add(alert, event, 1, event.time(), event.time(), false)
    }

    /// Folds `count` alerts like `alert` between `first` and `last` (a recorded summary line,
    /// replayed) into its open window, or opens one for them; `Print` when they cannot be
    /// folded (no window could be opened).
    pub fn add_recorded(
        &mut self,
        alert: &Alert<'_>,
        event: &Event,
        count: u64,
        first: SystemTime,
        last: SystemTime,
    ) -> Admit {
        self.add(alert, event, count, first, last, true)
    }

    fn add(
        &mut self,
        alert: &Alert<'_>,
        event: &Event,
        count: u64,
        first: SystemTime,
        last: SystemTime,
        recorded: bool,
    ) -> Admit {
        let none = Process::default();
        let process = event.process().unwrap_or(&none);
        let event_key = event_key(event);
        let key = KeyRef {
            rule: alert.rule.id.as_deref().unwrap_or(&alert.rule.title),
            host: event.host(),
            path: &process.path,
            user_id: &process.user_id,
            container_id: process.container.as_ref().map_or("", |c| &c.id),
            key: &event_key,
        };
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        let hash = h.finish();
        let full = self.open.len() >= MAX_WINDOWS;
        match self.open.entry(hash) {
            Entry::Occupied(mut o) => {
                let w = o.get_mut();
                if !w.key.is(&key) {
                    self.untracked += count;
                    return Admit::Print;
                }
                if w.count == 0 {
                    (w.first, w.last) = (first, last);
                }
                w.count = w.count.saturating_add(count);
                w.first = w.first.min(first);
                w.last = w.last.max(last);
                self.folded = self.folded.saturating_add(count);
                Admit::Folded
            }
            Entry::Vacant(v) => {
                if full {
                    self.untracked += count;
                    return Admit::Print;
                }
                let start = event.time();
                let end = start.checked_add(self.window).unwrap_or(start);
                v.insert(Window {
                    key: Key {
                        rule: key.rule.to_owned(),
                        host: event.host().into(),
                        path: process.path.clone(),
                        user_id: process.user_id.clone(),
                        container_id: process
                            .container
                            .as_ref()
                            .map_or_else(Arc::default, |c| c.id.clone()),
                        key: key.key.to_owned(),
                    },
                    event: event.clone(),
                    alert: FirstAlert::of(alert),
                    // A recorded summary opens a window holding its repeats: its alert was
                    // (or will be) printed from its own line.
                    count: if recorded { count } else { 0 },
                    first,
                    last,
                });
                self.ends.push(Reverse((end, hash)));
                if recorded {
                    self.folded = self.folded.saturating_add(count);
                    Admit::Folded
                } else {
                    Admit::Print
                }
            }
        }
    }

    /// Closes the windows that end at or before `now`, appending the summaries of those with
    /// repeats to `out`, oldest first.
    pub fn close_due(&mut self, now: SystemTime, out: &mut Vec<Summary>) {
        while let Some(Reverse((end, _))) = self.ends.peek() {
            if *end > now {
                break;
            }
            let Some(Reverse((_, hash))) = self.ends.pop() else {
                break;
            };
            self.close(hash, out);
        }
    }

    /// Closes every window (the sensor stops, the replay ends).
    pub fn close_all(&mut self, out: &mut Vec<Summary>) {
        while let Some(Reverse((_, hash))) = self.ends.pop() {
            self.close(hash, out);
        }
    }

    fn close(&mut self, hash: u64, out: &mut Vec<Summary>) {
        if let Some(w) = self.open.remove(&hash)
            && w.count > 0
        {
            out.push(Summary {
                event: w.event,
                alert: w.alert,
                key: w.key.key,
                count: w.count,
                first: w.first,
                last: w.last,
            });
        }
    }

    /// Windows open now.
    pub fn open_windows(&self) -> usize {
        self.open.len()
    }
}

/// The event's own part of a fold key: the command line of a process start, the registered
/// domain of a DNS name (the name itself when it has none), and for a connection its transport
/// with the registered domain of its destination's name, else with its address and port.
pub fn event_key(event: &Event) -> Cow<'_, str> {
    match event {
        Event::Process(e) => Cow::Borrowed(&e.process.command_line),
        Event::Dns(e) => Cow::Borrowed(psl::domain_str(&e.query).unwrap_or(&e.query)),
        Event::Connection(e) if !e.dest_name.is_empty() => {
            let name = psl::domain_str(&e.dest_name).unwrap_or(&e.dest_name);
            Cow::Owned(format!("{} {name}", e.transport))
        }
        Event::Connection(e) => Cow::Owned(format!("{} {}", e.transport, e.dest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DnsEvent, DnsMessageType, Platform};

    fn query(name: &str) -> Event {
        Event::Dns(DnsEvent {
            time: SystemTime::UNIX_EPOCH,
            host: "h".into(),
            platform: Platform::Linux,
            message_type: DnsMessageType::Query,
            query: name.into(),
            query_type: "A".into(),
            transaction_id: 1,
            reply_code: String::new(),
            reply_code_id: None,
            answers: vec![],
            src: None,
            dest: None,
            transport: "udp",
            process: None,
            parent: None,
            inferred_from_response: false,
        })
    }

    #[test]
    fn dns_keys_are_registered_domains() {
        assert_eq!(event_key(&query("tunnel.us.ngrok.com")), "ngrok.com");
        assert_eq!(
            event_key(&query("connect.ngrok-agent.com")),
            "ngrok-agent.com"
        );
        assert_eq!(event_key(&query("a.b.example.co.uk")), "example.co.uk");
        assert_eq!(event_key(&query("localhost")), "localhost");
    }

    fn connection(transport: &'static str, dest: &str, name: &str) -> Event {
        Event::Connection(crate::event::ConnectionEvent {
            time: SystemTime::UNIX_EPOCH,
            host: "h".into(),
            platform: Platform::Linux,
            transport,
            src: None,
            dest: dest.parse().unwrap(),
            dest_name: name.into(),
            name_source: None,
            server_name: String::new(),
            alpn: Vec::new(),
            app: "",
            dns_name: String::new(),
            resolver: None,
            late: false,
            process: None,
            parent: None,
        })
    }

    #[test]
    fn connection_keys_are_the_transport_and_the_destination() {
        // Named: the registered domain, whatever the address and port.
        let a = connection("tcp", "127.0.0.1:443", "connect.us.ngrok-agent.com");
        let b = connection("tcp", "10.1.2.3:8443", "tunnel.ngrok-agent.com");
        assert_eq!(event_key(&a), "tcp ngrok-agent.com");
        assert_eq!(event_key(&a), event_key(&b));
        // Unnamed: the address and port; TCP and UDP to one port are two keys.
        assert_eq!(
            event_key(&connection("udp", "127.0.0.1:7844", "")),
            "udp 127.0.0.1:7844"
        );
        assert_ne!(
            event_key(&connection("tcp", "127.0.0.1:7844", "")),
            event_key(&connection("udp", "127.0.0.1:7844", ""))
        );
        assert_eq!(
            event_key(&connection("udp", "[::1]:7844", "")),
            "udp [::1]:7844"
        );
    }
}
