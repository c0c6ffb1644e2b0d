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

use std::sync::Arc;

use tunnelwatch_engine::event::{Event, Platform, Process, ProcessEvent};

use crate::{
    dns_map,
    fields::{RawEvent, Source, filetime_to_system_time},
    host::Host,
    paths::{DeviceMap, file_name},
    process_map::{self, ImageStart, KernelStart, image_from_command_line, same_image},
    process_table::{PathSource, ProcInfo, ProcessTable, SAME_PROCESS},
    schema::{dns_client, kernel_process, kernel_trace},
    sid::AccountCache,
};

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
}

/// The mapping with its state.
pub struct Enricher<H: Host> {
    host_name: Arc<str>,
    devices: DeviceMap,
    procs: ProcessTable,
    host: H,
    accounts: AccountCache,
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
            counters: Counters::default(),
        }
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

    /// Forgets processes that exited long enough before `now` (FILETIME).
    pub fn tick(&mut self, now: i64) {
        self.procs.expire(now);
    }

    /// Handles one ETW event, appending the engine events it makes to `out`.
    pub fn handle(&mut self, raw: &RawEvent, out: &mut Vec<Event>) {
        self.counters.records += 1;
        let (h, f) = (&raw.header, &raw.fields);
        let mapped = match (h.source, h.event_id, h.opcode) {
            (Source::KernelProcess, kernel_process::PROCESS_START, _) => {
                process_map::image_start(h, f, &self.devices).map(|s| self.image_start(s))
            }
            (Source::KernelProcess, kernel_process::PROCESS_STOP, _)
            | (Source::KernelTrace, _, kernel_trace::END) => {
                process_map::stopped_pid(f).map(|pid| self.procs.exited(pid, h.timestamp))
            }
            (Source::KernelTrace, _, op @ (kernel_trace::START | kernel_trace::DC_START)) => {
                process_map::kernel_start(h, f).map(|k| {
                    if let Some(e) = self.kernel_start(k, op == kernel_trace::START) {
                        out.push(Event::Process(e));
                        self.counters.process_starts += 1;
                    }
                })
            }
            (Source::DnsClient, dns_client::QUERY | dns_client::COMPLETED, _) => {
                let (process, parent) = self.dns_process(h.pid);
                dns_map::dns_event(h, f, &self.host_name, process, parent).map(|e| {
                    out.push(Event::Dns(e));
                    self.counters.dns_events += 1;
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
            k.image_file_name.as_str().into()
        } else {
            file_name(&path).into()
        };
        let (user, user_id) = match &k.sid {
            Some(sid) => {
                let host = &mut self.host;
                let user = self.accounts.get(sid, |s| host.account_name(s));
                (user.unwrap_or_default(), sid.to_string())
            }
            None => (String::new(), String::new()),
        };
        let process = Process {
            pid: k.pid,
            name,
            path,
            command_line: k.command_line.into(),
            user: user.into(),
            user_id: user_id.into(),
            original_file_name: Arc::default(),
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
        })
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
            None => {
                let path = self.host.live_image_path(pid).unwrap_or_default();
                let process = Process {
                    pid,
                    name: file_name(&path).into(),
                    path: path.into(),
                    ..Process::default()
                };
                (Some(process), None)
            }
        }
    }
}
