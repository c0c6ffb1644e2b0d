//! ETW events to engine events: keeps the process table up to date and names the process (and
//! its parent and user) behind every process start and DNS query.
//!
//! A process start becomes one [`ProcessEvent`], on the kernel's Process Start (it alone has
//! the command line and the user). Its image path is, in order of trust: Microsoft-Windows-
//! Kernel-Process's `ImageName` for the same process when that event came first, the live
//! process's image (`QueryFullProcessImageNameW`), the first word of the command line when it
//! is an absolute path to the same file name, else unknown (the name is then `ImageFileName`).
//! A Kernel-Process event that comes later still corrects the table, for the DNS events and
//! children that follow. DCStart (processes already running when the sensor starts) only fills
//! the table, as the Linux sensor's /proc scan does: no event.
//!
//! When the kernel logger session cannot be had ([`Mode::KernelProcess`], see `consumer.rs`),
//! Kernel-Process's ProcessStart makes the event instead: the command line and the user are
//! read from the live process (`Host::live_command_line`, `Host::live_user_sid`), and a parent
//! missing from the table (no rundown in that mode) from the live process too.
//!
//! A DNS-Client event whose process is not in the table yet (the two sessions are flushed
//! separately, so a process's first query can arrive before its Start) is held for up to
//! [`DNS_HOLD`]: the process's Start releases it, named; past the wait ([`Enricher::tick`]) it
//! is named from the live process, or by its pid alone.
//!
//! A Microsoft-Windows-Kernel-Network connect (TCP) or a UDP flow's first datagram becomes one
//! `ConnectionEvent` with its process from the table (held like a DNS event when the process
//! is not known yet) and its destination named by the DNS-Client answers seen before it
//! (`connections.rs`); a 3008 teaches those names when it arrives, held or not.

use std::{collections::VecDeque, sync::Arc};

use tunnelwatch_engine::event::{Event, Platform, Process, ProcessEvent};

use crate::{
    connections::Connections,
    dns_map,
    fields::{FILETIME_SECOND, RawEvent, Source, filetime_to_system_time},
    host::Host,
    net_map,
    paths::{DeviceMap, file_name},
    process_map::{self, ImageStart, KernelStart, image_from_command_line, same_image},
    process_table::{PathSource, ProcInfo, ProcessTable, SAME_PROCESS},
    schema::{dns_client, kernel_network, kernel_process, kernel_trace},
    sid::{AccountCache, Sid},
};

/// Which events make process starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The kernel logger's Process Start (command line and user in the event).
    #[default]
    Kernel,
    /// Microsoft-Windows-Kernel-Process's ProcessStart, the command line and user read from
    /// the live process: the fallback when the kernel logger session cannot be started.
    KernelProcess,
}

impl Mode {
    /// How the stats line and the log name it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Kernel => "kernel",
            Mode::KernelProcess => "kernel-process",
        }
    }
}

/// How long a DNS event waits for its process's Start: 2 s (both sessions flush every second).
pub const DNS_HOLD: i64 = 2 * FILETIME_SECOND;
/// Most DNS and connection events held at once; past it the oldest goes out without waiting.
const MAX_HELD: usize = 4096;

/// What the enricher has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events handled.
    pub records: u64,
    /// Process start events produced.
    pub process_starts: u64,
    /// DNS events produced.
    pub dns_events: u64,
    /// Events that lacked a property the mapping needs (e.g. no `ProcessId`).
    pub unmapped: u64,
    /// DNS events that waited for their process's Start.
    pub dns_held: u64,
    /// Of those, the ones whose Start did not come in time (named from the live process, or
    /// by pid only).
    pub dns_unmatched: u64,
    /// Command lines read from the live process (Kernel-Process mode).
    pub live_command_lines: u64,
    /// Process starts whose command line could not be read (the process had exited).
    pub missing_command_lines: u64,
    /// Connection events produced (TCP connects, UDP flows).
    pub connections: u64,
    /// Connection events that waited for their process's Start.
    pub connections_held: u64,
    /// Of those, the ones whose Start did not come in time.
    pub connections_unmatched: u64,
    /// UDP datagrams of flows already reported (no event: one per flow).
    pub udp_repeats: u64,
    /// UDP flows forgotten to make room before they fell silent (their next datagram is
    /// reported again).
    pub udp_flows_forgotten: u64,
    /// Addresses named by DNS-Client answers.
    pub names_learned: u64,
}

/// The process a held event is about: the header's for DNS-Client (logged in the asking
/// process), the payload's `PID` for Kernel-Network (logged in whatever context the stack ran).
fn process_id(raw: &RawEvent) -> u32 {
    match raw.header.source {
        Source::KernelNetwork => raw.fields.u32("PID").unwrap_or(0),
        _ => raw.header.pid,
    }
}

/// The mapping with its state.
pub struct Enricher<H: Host> {
    host_name: Arc<str>,
    devices: DeviceMap,
    procs: ProcessTable,
    host: H,
    accounts: AccountCache,
    mode: Mode,
    /// DNS and connection events waiting for their process, oldest first, with their
    /// deadlines.
    held: VecDeque<(i64, RawEvent)>,
    connections: Connections,
    pub counters: Counters,
}

impl<H: Host> Enricher<H> {
    /// `host_name` is this machine's name (CIM `dest`); `devices` converts NT paths.
    pub fn new(host_name: Arc<str>, devices: DeviceMap, host: H) -> Enricher<H> {
        Enricher {
            host_name,
            devices,
            procs: ProcessTable::new(),
            host,
            accounts: AccountCache::default(),
            mode: Mode::Kernel,
            held: VecDeque::new(),
            connections: Connections::new(),
            counters: Counters::default(),
        }
    }

    /// Sets which events make process starts (see [`Mode`]).
    pub fn with_mode(mut self, mode: Mode) -> Enricher<H> {
        self.mode = mode;
        self
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// DNS and connection events waiting for their process's Start.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    pub fn procs(&self) -> &ProcessTable {
        &self.procs
    }

    pub fn devices(&self) -> &DeviceMap {
        &self.devices
    }

    /// Replaces the device map (drives come and go).
    pub fn set_devices(&mut self, devices: DeviceMap) {
        self.devices = devices;
    }

    pub fn host(&mut self) -> &mut H {
        &mut self.host
    }

    /// Forgets processes that exited long enough before `now` (FILETIME), and lets out the
    /// DNS events that waited for their process past [`DNS_HOLD`].
    pub fn tick(&mut self, now: i64, out: &mut Vec<Event>) {
        self.procs.expire(now);
        self.connections.expire(now);
        while let Some((deadline, _)) = self.held.front()
            && *deadline <= now
        {
            let (_, raw) = self.held.pop_front().expect("front exists");
            self.release(&raw, out);
        }
    }

    /// Lets out every held DNS event (at the end of a replay, or when the sensor stops).
    pub fn flush(&mut self, out: &mut Vec<Event>) {
        while let Some((_, raw)) = self.held.pop_front() {
            self.release(&raw, out);
        }
    }

    /// A held event whose process did not start in time.
    fn release(&mut self, raw: &RawEvent, out: &mut Vec<Event>) {
        if raw.header.source == Source::KernelNetwork {
            self.counters.connections_unmatched += 1;
        } else {
            self.counters.dns_unmatched += 1;
        }
        self.emit_held(raw, out);
    }

    /// A held event, now that its process is known (or waited for long enough).
    fn emit_held(&mut self, raw: &RawEvent, out: &mut Vec<Event>) {
        if raw.header.source == Source::KernelNetwork {
            match net_map::connect(&raw.header, &raw.fields) {
                Some(c) => self.connection(&c, out),
                None => self.counters.unmapped += 1,
            }
        } else {
            self.dns(raw, out);
        }
    }

    /// Holds `raw` for its process's Start (up to [`DNS_HOLD`]).
    fn hold(&mut self, raw: &RawEvent, out: &mut Vec<Event>) {
        if self.held.len() >= MAX_HELD
            && let Some((_, oldest)) = self.held.pop_front()
        {
            self.release(&oldest, out);
        }
        self.held
            .push_back((raw.header.timestamp.saturating_add(DNS_HOLD), raw.clone()));
    }

    /// The connection event of `c`.
    fn connection(&mut self, c: &net_map::Connect, out: &mut Vec<Event>) {
        let (process, parent) = self.dns_process(c.pid);
        let procs = &self.procs;
        let e = self
            .connections
            .event(c, &self.host_name, (process, parent), |pid| {
                procs
                    .get(pid)
                    .map(|p| p.process.name.clone())
                    .unwrap_or_default()
            });
        out.push(Event::Connection(e));
        self.counters.connections += 1;
    }

    /// The counters, with the connection side's.
    pub fn counters(&self) -> Counters {
        let udp = self.connections.udp_counters();
        Counters {
            udp_repeats: udp.repeats,
            udp_flows_forgotten: udp.forgotten,
            names_learned: self.connections.counters.names_learned,
            ..self.counters
        }
    }

    /// The held DNS events of `pid`, now that its process is known.
    fn release_pid(&mut self, pid: u32, out: &mut Vec<Event>) {
        if self.held.is_empty() {
            return;
        }
        let (mine, rest): (VecDeque<_>, VecDeque<_>) =
            self.held.drain(..).partition(|(_, r)| process_id(r) == pid);
        self.held = rest;
        for (_, raw) in mine {
            self.emit_held(&raw, out);
        }
    }

    fn dns(&mut self, raw: &RawEvent, out: &mut Vec<Event>) {
        let (process, parent) = self.dns_process(raw.header.pid);
        match dns_map::dns_event(&raw.header, &raw.fields, &self.host_name, process, parent) {
            Some(e) => {
                out.push(Event::Dns(e));
                self.counters.dns_events += 1;
            }
            None => self.counters.unmapped += 1,
        }
    }

    /// Handles one ETW event, appending the engine events it makes to `out`.
    pub fn handle(&mut self, raw: &RawEvent, out: &mut Vec<Event>) {
        self.counters.records += 1;
        let (h, f) = (&raw.header, &raw.fields);
        let mapped = match (h.source, h.event_id, h.opcode) {
            (Source::KernelProcess, kernel_process::PROCESS_START, _) => {
                process_map::image_start(h, f, &self.devices).map(|s| {
                    let pid = s.pid;
                    if self.mode == Mode::KernelProcess {
                        let e = self.live_start(s);
                        out.push(Event::Process(e));
                        self.counters.process_starts += 1;
                        self.release_pid(pid, out);
                    } else {
                        self.image_start(s);
                    }
                })
            }
            (Source::KernelProcess, kernel_process::PROCESS_STOP, _)
            | (Source::KernelTrace, _, kernel_trace::END) => {
                process_map::stopped_pid(f).map(|pid| self.procs.exited(pid, h.timestamp))
            }
            (Source::KernelTrace, _, op @ (kernel_trace::START | kernel_trace::DC_START)) => {
                process_map::kernel_start(h, f).map(|k| {
                    let pid = k.pid;
                    if let Some(e) = self.kernel_start(k, op == kernel_trace::START) {
                        out.push(Event::Process(e));
                        self.counters.process_starts += 1;
                    }
                    self.release_pid(pid, out);
                })
            }
            (Source::DnsClient, dns_client::QUERY | dns_client::COMPLETED, _) => {
                if h.event_id == dns_client::COMPLETED {
                    // Learnt at once, so that a connection that overtakes its held answer is
                    // still named.
                    let asker = self
                        .procs
                        .get(h.pid)
                        .map(|p| p.process.name.clone())
                        .unwrap_or_default();
                    self.connections.learn(f, h.pid, &asker, h.timestamp);
                }
                if h.pid != 0 && self.procs.get(h.pid).is_none() {
                    self.counters.dns_held += 1;
                    self.hold(raw, out);
                } else {
                    self.dns(raw, out);
                }
                Some(())
            }
            (Source::KernelNetwork, id, _) if kernel_network::EVENTS.contains(&id) => {
                net_map::connect(h, f).map(|c| {
                    if !self.connections.admit(&c) {
                        return;
                    }
                    if c.pid != 0 && self.procs.get(c.pid).is_none() {
                        self.counters.connections_held += 1;
                        self.hold(raw, out);
                    } else {
                        self.connection(&c, out);
                    }
                })
            }
            _ => Some(()),
        };
        if mapped.is_none() {
            self.counters.unmapped += 1;
        }
    }

    /// Kernel-Process's start: the image's full path.
    fn image_start(&mut self, s: ImageStart) {
        if let Some(p) = self.procs.get_mut(s.pid)
            && (p.started - s.time).abs() <= SAME_PROCESS
        {
            // The kernel's Start for this process came first: correct its path.
            if p.path_source != PathSource::Etw && same_image(&s.path, &p.process.name) {
                p.process.name = file_name(&s.path).into();
                p.process.path = s.path.into();
                p.path_source = PathSource::Etw;
            }
            return;
        }
        self.procs.insert(ProcInfo {
            process: Process {
                pid: s.pid,
                name: file_name(&s.path).into(),
                path: s.path.into(),
                ..Process::default()
            },
            ppid: s.ppid,
            started: s.time,
            exited: None,
            path_source: PathSource::Etw,
            from_kernel: false,
        });
    }

    /// The kernel's Start (`emit`) or DCStart: the command line and the user.
    fn kernel_start(&mut self, k: KernelStart, emit: bool) -> Option<ProcessEvent> {
        // Kernel-Process's record of this very process, if it came first.
        let earlier = self
            .procs
            .get(k.pid)
            .filter(|p| {
                !p.from_kernel
                    && (p.started - k.time).abs() <= SAME_PROCESS
                    && same_image(&p.process.path, &k.image_file_name)
            })
            .cloned();
        let (path, path_source) = match &earlier {
            Some(p) => (p.process.path.clone(), PathSource::Etw),
            None => {
                let (path, source) = self.find_path(&k);
                (path.into(), source)
            }
        };
        let name: Arc<str> = if path.is_empty() {
            file_name(&k.image_file_name).into()
        } else {
            file_name(&path).into()
        };
        let (user, user_id) = self.user(k.sid.as_ref());
        let process = Process {
            pid: k.pid,
            name,
            path,
            command_line: k.command_line.into(),
            user: user.into(),
            user_id: user_id.into(),
            original_file_name: Arc::default(),
            ..Default::default()
        };
        let started = earlier.as_ref().map_or(k.time, |p| p.started.min(k.time));
        self.procs.insert(ProcInfo {
            process: process.clone(),
            ppid: k.ppid,
            started,
            exited: earlier.and_then(|p| p.exited),
            path_source,
            from_kernel: true,
        });
        if !emit {
            return None;
        }
        let parent = match self.procs.parent(k.ppid, started) {
            Some(p) => p.process.clone(),
            None => Process {
                pid: k.ppid,
                ..Process::default()
            },
        };
        let mut process = process;
        process.original_file_name = self
            .host
            .original_file_name(&process.path)
            .unwrap_or_default()
            .into();
        Some(ProcessEvent {
            time: filetime_to_system_time(k.time),
            host: self.host_name.clone(),
            platform: Platform::Windows,
            process,
            parent,
            // ETW reports the whole command line.
            args_truncated: false,
            fileless: "".into(),
            loader: "".into(),
        })
    }

    /// `(DOMAIN\user, S-1-...)` of `sid`, empty when there is none.
    fn user(&mut self, sid: Option<&Sid>) -> (String, String) {
        match sid {
            Some(sid) => {
                let host = &mut self.host;
                let user = self.accounts.get(sid, |s| host.account_name(s));
                (user.unwrap_or_default(), sid.to_string())
            }
            None => (String::new(), String::new()),
        }
    }

    /// A process the table does not know, as the live system describes it (pid only when
    /// it does not).
    fn live_process(&mut self, pid: u32) -> Process {
        let path = self.host.live_image_path(pid).unwrap_or_default();
        // Trimmed as the kernel event's is (process_map.rs).
        let command_line = self
            .host
            .live_command_line(pid)
            .map(|c| c.trim_end().to_owned())
            .unwrap_or_default();
        let sid = self.host.live_user_sid(pid);
        let (user, user_id) = self.user(sid.as_ref());
        Process {
            pid,
            name: file_name(&path).into(),
            path: path.into(),
            command_line: command_line.into(),
            user: user.into(),
            user_id: user_id.into(),
            original_file_name: Arc::default(),
            ..Default::default()
        }
    }

    /// Kernel-Process mode: the ProcessStart makes the event; command line and user from the
    /// live process.
    fn live_start(&mut self, s: ImageStart) -> ProcessEvent {
        let mut process = self.live_process(s.pid);
        if process.command_line.is_empty() {
            self.counters.missing_command_lines += 1;
        } else {
            self.counters.live_command_lines += 1;
        }
        process.name = file_name(&s.path).into();
        process.path = s.path.into();
        self.procs.insert(ProcInfo {
            process: process.clone(),
            ppid: s.ppid,
            started: s.time,
            exited: None,
            path_source: PathSource::Etw,
            from_kernel: true,
        });
        let parent = match self.procs.parent(s.ppid, s.time) {
            Some(p) => p.process.clone(),
            None if s.ppid != 0 => {
                let parent = self.live_process(s.ppid);
                // Remembered, so that its next child does not ask again.
                self.procs.insert(ProcInfo {
                    process: parent.clone(),
                    ppid: 0,
                    started: s.time,
                    exited: None,
                    path_source: PathSource::Live,
                    from_kernel: true,
                });
                parent
            }
            None => Process::default(),
        };
        process.original_file_name = self
            .host
            .original_file_name(&process.path)
            .unwrap_or_default()
            .into();
        ProcessEvent {
            time: filetime_to_system_time(s.time),
            host: self.host_name.clone(),
            platform: Platform::Windows,
            process,
            parent,
            args_truncated: false,
            fileless: "".into(),
            loader: "".into(),
        }
    }

    /// The image path of a process Kernel-Process has not (yet) described.
    fn find_path(&mut self, k: &KernelStart) -> (String, PathSource) {
        if let Some(p) = self.host.live_image_path(k.pid)
            && same_image(&p, &k.image_file_name)
        {
            return (p, PathSource::Live);
        }
        if let Some(p) = image_from_command_line(&k.command_line)
            && same_image(p, &k.image_file_name)
        {
            return (p.to_owned(), PathSource::CommandLine);
        }
        (String::new(), PathSource::Unknown)
    }

    /// The process that asked a DNS question, and its parent, from the table; an unknown pid
    /// is named from the live process when it can be.
    fn dns_process(&mut self, pid: u32) -> (Option<Process>, Option<Process>) {
        if pid == 0 {
            return (None, None);
        }
        match self.procs.get(pid) {
            Some(p) => {
                let parent = self
                    .procs
                    .parent(p.ppid, p.started)
                    .map(|pp| pp.process.clone());
                (Some(p.process.clone()), parent)
            }
            None => (Some(self.live_process(pid)), None),
        }
    }
}
