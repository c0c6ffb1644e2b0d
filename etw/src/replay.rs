//! `.etl` traces to engine events, on any OS: what `tunnelwatch replay FILE.etl` runs.
//!
//! The records the live sensor consumes are taken from the trace ([`crate::etl`]): the kernel
//! logger's Process Start, End, DCStart (decoded by [`crate::process_v4`], as live),
//! Microsoft-Windows-Kernel-Process 1 and 2 and Microsoft-Windows-DNS-Client 3006 and 3008
//! and Microsoft-Windows-Kernel-Network 12, 28, 42 and 58 (decoded from their manifests'
//! templates, [`crate::manifest_payload`]), turned into the
//! same [`RawEvent`]s the ETW callbacks make, and run through the same [`Enricher`]. The host
//! is the trace: it has no live processes or image files; account names are those of the
//! well-known SIDs (and, on Windows, what `LookupAccountSidW` says). A trace without kernel
//! Process events (recorded with Kernel-Process only) is mapped as the live fallback mode
//! does. The enricher's clock is the trace's: held DNS events go out when the trace has moved
//! past their wait, and at its end.

use std::{collections::VecDeque, io::Read};

use tunnelwatch_engine::event::Event;

use crate::{
    enrich::{Enricher, Mode},
    etl::{EtlError, EtlReader, Guid, Kind, ReadStats},
    fields::{FILETIME_SECOND, Header, RawEvent, Source},
    host::Host,
    manifest_payload,
    paths::DeviceMap,
    process_v4,
    schema::{dns_client, kernel_network, kernel_process, kernel_trace},
    sid::Sid,
};

pub use crate::etl::is_etl;

const PROCESS: Guid = Guid::parse(kernel_trace::PROCESS_GUID);
const KERNEL_PROCESS: Guid = Guid::parse(kernel_process::GUID);
const DNS_CLIENT: Guid = Guid::parse(dns_client::GUID);
const KERNEL_NETWORK: Guid = Guid::parse(kernel_network::GUID);
/// The kernel logger's Process group (`EVENT_TRACE_GROUP_PROCESS` >> 8).
const GROUP_PROCESS: u8 = 3;

/// The host of a replay: account names of well-known SIDs only (on Windows, also this
/// machine's `LookupAccountSidW`, right when the trace was recorded here).
#[derive(Debug, Default)]
pub struct TraceHost;

/// `NT AUTHORITY\...` names of the service SIDs (Microsoft Learn, "Well-known SIDs").
pub fn well_known_account(sid: &str) -> Option<&'static str> {
    Some(match sid {
        "S-1-5-18" => r"NT AUTHORITY\SYSTEM",
        "S-1-5-19" => r"NT AUTHORITY\LOCAL SERVICE",
        "S-1-5-20" => r"NT AUTHORITY\NETWORK SERVICE",
        _ => return None,
    })
}

impl Host for TraceHost {
    fn account_name(&mut self, sid: &Sid) -> Option<String> {
        if let Some(name) = well_known_account(&sid.to_string()) {
            return Some(name.to_owned());
        }
        #[cfg(windows)]
        {
            crate::sid::lookup_account(sid)
        }
        #[cfg(not(windows))]
        None
    }
    fn live_image_path(&mut self, _: u32) -> Option<String> {
        None
    }
    fn original_file_name(&mut self, _: &str) -> Option<String> {
        None
    }
}

/// What a replay read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub read: ReadStats,
    /// Records of the events the sensor maps.
    pub mapped_records: u64,
    /// Of those, the ones whose payload did not decode.
    pub undecodable: u64,
}

/// The RawEvent of one record, when it is one the sensor maps; `Err` when its payload does
/// not decode.
pub fn raw_event(
    kind: Kind,
    pid: Option<u32>,
    timestamp: i64,
    pointer_size: u8,
    payload: &[u8],
) -> Option<Result<RawEvent, ()>> {
    let header = |source, event_id, opcode, version: u16| Header {
        source,
        event_id,
        opcode,
        version: version as u8,
        pid: pid.unwrap_or(0),
        timestamp,
        pointer_size,
    };
    // The kernel's Process events, with a system or perfinfo header, or relogged as classic.
    let process = match kind {
        Kind::Kernel {
            group: GROUP_PROCESS,
            opcode,
            version,
        } => Some((opcode, version)),
        Kind::Classic {
            guid,
            opcode,
            version,
        } if guid == PROCESS => Some((opcode, version)),
        _ => None,
    };
    if let Some((opcode, version)) = process {
        if !matches!(
            opcode,
            kernel_trace::START | kernel_trace::END | kernel_trace::DC_START
        ) {
            return None;
        }
        let h = header(Source::KernelTrace, 0, opcode, version);
        return Some(process_v4::raw_event(h, payload).map_err(drop));
    }
    match kind {
        Kind::Provider {
            guid,
            id,
            version,
            opcode,
        } if guid == KERNEL_PROCESS
            && matches!(
                id,
                kernel_process::PROCESS_START | kernel_process::PROCESS_STOP
            ) =>
        {
            let h = header(Source::KernelProcess, id, opcode, u16::from(version));
            Some(
                manifest_payload::kernel_process(id, version, payload)
                    .map(|fields| RawEvent { header: h, fields })
                    .ok_or(()),
            )
        }
        Kind::Provider {
            guid,
            id,
            version,
            opcode,
        } if guid == DNS_CLIENT && matches!(id, dns_client::QUERY | dns_client::COMPLETED) => {
            let h = header(Source::DnsClient, id, opcode, u16::from(version));
            Some(
                manifest_payload::dns_client(id, payload)
                    .map(|fields| RawEvent { header: h, fields })
                    .ok_or(()),
            )
        }
        Kind::Provider {
            guid,
            id,
            version,
            opcode,
        } if guid == KERNEL_NETWORK && kernel_network::EVENTS.contains(&id) => {
            let h = header(Source::KernelNetwork, id, opcode, u16::from(version));
            Some(
                manifest_payload::kernel_network(id, payload)
                    .map(|fields| RawEvent { header: h, fields })
                    .ok_or(()),
            )
        }
        _ => None,
    }
}

/// The engine events of an `.etl` trace, in trace order, as an iterator; an `Err` ends it
/// (after every event before the fault).
pub struct EtlReplay<R: Read> {
    reader: EtlReader<R>,
    /// Events read but not yet taken from the iterator.
    pending: VecDeque<Event>,
    /// The first part of the trace, read ahead to learn whether it has kernel Process events.
    lookahead: VecDeque<RawEvent>,
    enricher: Option<Enricher<TraceHost>>,
    host_name: String,
    summary: Summary,
    last_tick: i64,
    done: bool,
    /// The fault that ended reading, given after the events before it.
    error: Option<EtlError>,
}

/// Records read ahead before choosing the mode.
const LOOKAHEAD: usize = 4096;

impl<R: Read> EtlReplay<R> {
    /// Opens the trace; `host_name` is the CIM `dest` of its events (the trace does not say).
    pub fn new(input: R, host_name: &str) -> Result<EtlReplay<R>, EtlError> {
        Ok(EtlReplay {
            reader: EtlReader::new(input)?,
            pending: VecDeque::new(),
            lookahead: VecDeque::new(),
            enricher: None,
            host_name: host_name.to_owned(),
            summary: Summary::default(),
            last_tick: 0,
            done: false,
            error: None,
        })
    }

    pub fn summary(&self) -> Summary {
        Summary {
            read: *self.reader.stats(),
            ..self.summary
        }
    }

    /// The next RawEvent of the trace, `None` at its end.
    fn next_raw(&mut self) -> Result<Option<RawEvent>, EtlError> {
        while let Some(r) = self.reader.next_record()? {
            let Some(raw) = raw_event(r.kind, r.pid, r.timestamp, r.pointer_size, r.payload) else {
                continue;
            };
            self.summary.mapped_records += 1;
            match raw {
                Ok(raw) => return Ok(Some(raw)),
                Err(()) => self.summary.undecodable += 1,
            }
        }
        Ok(None)
    }

    /// Chooses the mode from the start of the trace: kernel Process events make the process
    /// starts when there are any, else Kernel-Process's.
    fn start(&mut self) -> Result<(), EtlError> {
        while self.lookahead.len() < LOOKAHEAD {
            match self.next_raw()? {
                Some(raw) => self.lookahead.push_back(raw),
                None => break,
            }
        }
        let kernel = self
            .lookahead
            .iter()
            .any(|r| r.header.source == Source::KernelTrace);
        let mode = if kernel || self.lookahead.is_empty() {
            Mode::Kernel
        } else {
            Mode::KernelProcess
        };
        self.enricher = Some(
            Enricher::new(
                self.host_name.as_str().into(),
                DeviceMap::default(),
                TraceHost,
            )
            .with_mode(mode),
        );
        Ok(())
    }

    fn feed(&mut self, raw: RawEvent) {
        let enricher = self.enricher.as_mut().expect("started");
        let mut out = Vec::new();
        enricher.handle(&raw, &mut out);
        let now = raw.header.timestamp;
        if now - self.last_tick >= FILETIME_SECOND {
            self.last_tick = now;
            enricher.tick(now, &mut out);
        }
        self.pending.extend(out);
    }

    pub fn mode(&self) -> Option<Mode> {
        self.enricher.as_ref().map(|e| e.mode())
    }
}

impl<R: Read> Iterator for EtlReplay<R> {
    type Item = Result<Event, EtlError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(Ok(e));
            }
            if self.done {
                return self.error.take().map(Err);
            }
            if self.enricher.is_none()
                && let Err(e) = self.start()
            {
                // Whatever was read ahead before the fault is still replayed.
                self.error = Some(e);
                if self.enricher.is_none() {
                    self.enricher = Some(Enricher::new(
                        self.host_name.as_str().into(),
                        DeviceMap::default(),
                        TraceHost,
                    ));
                }
                let raws: Vec<_> = self.lookahead.drain(..).collect();
                for raw in raws {
                    self.feed(raw);
                }
                let mut out = Vec::new();
                self.enricher.as_mut().expect("started").flush(&mut out);
                self.pending.extend(out);
                self.done = true;
                continue;
            }
            let raw = match self.lookahead.pop_front() {
                Some(raw) => Ok(Some(raw)),
                None => self.next_raw(),
            };
            match raw {
                Ok(Some(raw)) => self.feed(raw),
                Ok(None) => {
                    self.done = true;
                    let mut out = Vec::new();
                    self.enricher.as_mut().expect("started").flush(&mut out);
                    self.pending.extend(out);
                }
                Err(e) => {
                    // The events before the fault first, then the fault.
                    self.done = true;
                    self.error = Some(e);
                    let mut out = Vec::new();
                    self.enricher.as_mut().expect("started").flush(&mut out);
                    self.pending.extend(out);
                }
            }
        }
    }
}
