//! The bodies of tunnelwatch's fuzz targets (`fuzz_targets/*.rs` are one-line wrappers), with
//! the invariants each checks. A failed invariant panics, which libFuzzer reports as a crash.
//! See README.md.

use std::{collections::HashSet, sync::Arc, time::Duration};

use tunnelwatch::{
    linux::{
        decode::{self, DecodeError, Record},
        enrich::Enricher,
        proc_table::ProcTable,
        settings::{LinuxSettings, MAX_DNS_PORTS, RING_BUFFER_MAX, RING_BUFFER_MIN},
    },
    net::{
        quic,
        tls::{self, ClientHello, MAX_ALPN, MAX_ALPN_LEN},
    },
};
use tunnelwatch_common::limits::{DNS_CAPTURE_MAX, EXEC_DATA_SIZE, FLIGHT_CAPTURE_MAX};
use tunnelwatch_engine::{
    allowlist::Allowlist,
    config::Config,
    correlation::Limits as CorrelationLimits,
    dns::{self, DnsError, DnsMessage, MAX_ANSWERS, MAX_DATA_LEN, MAX_QUESTIONS, MAX_TCP_MESSAGES},
    engine::Engine,
    event::{DnsEvent, DnsMessageType, Event, Platform, Process, ProcessEvent},
    ruleset::RuleSet,
    step::Step,
};
use tunnelwatch_identify::{
    Error as IdentifyError, Limits, buildinfo, identify, read_build_info, testing::SparseFile,
    tools,
};

pub mod records;

/// `dns_message`: the first byte's low bit is `complete`, the rest is a DNS payload, decoded
/// both as one message (UDP) and as a TCP segment of length-prefixed messages.
pub fn dns_message(data: &[u8]) {
    let Some((&flags, payload)) = data.split_first() else {
        return;
    };
    let complete = flags & 1 != 0;
    match dns::parse_message(payload, complete) {
        Ok(m) => {
            check_message(&m);
            assert!(
                complete || m.partial,
                "an incomplete message is not partial"
            );
        }
        Err(DnsError::TooShort(n)) => assert!(n < 12 && n == payload.len()),
        Err(e) => {
            assert!(payload.len() >= 12, "{e} for {} bytes", payload.len());
            let _ = e.to_string();
        }
    }
    let messages = dns::parse_tcp_segment(payload, complete);
    assert!(messages.len() <= MAX_TCP_MESSAGES);
    for m in &messages {
        check_message(m);
        assert!(!m.questions.is_empty(), "a TCP message without questions");
    }
}

/// What every decoded message must satisfy.
pub fn check_message(m: &DnsMessage) {
    assert!(
        m.questions.len() <= MAX_QUESTIONS,
        "{} questions",
        m.questions.len()
    );
    assert!(
        m.answers.len() <= MAX_ANSWERS,
        "{} answers",
        m.answers.len()
    );
    for q in &m.questions {
        check_name(&q.name);
        check_type_name(q.qtype);
    }
    for a in &m.answers {
        check_name(&a.name);
        check_type_name(a.rtype);
        assert!(
            a.data.len() <= MAX_DATA_LEN,
            "answer data of {} bytes",
            a.data.len()
        );
        assert!(
            a.data.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "answer data not printable ASCII: {:?}",
            a.data
        );
    }
    assert!(!dns::rcode_name(m.rcode).is_empty());
}

/// A normalized name: printable ASCII without spaces (other bytes are `\DDD` escapes), lower
/// case, no trailing dot except the root's `.` (an escaped dot, `\.`, may end it), and
/// [`dns::normalize_name`] leaves it as it is.
pub fn check_name(name: &str) {
    assert!(!name.is_empty(), "empty name");
    assert!(
        name.bytes().all(|b| (0x21..0x7f).contains(&b)),
        "name not graphic ASCII: {name:?}"
    );
    assert!(
        !name.bytes().any(|b| b.is_ascii_uppercase()),
        "name not lower case: {name:?}"
    );
    if name != "." && name.ends_with('.') {
        let backslashes = name[..name.len() - 1]
            .bytes()
            .rev()
            .take_while(|&b| b == b'\\')
            .count();
        assert!(backslashes % 2 == 1, "trailing dot: {name:?}");
    }
    assert_eq!(dns::normalize_name(name), name, "not normalized");
}

fn check_type_name(t: u16) {
    let n = dns::type_name(t);
    assert!(!n.is_empty() && n.is_ascii(), "type name {n:?}");
}

/// `record_decode`: the whole input as one ring-buffer entry, then the input split into
/// entries ([`records::split`]), each decoded and handed, in order, to one [`Enricher`] (with
/// a process table that never reads `/proc`, and exec paths moved under a directory that does
/// not exist: [`records::jail_exec`]).
pub fn record_decode(data: &[u8]) {
    check_decoded(data, &decode::decode(data));
    let mut enricher = Enricher::new(Arc::from("fuzz"), ProcTable::detached());
    let mut events = Vec::new();
    let mut handled = 0u64;
    for entry in records::split(data) {
        let decoded = decode::decode(entry);
        check_decoded(entry, &decoded);
        let jailed;
        let (input, most): (&[u8], usize) = match &decoded {
            Ok(Record::Exec(e)) => {
                jailed = records::jail_exec(entry, e);
                (&jailed, 1)
            }
            // A TCP segment or a GSO datagram yields at most MAX_TCP_MESSAGES messages, each
            // question an event, and a response whose query was not seen one more (the
            // inferred query).
            Ok(Record::Dns(_)) => (entry, 2 * MAX_TCP_MESSAGES * MAX_QUESTIONS),
            // A flow that ends here (or an older one handed out to make room, or one the same
            // socket held), and the DNS query its first datagram may be.
            Ok(Record::Conn(_) | Record::Flight(_)) => (entry, 2 * (1 + MAX_QUESTIONS)),
            Ok(Record::Fork(_) | Record::Exit(_)) | Err(_) => (entry, 0),
        };
        let before = events.len();
        enricher.handle(input, &mut events);
        handled += 1;
        let made = events.len() - before;
        assert!(made <= most, "{made} events from one record");
        if matches!(decoded, Ok(Record::Exec(_))) {
            assert_eq!(made, 1, "an exec record made no event");
        }
        for ev in &events[before..] {
            check_event(ev);
        }
        assert_eq!(enricher.counters.records, handled);
        assert!(enricher.counters.decode_errors <= handled);
    }
    enricher.tick();
}

/// Whatever `decode` returned for `bytes`: slices inside `bytes`, lengths within the caps,
/// helpers that take what it returned never panic.
fn check_decoded(bytes: &[u8], decoded: &Result<Record<'_>, DecodeError>) {
    let inside = |part: &[u8]| {
        let outer = bytes.as_ptr_range();
        let inner = part.as_ptr_range();
        part.is_empty() || (inner.start >= outer.start && inner.end <= outer.end)
    };
    match decoded {
        Ok(Record::Exec(e)) => {
            for part in [e.args, e.filename, e.path_components] {
                assert!(inside(part), "exec slice outside the record");
            }
            assert!(e.args.len() + e.filename.len() + e.path_components.len() <= EXEC_DATA_SIZE);
            let argv = decode::argv(e.args);
            assert!(argv.len() <= e.args.len(), "{} arguments", argv.len());
            let path = decode::exe_path(e.path_components);
            assert!(path.is_empty() || path.starts_with('/'), "path {path:?}");
            assert!(decode::comm(&e.task.comm).chars().count() <= 16);
            assert!(decode::comm(&e.parent_comm).chars().count() <= 16);
        }
        Ok(Record::Dns(d)) => {
            assert!(inside(d.payload), "DNS payload outside the record");
            assert!(d.payload.len() <= DNS_CAPTURE_MAX);
        }
        Ok(Record::Flight(f)) => {
            assert!(inside(f.payload), "flight payload outside the record");
            assert!(f.payload.len() <= FLIGHT_CAPTURE_MAX);
        }
        Ok(Record::Fork(_) | Record::Exit(_) | Record::Conn(_)) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

fn check_event(ev: &Event) {
    match ev {
        Event::Dns(d) => {
            check_name(&d.query);
            assert!(d.answers.len() <= MAX_ANSWERS);
        }
        Event::Connection(c) => {
            for name in [&c.dest_name, &c.server_name, &c.dns_name] {
                if !name.is_empty() {
                    check_name(name);
                }
            }
            assert!(c.name_source.is_some() == !c.dest_name.is_empty());
            assert!(c.alpn.len() <= MAX_ALPN);
            assert!(matches!(c.transport, "tcp" | "udp"), "{}", c.transport);
        }
        Event::Process(p) => {
            // The executable's path lies in the jail; when it is a dynamic loader run
            // directly, `process_path` is the program named in the arguments and the loader's
            // path (`loader`) is the executable's.
            let exe = if p.loader.is_empty() {
                &p.process.path
            } else {
                &p.loader
            };
            assert!(
                exe.is_empty() || exe.starts_with(&format!("/{}/", records::NO_SUCH_DIR)),
                "exec path {exe:?} escaped the jail"
            );
        }
    }
}

/// `tls_client_hello`: the input as the start of a TCP stream (TLS records) and as handshake
/// messages (a QUIC CRYPTO stream).
pub fn tls_client_hello(data: &[u8]) {
    for r in [
        tls::client_hello_from_records(data),
        tls::client_hello_from_handshake(data),
    ] {
        match r {
            Ok(h) => check_hello(&h),
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
}

/// What every ClientHello read must satisfy: a server name is a normalized name (as DNS
/// names are); at most `MAX_ALPN` protocols, each printable ASCII from at most `MAX_ALPN_LEN`
/// bytes (4 characters per escaped byte).
pub fn check_hello(h: &ClientHello) {
    if let Some(name) = &h.server_name {
        check_name(name);
    }
    assert!(h.alpn.len() <= MAX_ALPN, "{} ALPN protocols", h.alpn.len());
    for a in &h.alpn {
        assert!(a.len() <= 4 * MAX_ALPN_LEN, "ALPN of {} bytes", a.len());
        assert!(a.bytes().all(|b| (0x20..0x7f).contains(&b)), "ALPN {a:?}");
    }
}

/// `quic_initial`: the first byte picks how the rest is read. Bit 0 clear: datagrams, each
/// after a 2-byte length (the last takes what is left), as a flow's first datagrams. Bit 0
/// set: frames (from byte 2 on) sealed into one or two client Initial packets (QUIC v2 when
/// bit 1 is set; the second byte says where to split), so that they decrypt and the frame
/// reader, the CRYPTO reassembly and the TLS reader see the fuzzer's bytes. Frames are also
/// read as they are.
pub fn quic_initial(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let packets: Vec<Vec<u8>> = if mode & 1 == 0 {
        let mut out = Vec::new();
        let mut rest = rest;
        while !rest.is_empty() && out.len() < 4 {
            if rest.len() < 2 {
                out.push(rest.to_vec());
                break;
            }
            let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
            out.push(rest[2..2 + n].to_vec());
            rest = &rest[2 + n..];
        }
        out
    } else {
        let Some((&split, frames)) = rest.split_first() else {
            return;
        };
        let _ = quic::crypto_frames(frames);
        let version = if mode & 2 != 0 {
            quic::VERSION_2
        } else {
            quic::VERSION_1
        };
        let at = (split as usize * frames.len() / 255).min(frames.len());
        let dcid = [0x5a; 8];
        [&frames[..at], &frames[at..]]
            .iter()
            .enumerate()
            .filter_map(|(pn, f)| quic::protect_client_initial(version, &dcid, pn as u32, f, 1200))
            .collect()
    };
    let datagrams: Vec<&[u8]> = packets.iter().map(Vec::as_slice).collect();
    match quic::client_hello(&datagrams) {
        Ok(i) => check_hello(&i.client_hello),
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// `rule_loader`: the input (lossy UTF-8) as a rule file and as a configuration file. Errors
/// are fine; they must name the file and a line within it (or 0).
pub fn rule_loader(data: &[u8]) {
    const NAME: &str = "fuzz.yml";
    let text = String::from_utf8_lossy(data);
    // saphyr counts `\r`, `\n` and `\r\n` as line breaks; an error may point one line past
    // the last.
    let lines = text.bytes().filter(|&b| b == b'\n' || b == b'\r').count() + 2;
    match RuleSet::from_str(NAME, &text) {
        Ok(set) => {
            assert_eq!(set.len(), set.rules().len());
            assert_eq!(set.list().len(), set.len() + set.correlations().len());
            assert_eq!(set.resolved().len(), set.correlations().len());
            run_correlations(set);
        }
        Err(e) => {
            assert!(!e.errors.is_empty(), "a failed load without errors");
            for err in &e.errors {
                assert_eq!(err.file, NAME);
                assert!(err.line <= lines, "error at line {} of {lines}", err.line);
            }
            let _ = e.to_string();
        }
    }
    match Config::<LinuxSettings>::from_str(NAME, &text) {
        Ok(cfg) => {
            let ports = &cfg.sensor.dns_ports;
            assert!(
                !ports.is_empty() && ports.len() <= MAX_DNS_PORTS,
                "{ports:?}"
            );
            assert!(!ports.contains(&0), "port 0");
            assert_eq!(ports.iter().collect::<HashSet<_>>().len(), ports.len());
            let size = u64::from(cfg.sensor.ring_buffer_size);
            assert!(size.is_power_of_two() && (RING_BUFFER_MIN..=RING_BUFFER_MAX).contains(&size));
        }
        Err(e) => {
            assert_eq!(e.file, NAME);
            assert!(e.line <= lines, "error at line {} of {lines}", e.line);
            let _ = e.to_string();
        }
    }
}

/// Runs a few events through the step with `set`'s rules, so that whatever correlations the
/// input defined keep their windows under small limits (times going forward, back and far).
fn run_correlations(set: RuleSet) {
    if set.correlations().is_empty() {
        return;
    }
    let engine = Engine::new(set, Allowlist::default());
    let limits = CorrelationLimits {
        max_groups: 4,
        max_entries: 16,
    };
    let mut step = Step::with_limits(std::io::sink(), true, limits);
    let process = |name: &str| Process {
        pid: 7,
        name: name.into(),
        path: format!("/usr/bin/{name}").into(),
        command_line: format!("{name} -R 1:a:1 x").into(),
        user: "u".into(),
        ..Process::default()
    };
    let base = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    for (i, offset) in [0u64, 1, 1, 30, 2, 7_200, 7_201, 86_400 * 400].iter().enumerate() {
        let time = base + Duration::from_secs(*offset);
        let name = ["ssh", "sshd", "x"][i % 3];
        let exec = Event::Process(ProcessEvent {
            time,
            host: Arc::from(["h1", "h2"][i % 2]),
            platform: Platform::Linux,
            process: process(name),
            parent: process("bash"),
            args_truncated: false,
            fileless: "".into(),
            loader: "".into(),
        });
        let dns = Event::Dns(DnsEvent {
            time,
            host: Arc::from("h1"),
            platform: Platform::Linux,
            message_type: DnsMessageType::Query,
            query: format!("a{i}b.example.com"),
            query_type: "TXT".into(),
            transaction_id: 1,
            reply_code: String::new(),
            reply_code_id: None,
            answers: Vec::new(),
            src: None,
            dest: None,
            transport: "udp",
            process: Some(process(name)),
            parent: None,
            inferred_from_response: false,
        });
        step.run(&engine, &exec).expect("a sink takes every line");
        step.run(&engine, &dns).expect("a sink takes every line");
    }
    let counts = step.counts();
    assert!(counts.alerts <= counts.lines);
}

/// `go_buildinfo`: the input as an executable file. Its first 8 bytes (little endian) are the
/// length the file claims: the rest of the input is the start of the file and the remainder
/// up to that length a hole, as in a sparse file (the length is never shorter than what is
/// given). The Go build information is read from it, and from the rest of the input as a plain
/// file of its own size.
pub fn go_buildinfo(data: &[u8]) {
    let (len, file) = match data.split_first_chunk::<8>() {
        Some((len, file)) => (u64::from_le_bytes(*len), file),
        None => (0, data),
    };
    // No deadline here (it would make a run depend on the machine's speed); libFuzzer's own
    // timeout catches a slow input.
    let limits = Limits {
        max_time: Duration::from_secs(3600),
        ..Limits::DEFAULT
    };
    for len in [len, file.len() as u64] {
        let sparse = SparseFile::new(file, len);
        let result = read_build_info(&sparse, limits);
        assert!(
            sparse.bytes_read() <= limits.max_bytes,
            "{} bytes read",
            sparse.bytes_read()
        );
        match result {
            Ok(info) => {
                assert!(!info.go_version.is_empty(), "a Go binary without a version");
                assert!(info.go_version.len() as u64 <= 3 * buildinfo::VERSION_MAX);
                assert!(info.path.len() as u64 <= 3 * buildinfo::MODINFO_MAX);
                // The tool table takes any path.
                let _ = tools::classify(&info.path);
            }
            Err(e) => {
                assert!(!matches!(e, IdentifyError::Deadline), "{e}");
                let _ = e.to_string();
            }
        }
        assert_eq!(
            identify(&sparse, limits).ok().flatten(),
            read_build_info(&sparse, limits)
                .ok()
                .and_then(|i| tools::classify(&i.path)),
            "identify and read_build_info disagree"
        );
    }
}

/// `process_v4`: the first byte picks the version (2 to 5, low 2 bits + 2) and the pointer
/// size (bit 2: 4, else 8); the rest is a kernel Process event's user data, decoded as the
/// live sensor and `.etl` replay decode it. A decoded record re-encodes (V2 to V4) to bytes
/// that decode to the same record.
pub fn process_v4(data: &[u8]) {
    use tunnelwatch_etw::process_v4::{DecodeError, decode, encode};
    let Some((&first, payload)) = data.split_first() else {
        return;
    };
    let version = 2 + (first & 3);
    let pointer = if first & 4 != 0 { 4 } else { 8 };
    match decode(payload, version, pointer) {
        Ok(r) => {
            assert!(payload.len() >= 4 * 4 + usize::from(pointer));
            if version <= 4 && !r.image_file_name.contains('\u{fffd}') {
                let again = encode(&r, version, pointer, 1);
                let back = decode(&again, version, pointer).expect("re-encoded record decodes");
                assert_eq!(back.pid, r.pid);
                assert_eq!(back.sid, r.sid);
                assert_eq!(
                    back.command_line,
                    r.command_line.split('\0').next().unwrap()
                );
            }
        }
        Err(DecodeError::Short | DecodeError::Sid) => {}
        Err(e) => panic!("{e} for version {version}, pointer size {pointer}"),
    }
}

/// `etl_reader`: any bytes as an `.etl` file, read by `tunnelwatch replay`'s reader and mapped
/// to engine events by the Windows sensor's enricher, to the end or the first error.
pub fn etl_reader(data: &[u8]) {
    use tunnelwatch_etw::replay::{EtlReplay, is_etl};
    let sniffed = is_etl(data);
    let Ok(replay) = EtlReplay::new(data, "fuzz") else {
        return;
    };
    assert!(sniffed, "an accepted trace is one the sniff recognises");
    let mut events = 0usize;
    for e in replay {
        match e {
            Ok(Event::Process(p)) => {
                assert!(!p.process.name.contains('\\'), "a name is a file name");
                events += 1;
            }
            Ok(Event::Dns(d)) => {
                assert!(!d.query.is_empty());
                events += 1;
            }
            Ok(Event::Connection(c)) => {
                // Kernel-Network connects: no first flight on Windows, a name only from DNS.
                assert!(matches!(c.transport, "tcp" | "udp"));
                assert!(c.server_name.is_empty() && c.alpn.is_empty() && c.app.is_empty());
                assert_eq!(c.name_source.is_some(), !c.dest_name.is_empty());
                assert_eq!(c.dest_name, c.dns_name);
                assert_eq!(c.resolver.is_some(), !c.dns_name.is_empty());
                if let std::net::IpAddr::V6(v6) = c.dest.ip() {
                    assert!(v6.to_ipv4_mapped().is_none(), "IPv4-mapped written as IPv4");
                }
                events += 1;
            }
            Err(_) => break,
        }
        // Every event comes from at least one record of at least 16 bytes.
        assert!(events <= data.len() / 16 + 1);
    }
}
