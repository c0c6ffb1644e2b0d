//! The ETW sessions (Windows only), with ferrisetw.
//!
//! - `tunnelwatch` (user session): Microsoft-Windows-Kernel-Process with keyword
//!   `WINEVENT_KEYWORD_PROCESS` (0x10) and an event-id filter for 1 and 2 (process start and
//!   stop; no threads, images, ...); Microsoft-Windows-DNS-Client with an event-id filter for
//!   3006 and 3008. Those two carry only the manifest's reserved keyword bit 63, like the
//!   provider's other events, so its keyword mask is all ones (every keyword, stated rather
//!   than left to how a zero mask is read) and the event-id filter (Windows 8.1+) is what
//!   narrows it; on older systems the callback drops the rest. Microsoft-Windows-Kernel-Network
//!   with keywords `KERNEL_NETWORK_KEYWORD_IPV4` | `_IPV6` (0x30: the provider's keywords are
//!   per IP version, TCP and UDP events carry both) and an event-id filter for 12, 28 (TCP
//!   connection attempted) and 42, 58 (UDP data sent): no data, receive, retransmit or
//!   disconnect events.
//! - `tunnelwatch-kernel` (a system logger session, Windows 8+): the kernel's process events
//!   (`EVENT_TRACE_FLAG_PROCESS`), with their rundown (DCStart) when the session starts. Their
//!   user data is decoded by `process_v4.rs` (not by TDH, which has no type for the `UserSID`
//!   and then loses the image name and command line after it).
//!
//! Windows allows eight system logger sessions, and EDR and performance tools hold some: when
//! the kernel session cannot be started (for any reason but access denied), the sensor runs
//! on the user session alone ([`Mode::KernelProcess`]: Kernel-Process's ProcessStart, the
//! command line read from the live process) and says so.
//!
//! The names are fixed, so that a session left behind by a crash is found and stopped before
//! starting ([`start`]). The callbacks only copy the properties `schema.rs` lists into a
//! [`RawEvent`] and `try_send` it on a bounded channel: a full channel drops the event (and
//! counts it) rather than stall ETW's delivery thread. ETW's own loss counters are read with
//! `ControlTraceW(EVENT_TRACE_CONTROL_QUERY)` ([`Sessions::losses`]).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use ferrisetw::{
    EventRecord, SchemaLocator,
    native::EvntraceNativeError,
    parser::Parser,
    provider::{EventFilter, Provider, kernel_providers},
    trace::{KernelTrace, TraceError, TraceProperties, TraceTrait, UserTrace, stop_trace_by_name},
};

use crate::{
    enrich::Mode,
    fields::{Fields, Header, RawEvent, Source, Value, pointer_size},
    loss_counters::SessionLosses,
    manifest_payload, process_v4,
    schema::{self, FieldSpec, Kind, dns_client, kernel_network, kernel_process, kernel_trace},
    stats::Losses,
};

/// The user session's name.
pub const USER_SESSION: &str = "tunnelwatch";
/// The kernel session's name.
pub const KERNEL_SESSION: &str = "tunnelwatch-kernel";
/// Events the channel holds before the callbacks start dropping.
pub const CHANNEL_CAPACITY: usize = 16 * 1024;
/// `TRACE_LEVEL_INFORMATION`.
const LEVEL_INFORMATION: u8 = 4;

/// Counters the callbacks update.
#[derive(Debug, Default)]
struct Shared {
    dropped: AtomicU64,
    decode_errors: AtomicU64,
}

/// Why the sessions could not start.
#[derive(Debug)]
pub enum StartError {
    /// Not allowed (not elevated, or a policy forbids it).
    AccessDenied(String),
    /// Any other refusal from ETW.
    Etw(String),
}

/// The running sessions and their processing threads.
pub struct Sessions {
    user: Option<UserTrace>,
    kernel: Option<KernelTrace>,
    threads: Vec<(&'static str, JoinHandle<Result<(), String>>)>,
    shared: Arc<Shared>,
    mode: Mode,
    /// Why the kernel session is not there (Kernel-Process mode).
    kernel_refused: Option<String>,
    /// ETW's loss counters as last read, per session.
    counters: std::sync::Mutex<SessionLosses>,
}

/// Stops stale sessions of our names, then starts both sessions, feeding `tx`.
pub fn start(tx: SyncSender<RawEvent>) -> Result<Sessions, StartError> {
    for name in [USER_SESSION, KERNEL_SESSION] {
        if stop_trace_by_name(name).is_ok() {
            log::warn!("stopped a stale ETW session '{name}' (left by an earlier run)");
        }
    }
    let shared = Arc::new(Shared::default());
    let properties = TraceProperties {
        buffer_size: 64,
        min_buffer: 8,
        max_buffer: 64,
        flush_timer: Duration::from_secs(1),
        ..TraceProperties::default()
    };

    let kernel_process = Provider::by_guid(kernel_process::GUID)
        .any(kernel_process::KEYWORD_PROCESS)
        .level(LEVEL_INFORMATION)
        .add_filter(EventFilter::ByEventIds(vec![
            kernel_process::PROCESS_START,
            kernel_process::PROCESS_STOP,
        ]))
        .add_callback(callback(Source::KernelProcess, tx.clone(), shared.clone()))
        .build();
    let dns = Provider::by_guid(dns_client::GUID)
        .any(u64::MAX)
        .level(LEVEL_INFORMATION)
        .add_filter(EventFilter::ByEventIds(vec![
            dns_client::QUERY,
            dns_client::COMPLETED,
        ]))
        .add_callback(callback(Source::DnsClient, tx.clone(), shared.clone()))
        .build();
    let network = Provider::by_guid(kernel_network::GUID)
        .any(kernel_network::KEYWORD_IPV4 | kernel_network::KEYWORD_IPV6)
        .level(LEVEL_INFORMATION)
        .add_filter(EventFilter::ByEventIds(kernel_network::EVENTS.to_vec()))
        .add_callback(callback(Source::KernelNetwork, tx.clone(), shared.clone()))
        .build();
    let (user, user_handle) = UserTrace::new()
        .named(USER_SESSION.to_owned())
        .set_trace_properties(properties)
        .enable(kernel_process)
        .enable(dns)
        .enable(network)
        .start()
        .map_err(|e| start_error(USER_SESSION, e))?;

    let process = Provider::kernel(&kernel_providers::PROCESS_PROVIDER)
        .add_callback(kernel_callback(tx, shared.clone()))
        .build();
    let (kernel, kernel_refused) = match KernelTrace::new()
        .named(KERNEL_SESSION.to_owned())
        .set_trace_properties(properties)
        .enable(process)
        .start()
    {
        Ok(k) => (Some(k), None),
        Err(e) => match start_error(KERNEL_SESSION, e) {
            StartError::AccessDenied(m) => {
                let _ = user.stop();
                return Err(StartError::AccessDenied(m));
            }
            StartError::Etw(m) => (None, Some(m)),
        },
    };
    let mode = if kernel.is_some() {
        Mode::Kernel
    } else {
        Mode::KernelProcess
    };

    let spawn = |name: &'static str, f: Box<dyn FnOnce() -> Result<(), TraceError> + Send>| {
        let handle = std::thread::Builder::new()
            .name(format!("etw-{name}"))
            .spawn(move || f().map_err(|e| describe(&e)))
            .expect("cannot start a thread");
        (name, handle)
    };
    let mut threads = vec![spawn(
        USER_SESSION,
        Box::new(move || UserTrace::process_from_handle(user_handle)),
    )];
    let kernel = kernel.map(|(kernel, kernel_handle)| {
        threads.push(spawn(
            KERNEL_SESSION,
            Box::new(move || KernelTrace::process_from_handle(kernel_handle)),
        ));
        kernel
    });
    Ok(Sessions {
        user: Some(user),
        kernel,
        threads,
        shared,
        mode,
        kernel_refused,
        counters: std::sync::Mutex::new(SessionLosses::default()),
    })
}

impl Sessions {
    /// Which events make process starts: the kernel session's, or (when it could not be
    /// started) Kernel-Process's.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Why the kernel session could not be started, in Kernel-Process mode.
    pub fn kernel_refused(&self) -> Option<&str> {
        self.kernel_refused.as_deref()
    }

    /// Losses so far: ETW's counters for the sessions, and the channel's drops. A query that
    /// fails keeps the session's last counts (never read as a loss later).
    pub fn losses(&self) -> Losses {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.update(USER_SESSION, query_losses(USER_SESSION));
        if self.kernel.is_some() {
            counters.update(KERNEL_SESSION, query_losses(KERNEL_SESSION));
        }
        let (events, buffers) = counters.totals();
        Losses {
            channel_dropped: self.shared.dropped.load(Ordering::Relaxed),
            decode_errors: self.shared.decode_errors.load(Ordering::Relaxed),
            etw_events_lost: events,
            etw_buffers_lost: buffers,
        }
    }

    /// A session whose processing ended while the sensor runs (someone stopped it, e.g.
    /// `logman stop tunnelwatch -ets`), with why.
    pub fn ended(&self) -> Option<String> {
        self.threads
            .iter()
            .find(|(_, t)| t.is_finished())
            .map(|(name, _)| format!("the ETW session '{name}' stopped"))
    }

    /// Stops both sessions and waits (up to 5 s) for their threads to drain.
    pub fn stop(mut self) {
        if let Some(k) = self.kernel.take()
            && let Err(e) = k.stop()
        {
            log::warn!("stopping {KERNEL_SESSION}: {}", describe(&e));
        }
        if let Some(u) = self.user.take()
            && let Err(e) = u.stop()
        {
            log::warn!("stopping {USER_SESSION}: {}", describe(&e));
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (name, t) in self.threads.drain(..) {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                if let Ok(Err(e)) = t.join() {
                    log::debug!("{name}: ProcessTrace ended with {e}");
                }
            } else {
                log::warn!("{name}: ProcessTrace did not return in 5 s");
            }
        }
    }
}

/// The callback of one provider: copy the listed properties out, hand them over, never block.
/// The documented versions are decoded from the user data (`manifest_payload.rs`, the code
/// `.etl` replay runs); later ones through TDH.
fn callback(
    source: Source,
    tx: SyncSender<RawEvent>,
    shared: Arc<Shared>,
) -> impl FnMut(&EventRecord, &SchemaLocator) + Send + Sync + 'static {
    move |record: &EventRecord, locator: &SchemaLocator| {
        let Some(specs) = schema::fields_of(source, record.event_id(), record.opcode()) else {
            return;
        };
        let (id, version) = (record.event_id(), record.version());
        let fields = if manifest_payload::is_known(source, id, version) {
            match manifest_payload::fields(source, id, version, user_data(record)) {
                Some(f) => f,
                None => {
                    shared.decode_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        } else {
            let schema = match locator.event_schema(record) {
                Ok(s) => s,
                Err(_) => {
                    shared.decode_errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            };
            let parser = Parser::create(record, &schema);
            let mut fields = Fields::new();
            for spec in specs {
                if let Some(v) = read(&parser, spec) {
                    fields.insert(spec.name, v);
                }
            }
            fields
        };
        let raw = RawEvent {
            header: Header {
                source,
                event_id: record.event_id(),
                opcode: record.opcode(),
                version: record.version(),
                pid: record.process_id(),
                timestamp: record.raw_timestamp(),
                pointer_size: pointer_size(record.event_flags()),
            },
            fields,
        };
        if let Err(TrySendError::Full(_)) = tx.try_send(raw) {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The kernel session's callback: Process Start, End and DCStart, decoded from their user
/// data (`process_v4.rs`), handed over, never blocking.
fn kernel_callback(
    tx: SyncSender<RawEvent>,
    shared: Arc<Shared>,
) -> impl FnMut(&EventRecord, &SchemaLocator) + Send + Sync + 'static {
    move |record: &EventRecord, _: &SchemaLocator| {
        let opcode = record.opcode();
        if !matches!(
            opcode,
            kernel_trace::START | kernel_trace::END | kernel_trace::DC_START
        ) {
            return;
        }
        let header = Header {
            source: Source::KernelTrace,
            event_id: record.event_id(),
            opcode,
            version: record.version(),
            pid: record.process_id(),
            timestamp: record.raw_timestamp(),
            pointer_size: pointer_size(record.event_flags()),
        };
        match process_v4::raw_event(header, user_data(record)) {
            Ok(raw) => {
                if let Err(TrySendError::Full(_)) = tx.try_send(raw) {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                shared.decode_errors.fetch_add(1, Ordering::Relaxed);
                log::debug!("kernel Process event (opcode {opcode}): {e}");
            }
        }
    }
}

/// The event's user data (`EVENT_RECORD.UserData`, `UserDataLength` bytes).
fn user_data(record: &EventRecord) -> &[u8] {
    use windows_sys::Win32::System::Diagnostics::Etw::EVENT_RECORD;

    // SAFETY: ferrisetw 1.2.0's `EventRecord` is `#[repr(transparent)]` over `EVENT_RECORD`
    // (src/native/etw_types/event_record.rs), whose layout windows-sys's matches; the record
    // and its user data live for the callback, which the returned slice does not outlive.
    unsafe {
        let raw = &*(record as *const EventRecord as *const EVENT_RECORD);
        if raw.UserData.is_null() || raw.UserDataLength == 0 {
            return &[];
        }
        std::slice::from_raw_parts(raw.UserData as *const u8, usize::from(raw.UserDataLength))
    }
}

/// One property, as `spec` says; `None` when the event does not have it.
fn read(parser: &Parser<'_, '_>, spec: &FieldSpec) -> Option<Value> {
    let name = spec.name;
    match spec.kind {
        Kind::U32 => parser
            .try_parse::<u32>(name)
            .map(Value::U32)
            .or_else(|_| parser.try_parse::<u64>(name).map(Value::U64))
            .ok(),
        Kind::U64 => parser
            .try_parse::<u64>(name)
            .map(Value::U64)
            .or_else(|_| parser.try_parse::<u32>(name).map(Value::U32))
            .ok(),
        // ANSI strings that are not UTF-8 come out as bytes: decoded lossily.
        Kind::Str => parser
            .try_parse::<String>(name)
            .map(Value::Str)
            .ok()
            .or_else(|| {
                let bytes = parser.try_parse::<Vec<u8>>(name).ok()?;
                let text = String::from_utf8_lossy(&bytes);
                Some(Value::Str(text.trim_end_matches('\0').to_owned()))
            }),
        Kind::Bytes => parser.try_parse::<Vec<u8>>(name).map(Value::Bytes).ok(),
        Kind::Ip => parser
            .try_parse::<std::net::IpAddr>(name)
            .map(Value::Ip)
            .ok(),
        // `win:Port`: the UInt16 is in network byte order; TDH hands its bytes as they are.
        Kind::Port => parser
            .try_parse::<u16>(name)
            .map(|p| Value::U32(u32::from(u16::from_be_bytes(p.to_ne_bytes()))))
            .ok(),
    }
}

fn describe(e: &TraceError) -> String {
    match e {
        TraceError::InvalidTraceName => "invalid trace name".into(),
        TraceError::EtwNativeError(EvntraceNativeError::InvalidHandle) => "invalid handle".into(),
        TraceError::EtwNativeError(EvntraceNativeError::AlreadyExist) => {
            "a session of that name already exists".into()
        }
        TraceError::EtwNativeError(EvntraceNativeError::IoError(io)) => io.to_string(),
    }
}

fn start_error(session: &str, e: TraceError) -> StartError {
    let text = format!("cannot start the ETW session '{session}': {}", describe(&e));
    match e {
        TraceError::EtwNativeError(EvntraceNativeError::IoError(io))
            if crate::loss_counters::is_access_denied(io.raw_os_error()) =>
        {
            StartError::AccessDenied(text)
        }
        _ => StartError::Etw(text),
    }
}

/// `(EventsLost, RealTimeBuffersLost)` of the session `name`.
fn query_losses(name: &str) -> Option<(u64, u64)> {
    use windows_sys::Win32::System::Diagnostics::Etw::{
        CONTROLTRACE_HANDLE, ControlTraceW, EVENT_TRACE_CONTROL_QUERY, EVENT_TRACE_PROPERTIES,
    };

    // EVENT_TRACE_PROPERTIES followed by room for the session and log file names.
    const NAMES: usize = 2 * 1024 * 2;
    #[repr(C)]
    struct Query {
        props: EVENT_TRACE_PROPERTIES,
        names: [u8; NAMES],
    }
    let mut q = Query {
        props: EVENT_TRACE_PROPERTIES::default(),
        names: [0; NAMES],
    };
    q.props.Wnode.BufferSize = std::mem::size_of::<Query>() as u32;
    q.props.LoggerNameOffset = std::mem::size_of::<EVENT_TRACE_PROPERTIES>() as u32;
    q.props.LogFileNameOffset = q.props.LoggerNameOffset + (NAMES / 2) as u32;
    let wide: Vec<u16> = name.encode_utf16().chain([0]).collect();
    // SAFETY: `q` is a writable EVENT_TRACE_PROPERTIES with `Wnode.BufferSize` bytes, names
    // fitting in it; `wide` is NUL-terminated.
    let status = unsafe {
        ControlTraceW(
            CONTROLTRACE_HANDLE { Value: 0 },
            wide.as_ptr(),
            &mut q.props,
            EVENT_TRACE_CONTROL_QUERY,
        )
    };
    (status == 0).then(|| {
        (
            u64::from(q.props.EventsLost),
            u64::from(q.props.RealTimeBuffersLost),
        )
    })
}
