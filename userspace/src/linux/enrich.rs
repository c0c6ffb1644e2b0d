//! Records to engine events: decodes each ring-buffer record, keeps the process table up to
//! date, and names the process (and its parent and user) behind every exec and DNS message.
//! DNS payloads are decoded here (`tunnelwatch_engine::dns`; TCP streams put back together by
//! `dns_stream`, UDP GSO datagrams cut at their segment size); a query going out and its
//! response coming back are tied together by client address, port and transaction id. A
//! response whose query was not seen (sent by a path the hooks miss: a packet socket, bytes
//! lost to reassembly) also yields that query, built from the response's question and marked
//! `inferred_from_response`, so that the rules on queries still see it.
//!
//! Uses: `decode`, `dns_stream`, `proc_table`, `identify`, `clock`, `users` (this folder), the
//! engine's events and DNS decoding, and the kernel-user ABI (`tunnelwatch-common`).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use tunnelwatch_common::{
    TaskInfo,
    records::{direction, exec_flags, owner_source},
};
use tunnelwatch_engine::{
    dns,
    event::{DnsEvent, DnsMessageType, Event, Platform, Process, ProcessEvent},
};

use crate::linux::{
    clock::BootClock,
    decode::{self, Record},
    dns_stream::{Segment, StreamKey, Streams},
    exec_identity::{self, Loaders},
    identify::{FileKey, Identifier, IdentifyCounters},
    proc_table::{self, ProcInfo, ProcTable},
    users::Users,
};

/// How long an unanswered query is remembered, in boot-time nanoseconds.
const PENDING_TTL_NS: u64 = 30_000_000_000;
/// Most unanswered queries remembered (a host has far fewer in flight; under a flood of
/// unanswered queries the table starts over). 8192 entries keep the table under 1 MiB: at
/// 65,536 it grew to 8 MiB (11 MiB while rehashing) and the sensor's VmHWM with it.
const PENDING_MAX: usize = 8_192;

/// User-space counters, reported with the kernel's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counters {
    pub records: u64,
    pub decode_errors: u64,
    pub dns_messages: u64,
    /// DNS payloads that could not be decoded (hostile, or a TCP continuation segment).
    pub dns_undecodable: u64,
    /// Command lines longer than the kernel copies, completed from /proc.
    pub args_completed: u64,
    /// Queries built from responses whose query was not seen.
    pub dns_inferred: u64,
}

impl Enricher {
    /// Executables read to identify them (cache misses), not read, over the limits.
    pub fn identify_counters(&self) -> IdentifyCounters {
        self.identifier.counters
    }

    /// Segments of DNS over TCP streams discarded without being decoded (see `dns_stream`).
    pub fn dns_tcp_dropped(&self) -> u64 {
        self.streams.dropped
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingKey {
    client: SocketAddr,
    id: u16,
}

struct Pending {
    boot_ns: u64,
    pid: u32,
}

pub struct Enricher {
    host: Arc<str>,
    clock: BootClock,
    procs: ProcTable,
    users: Users,
    identifier: Identifier,
    /// Which executables are dynamic loaders.
    loaders: Loaders,
    /// foldhash (seeded per process): SipHash was 6 % of the sensor's CPU in a DNS storm.
    pending: foldhash::HashMap<PendingKey, Pending>,
    /// DNS over TCP, per stream.
    streams: Streams,
    pub counters: Counters,
}

impl Enricher {
    pub fn new(host: Arc<str>, procs: ProcTable) -> Self {
        Enricher {
            host,
            clock: BootClock::new(),
            procs,
            users: Users::default(),
            identifier: Identifier::default(),
            loaders: Loaders::default(),
            pending: foldhash::HashMap::default(),
            streams: Streams::default(),
            counters: Counters::default(),
        }
    }

    pub fn procs(&self) -> &ProcTable {
        &self.procs
    }

    /// Periodic upkeep: forget exited processes and stale queries, follow the wall clock.
    pub fn tick(&mut self) {
        let now = BootClock::now_boot_ns();
        self.procs.sweep(now);
        self.pending
            .retain(|_, p| now.saturating_sub(p.boot_ns) < PENDING_TTL_NS);
        self.streams.expire(now);
        self.clock.resync();
    }

    /// Handles one ring-buffer record, appending the events it yields (0, 1 or more).
    pub fn handle(&mut self, bytes: &[u8], out: &mut Vec<Event>) {
        self.counters.records += 1;
        let record = match decode::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.counters.decode_errors += 1;
                log::debug!("undecodable record: {e}");
                return;
            }
        };
        match record {
            Record::Exec(e) => out.push(Event::Process(self.exec(&e))),
            Record::Fork(f) => self
                .procs
                .fork(f.parent_tgid, f.child_tgid, f.child_start_ns),
            Record::Exit(x) => self.procs.exit(x.tgid, x.start_ns, x.header.boot_ns),
            Record::Dns(d) => self.dns(&d, out),
        }
    }

    fn exec(&mut self, e: &decode::Exec<'_>) -> ProcessEvent {
        let mut argv = decode::argv(e.args);
        let mut args_truncated = e.flags & exec_flags::ARGS_TRUNCATED != 0;
        if args_truncated {
            // Longer than the kernel side copies: the rest is still in the process's own
            // argument area while it runs (a tunnel agent runs for long).
            if let Some(full) = full_args(e.task.tgid, e.args_total) {
                argv = full;
                args_truncated = false;
                self.counters.args_completed += 1;
            }
        }
        let mut path = decode::exe_path(e.path_components);
        if path.is_empty() {
            path = String::from_utf8_lossy(e.filename).into_owned();
        }
        let comm = decode::comm(&e.task.comm);
        let command_line = if argv.is_empty() {
            comm.clone()
        } else {
            argv.join(" ")
        };
        let key = FileKey {
            dev: e.exe_dev,
            ino: e.exe_ino,
            mtime: e.exe_mtime,
            ctime: e.exe_ctime,
            ctime_nsec: e.exe_ctime_nsec,
            size: e.exe_size,
        };
        let tgid = e.task.tgid;
        // The dynamic loader run directly: the program it loads is the one that runs.
        let mut loader = String::new();
        let mut program_file = None;
        if argv.len() >= 2
            && self
                .loaders
                .is_loader((e.exe_dev, e.exe_ino, e.exe_mtime), tgid, &path)
            && let Some(program) = exec_identity::loaded_program(&argv)
        {
            program_file = Some(exec_identity::program_file(tgid, program));
            let program_path = exec_identity::program_path(tgid, program);
            loader = std::mem::replace(&mut path, program_path);
        }
        let fileless = if loader.is_empty() {
            exec_identity::fileless(tgid, &path)
        } else {
            ""
        };
        let original_file_name = match program_file {
            Some(file) => {
                let absolute = path.starts_with('/').then_some(path.as_str());
                self.identify_program(tgid, &file, absolute)
            }
            None => self.identifier.identify(key, tgid, &path),
        };
        let path: Arc<str> = path.into();
        let comm: Arc<str> = comm.into();
        let info = ProcInfo {
            pid: e.task.tgid,
            ppid: e.task.ppid,
            uid: e.task.uid,
            name: proc_table::image_name(&path, &comm),
            path,
            command_line: command_line.into(),
            comm,
            start_ns: e.task.start_ns,
            args_truncated,
            original_file_name,
        };
        let process = self.process_of(&info);
        self.procs.exec(info);
        let parent = self.parent_of(e.task.ppid, &e.parent_comm);
        ProcessEvent {
            time: self.clock.to_system_time(e.boot_ns),
            host: self.host.clone(),
            platform: Platform::Linux,
            process,
            parent,
            args_truncated,
            fileless: fileless.into(),
            loader: loader.into(),
        }
    }

    /// What the program a loader runs is: its file, in the process's view (or, the process
    /// gone, `fallback`: the path as the host sees it), identified by its own inode, size and
    /// times.
    fn identify_program(
        &mut self,
        tgid: u32,
        file: &std::path::Path,
        fallback: Option<&str>,
    ) -> Option<Arc<str>> {
        use std::os::unix::fs::MetadataExt;

        let in_view = file.to_string_lossy();
        let (path, meta) = std::iter::once(in_view.as_ref())
            .chain(fallback)
            .find_map(|p| Some((p, std::fs::metadata(p).ok()?)))?;
        // The kernel's encoding of the device (major << 20 | minor), as exec records carry it.
        let dev = (libc::major(meta.dev()) << 20) | libc::minor(meta.dev());
        let key = FileKey {
            dev,
            ino: meta.ino(),
            mtime: meta.mtime() as u64,
            ctime: meta.ctime() as u64,
            ctime_nsec: meta.ctime_nsec() as u32,
            size: meta.size(),
        };
        let path = path.to_owned();
        self.identifier.identify(key, tgid, &path)
    }

    fn process_of(&mut self, info: &ProcInfo) -> Process {
        process_of(&mut self.users, info, info.uid)
    }

    /// The parent, from the table (or /proc), else by the name the kernel gave.
    fn parent_of(&mut self, ppid: u32, comm: &[u8; 16]) -> Process {
        match self.procs.lookup(ppid).cloned() {
            Some(p) => self.process_of(&p),
            None => Process {
                pid: ppid,
                name: decode::comm(comm).into(),
                ..Default::default()
            },
        }
    }

    /// The process behind a DNS packet: from the table, refined by what the kernel saw (the
    /// uid of the sending task). Built from the table's entries in place (no copy of them).
    fn dns_process(&mut self, task: &TaskInfo) -> (Option<Process>, Option<Process>) {
        let Enricher { procs, users, .. } = self;
        let (process, ppid) = match procs.lookup(task.tgid) {
            Some(p) => (process_of(users, p, task.uid), p.ppid),
            None => {
                let comm: Arc<str> = decode::comm(&task.comm).into();
                let info = ProcInfo {
                    pid: task.tgid,
                    ppid: task.ppid,
                    uid: task.uid,
                    command_line: comm.clone(),
                    name: comm.clone(),
                    comm,
                    ..Default::default()
                };
                (process_of(users, &info, task.uid), task.ppid)
            }
        };
        let parent = procs.lookup(ppid).map(|p| process_of(users, p, p.uid));
        (Some(process), parent)
    }

    /// The messages of a UDP datagram: one, or one per segment of a GSO datagram (one
    /// `send()` that leaves as several datagrams of `gso_size` bytes, the last shorter).
    fn udp_messages(&mut self, d: &decode::Dns<'_>) -> Vec<dns::DnsMessage> {
        let total = d.payload_len as usize;
        let size = match usize::from(d.gso_size) {
            0 => total.max(1),
            n => n,
        };
        let mut out = Vec::new();
        // As many as a TCP segment may yield (the kernel sends at most 64 or 128 segments).
        for (i, part) in d
            .payload
            .chunks(size)
            .take(dns::MAX_TCP_MESSAGES)
            .enumerate()
        {
            let end = ((i + 1) * size).min(total);
            match dns::parse_message(part, end <= d.payload.len()) {
                Ok(m) => out.push(m),
                Err(e) => {
                    self.counters.dns_undecodable += 1;
                    log::debug!("undecodable DNS payload: {e}");
                }
            }
        }
        out
    }

    fn dns(&mut self, d: &decode::Dns<'_>, out: &mut Vec<Event>) {
        let messages = match d.protocol {
            17 => self.udp_messages(d),
            _ => {
                let key = StreamKey {
                    cookie: d.cookie,
                    direction: d.direction,
                    src: (d.src_addr, d.src_port),
                    dst: (d.dst_addr, d.dst_port),
                };
                let segment = Segment {
                    seq: d.tcp_seq,
                    flags: d.tcp_flags,
                    data: d.payload,
                    len: d.payload_len,
                    now_ns: d.boot_ns,
                };
                let undecodable = self.streams.undecodable;
                let mut m = Vec::new();
                self.streams.segment(key, segment, &mut m);
                self.counters.dns_undecodable += self.streams.undecodable - undecodable;
                m
            }
        };
        let src = socket(d.ip_version, &d.src_addr, d.src_port);
        let dst = socket(d.ip_version, &d.dst_addr, d.dst_port);
        let transport = if d.protocol == 17 { "udp" } else { "tcp" };
        for m in messages {
            self.counters.dns_messages += 1;
            // A query going out, or a response coming in; the other halves are the same
            // exchange seen from the server side (loopback) or a local DNS server's traffic.
            let (message_type, client, server) = match (d.direction, m.response) {
                (direction::EGRESS, false) => (DnsMessageType::Query, src, dst),
                (direction::INGRESS, true) => (DnsMessageType::Response, dst, src),
                _ => continue,
            };
            let mut task = d.task;
            let key = client.map(|client| PendingKey { client, id: m.id });
            let mut inferred = false;
            match message_type {
                DnsMessageType::Query => {
                    if let Some(key) = key {
                        if self.pending.len() >= PENDING_MAX {
                            self.pending.clear();
                        }
                        self.pending.insert(
                            key,
                            Pending {
                                boot_ns: d.boot_ns,
                                pid: task.tgid,
                            },
                        );
                    }
                }
                DnsMessageType::Response => {
                    let pending = key.and_then(|k| self.pending.remove(&k));
                    match pending {
                        Some(p) if d.owner == owner_source::UNKNOWN => task.tgid = p.pid,
                        Some(_) => {}
                        // Its query went by a path the hooks miss: the rules see it now.
                        None => inferred = true,
                    }
                }
            }
            let (process, parent) = if task.tgid != 0 {
                self.dns_process(&task)
            } else {
                (None, None)
            };
            let (mut process, mut parent) = (process, parent);
            let mut answers: Vec<String> = m.answers.into_iter().map(|a| a.data).collect();
            let questions = m.questions.len();
            for (i, q) in m.questions.into_iter().enumerate() {
                if inferred {
                    self.counters.dns_inferred += 1;
                    out.push(Event::Dns(DnsEvent {
                        time: self.clock.to_system_time(d.boot_ns),
                        host: self.host.clone(),
                        platform: Platform::Linux,
                        message_type: DnsMessageType::Query,
                        query: q.name.clone(),
                        query_type: dns::type_name(q.qtype),
                        transaction_id: m.id,
                        reply_code: String::new(),
                        reply_code_id: None,
                        answers: Vec::new(),
                        src: client,
                        dest: server,
                        transport,
                        process: process.clone(),
                        parent: parent.clone(),
                        inferred_from_response: true,
                    }));
                }
                // One event per question; the last one takes what the others copy.
                let (process, parent, answers) = if i + 1 == questions {
                    (process.take(), parent.take(), std::mem::take(&mut answers))
                } else {
                    (process.clone(), parent.clone(), answers.clone())
                };
                out.push(Event::Dns(DnsEvent {
                    time: self.clock.to_system_time(d.boot_ns),
                    host: self.host.clone(),
                    platform: Platform::Linux,
                    message_type,
                    query: q.name,
                    query_type: dns::type_name(q.qtype),
                    transaction_id: m.id,
                    reply_code: if m.response {
                        dns::rcode_name(m.rcode).to_string()
                    } else {
                        String::new()
                    },
                    reply_code_id: m.response.then_some(m.rcode),
                    answers,
                    src: client,
                    dest: server,
                    transport,
                    process,
                    parent,
                    inferred_from_response: false,
                }));
            }
        }
    }
}

/// The engine's view of a table entry, as user `uid`.
/// The engine's view of a table entry: shared strings, no copies.
fn process_of(users: &mut Users, info: &ProcInfo, uid: u32) -> Process {
    let (user, user_id) = users.name_and_id(uid);
    Process {
        pid: info.pid,
        name: info.name.clone(),
        path: info.path.clone(),
        command_line: info.command_line.clone(),
        user,
        user_id,
        original_file_name: info.original_file_name.clone().unwrap_or_default(),
    }
}

/// The whole argument area of `pid` from `/proc/PID/cmdline`, if the process still runs and
/// it is as long as the kernel said (`total` bytes), so that it is the same program's.
fn full_args(pid: u32, total: u32) -> Option<Vec<String>> {
    let bytes = std::fs::read(format!("/proc/{pid}/cmdline"))
        .inspect_err(|e| log::debug!("pid {pid}: cannot read its command line: {e}"))
        .ok()?;
    if bytes.len() != total as usize {
        log::debug!(
            "pid {pid}: command line is {} bytes, not {total}: not the exec'd one",
            bytes.len()
        );
        return None;
    }
    Some(decode::argv(&bytes))
}

fn socket(version: u8, addr: &[u8; 16], port: u16) -> Option<SocketAddr> {
    let ip = match version {
        4 => IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
        6 => IpAddr::V6(Ipv6Addr::from(*addr)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}
