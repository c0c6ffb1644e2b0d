//! Writes the hand-made seeds of the fuzz corpus: `cargo run --example seeds` in fuzz/ (then
//! `cargo fuzz cmin`, see README.md). Seeds are files named `seed-*` in
//! `corpus/<target>/`; those already there are replaced, nothing else is touched.
//!
//! - `dns_message`: one flag byte (bit 0: `complete`), then DNS messages made by hickory
//!   (queries, responses of many record types, compression, EDNS), raw edge cases (pointer
//!   loops, oversized labels, counts past the end) and TCP segments with length prefixes.
//! - `go_buildinfo`: executables built from the formats' structures (ELF 32/64-bit, little and
//!   big endian, PE32 and PE32+) carrying Go build information in both layouts, with the
//!   section headers present, renamed and stripped, and hostile heads: sparse section tables
//!   claiming 2^25, 2^31 and 2^58 entries, an address to nowhere, a string 2^63 bytes long.
//! - `record_decode`: ring-buffer records as the kernel side writes them (exec, fork, exit, DNS
//!   over UDP and TCP, IPv4 and IPv6, flows and their first flights) and sequences of them
//!   (fork, exec, query, response, exit; a flow and its ClientHello or QUIC Initial).
//! - `tls_client_hello`: ClientHellos real clients sent (openssl, curl, python; from
//!   userspace/tests/fixtures/client_hello/), the same spread over small records, cut short,
//!   and without a record layer.
//! - `quic_initial`: the same ClientHellos in CRYPTO frames, to be sealed (bit 0 of the first
//!   byte), and as protected Initial datagrams.
//! - `rule_loader`: configuration files and a broken rule (the shipped rules, `../rules/`, are
//!   a seed directory of their own: `cargo xtask fuzz` passes it to libFuzzer).

use std::{
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    str::FromStr,
};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{
        Label, Name, RData, Record, RecordType,
        rdata::{
            A, AAAA, CNAME, HTTPS, MX, NS, NULL, PTR, SOA, SRV, SVCB, TXT,
            svcb::{Alpn, SvcParamKey, SvcParamValue},
        },
    },
};
use tunnelwatch_common::{
    limits::DNS_CAPTURE_MAX,
    records::{conn_flags, direction, exec_flags, flight_flags, owner_source},
};
use tunnelwatch_fuzz::records::{self, Flow};
use tunnelwatch_identify::testing::{
    GoFile, Layout, claim_section_headers, modinfo, strip_section_headers,
};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dns = dns_seeds();
    write(root, "dns_message", &dns);
    write(root, "go_buildinfo", &executable_seeds());
    write(root, "record_decode", &record_seeds());
    write(root, "tls_client_hello", &tls_seeds(root));
    write(root, "quic_initial", &quic_seeds(root));
    write(root, "rule_loader", &rule_seeds());
    write(root, "process_v4", &process_v4_seeds());
    write(root, "etl_reader", &etl_seeds());
}

/// Kernel Process events (V2 to V4, both pointer sizes, with and without a SID), with the
/// selector byte of the `process_v4` target in front.
fn process_v4_seeds() -> Vec<(String, Vec<u8>)> {
    use tunnelwatch_etw::{
        process_v4::{ProcessRecord, encode},
        sid::Sid,
    };
    let mut out = Vec::new();
    let user = ProcessRecord {
        unique_process_key: 0xffff_b488_fcd4_4b60,
        pid: 7064,
        ppid: 3856,
        session_id: 1,
        exit_status: 259,
        directory_table_base: 0x2317_8000,
        flags: 2,
        sid: Sid::parse("S-1-5-21-4151223144-1238771585-1724997581-1000"),
        image_file_name: "OneDrive.exe".into(),
        command_line: r#""C:\Users\u\AppData\Local\Microsoft\OneDrive\OneDrive.exe" /background"#
            .into(),
        package_full_name: "Microsoft.YourPhone_1.20012.133.0_x64__8wekyb3d8bbwe".into(),
        application_id: "App".into(),
    };
    let idle = ProcessRecord {
        image_file_name: "Idle".into(),
        ..ProcessRecord::default()
    };
    for (name, r) in [("user", &user), ("idle", &idle)] {
        for version in [2u8, 3, 4] {
            for pointer in [4u8, 8] {
                let selector = (version - 2) | if pointer == 4 { 4 } else { 0 };
                let mut b = vec![selector];
                b.extend_from_slice(&encode(r, version, pointer, 0xffff_b488_fcb3_5ee0));
                out.push((format!("{name}-v{version}-p{pointer}"), b));
            }
        }
    }
    out
}

/// Small traces: a rundown, a start from both providers, DNS-Client events, Kernel-Network
/// connects and datagrams, plain and compressed buffers, both pointer sizes.
fn etl_seeds() -> Vec<(String, Vec<u8>)> {
    use tunnelwatch_etw::{
        etl::Guid,
        etl_writer::{EtlWriter, Rec},
        manifest_payload as m,
        process_v4::{ProcessRecord, encode},
        schema::{dns_client, kernel_network, kernel_process},
        sid::Sid,
    };
    let start = 132_404_548_206_236_167i64;
    let mut out = Vec::new();
    for pointer in [4u8, 8] {
        for compressed in [false, true] {
            let r = |pid, ppid, image: &str, cmd: &str| ProcessRecord {
                pid,
                ppid,
                sid: Sid::parse("S-1-5-21-1-2-3-1001"),
                image_file_name: image.into(),
                command_line: cmd.into(),
                ..ProcessRecord::default()
            };
            let mut w = EtlWriter::new(pointer, start, 0x400);
            if compressed {
                w = w.compressed();
            }
            w.push(&Rec::Perfinfo {
                group: 3,
                opcode: 3,
                version: 4,
                time: start + 1,
                payload: encode(&r(4000, 3100, "cmd.exe", "cmd.exe"), 4, pointer, 1),
            })
            .push(&Rec::Provider {
                guid: Guid::parse(dns_client::GUID),
                id: 3006,
                version: 0,
                opcode: 0,
                pid: 5832,
                tid: 1,
                time: start + 3,
                stack: false,
                payload: m::encode_dns_query("x.ngrok.io", 1),
            })
            .push(&Rec::Provider {
                guid: Guid::parse(kernel_process::GUID),
                id: 1,
                version: 3,
                opcode: 1,
                pid: 4000,
                tid: 1,
                time: start + 2,
                stack: true,
                payload: m::encode_process_start_v3(
                    5832,
                    4000,
                    start + 2,
                    r"\Device\HarddiskVolume3\t\ngrok.exe",
                ),
            })
            .push(&Rec::Kernel {
                group: 3,
                opcode: 1,
                version: 4,
                pid: 4000,
                tid: 1,
                time: start + 2,
                payload: encode(
                    &r(5832, 4000, "ngrok.exe", r"C:\t\ngrok.exe http 8080"),
                    4,
                    pointer,
                    1,
                ),
            })
            .push(&Rec::Provider {
                guid: Guid::parse(dns_client::GUID),
                id: 3008,
                version: 0,
                opcode: 0,
                pid: 5832,
                tid: 1,
                time: start + 4,
                stack: false,
                payload: m::encode_dns_completed("x.ngrok.io", 1, 0, "1.2.3.4;"),
            });
            // Kernel-Network: a TCP connect to the answered address, two datagrams of a UDP
            // flow over IPv6; logged in System's context.
            for (i, (tcp, src, dst)) in [
                (true, "10.0.0.2:50123", "1.2.3.4:443"),
                (false, "[2001:db8::2]:61000", "[2606:4700:a0::1]:7844"),
                (false, "[2001:db8::2]:61000", "[2606:4700:a0::1]:7844"),
            ]
            .into_iter()
            .enumerate()
            {
                let (id, payload) = m::encode_kernel_network(
                    tcp,
                    5832,
                    64,
                    src.parse().unwrap(),
                    dst.parse().unwrap(),
                );
                w.push(&Rec::Provider {
                    guid: Guid::parse(kernel_network::GUID),
                    id,
                    version: 0,
                    opcode: if tcp { 12 } else { 10 },
                    pid: 4,
                    tid: 1,
                    time: start + 4 + i as i64,
                    stack: false,
                    payload,
                });
            }
            w.push(&Rec::Kernel {
                group: 3,
                opcode: 2,
                version: 4,
                pid: 5832,
                tid: 1,
                time: start + 5,
                payload: encode(&r(5832, 4000, "ngrok.exe", ""), 4, pointer, 1),
            });
            let name = format!(
                "ngrok-p{pointer}{}",
                if compressed { "-compressed" } else { "" }
            );
            out.push((name, w.finish()));
        }
    }
    out
}

/// The ClientHellos of userspace/tests/fixtures/client_hello/, as TLS records.
fn real_hellos(root: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = root.join("../userspace/tests/fixtures/client_hello");
    ["openssl", "curl", "python"]
        .iter()
        .map(|n| {
            let bytes = fs::read(dir.join(format!("{n}.bin"))).expect("fixture");
            (n.to_string(), bytes)
        })
        .collect()
}

/// A handshake message in TLS records of at most `max` bytes of content.
fn tls_records(msg: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in msg.chunks(max) {
        out.extend([0x16, 0x03, 0x01]);
        out.extend((chunk.len() as u16).to_be_bytes());
        out.extend(chunk);
    }
    out
}

fn tls_seeds(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, rec) in real_hellos(root) {
        let msg = rec[5..].to_vec();
        seeds.push((format!("{name}-records"), rec.clone()));
        seeds.push((format!("{name}-small-records"), tls_records(&msg, 50)));
        seeds.push((format!("{name}-cut"), rec[..rec.len() / 2].to_vec()));
        seeds.push((format!("{name}-handshake"), msg));
    }
    seeds
}

fn quic_seeds(root: &Path) -> Vec<(String, Vec<u8>)> {
    use tunnelwatch::net::quic::{VERSION_1, crypto_frame, protect_client_initial};
    let mut seeds = Vec::new();
    for (name, rec) in real_hellos(root) {
        let msg = &rec[5..];
        let (a, b) = msg.split_at(msg.len() / 2);
        // Sealed by the target: frames out of order, split between two packets.
        let mut frames = crypto_frame(a.len() as u64, b);
        frames.push(0x01);
        frames.extend(crypto_frame(0, a));
        let mut sealed = vec![0x01, 0x80];
        sealed.extend(&frames);
        seeds.push((format!("{name}-sealed"), sealed));
        // Protected datagrams, as a client sends them.
        let mut datagrams = vec![0x00];
        for (pn, part) in [crypto_frame(0, a), crypto_frame(a.len() as u64, b)]
            .iter()
            .enumerate()
        {
            let p = protect_client_initial(VERSION_1, &[0x42; 8], pn as u32, part, 1200)
                .expect("packet");
            datagrams.extend((p.len() as u16).to_be_bytes());
            datagrams.extend(p);
        }
        seeds.push((format!("{name}-datagrams"), datagrams));
    }
    seeds
}

fn write(root: &Path, target: &str, seeds: &[(String, Vec<u8>)]) {
    let dir = root.join("corpus").join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    for entry in fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("seed-"))
        {
            fs::remove_file(&path).expect("old seed");
        }
    }
    for (name, bytes) in seeds {
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed");
    }
    eprintln!("{}: {} seeds", dir.display(), seeds.len());
}

fn name(s: &str) -> Name {
    Name::from_str(s).expect("name")
}

fn query(id: u16, qname: Name, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(qname, qtype));
    m.to_vec().expect("encode")
}

fn response(id: u16, qname: &str, qtype: RecordType, rcode: ResponseCode) -> Message {
    let mut m = Message::new(id, MessageType::Response, OpCode::Query);
    m.metadata.response_code = rcode;
    m.add_query(Query::query(name(qname), qtype));
    m
}

fn mixed_response(id: u16) -> Vec<u8> {
    let mut m = response(id, "www.Example.com.", RecordType::A, ResponseCode::NoError);
    let answers = [
        (
            "www.example.com.",
            RData::CNAME(CNAME(name("edge.Tunnel.ngrok.io."))),
        ),
        (
            "edge.tunnel.ngrok.io.",
            RData::A(A(Ipv4Addr::new(3, 4, 5, 6))),
        ),
        (
            "edge.tunnel.ngrok.io.",
            RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
        ),
        (
            "example.com.",
            RData::MX(MX::new(10, name("mail.example.com."))),
        ),
        (
            "example.com.",
            RData::TXT(TXT::new(vec!["v=spf1 -all".into(), "q\"\\\u{7f}".into()])),
        ),
        (
            "example.com.",
            RData::HTTPS(HTTPS(SVCB::new(
                1,
                Name::root(),
                vec![(
                    SvcParamKey::Alpn,
                    SvcParamValue::Alpn(Alpn(vec!["h2".into(), "h3".into()])),
                )],
            ))),
        ),
        ("example.com.", RData::NS(NS(name("ns1.example.com.")))),
        (
            "4.3.2.1.in-addr.arpa.",
            RData::PTR(PTR(name("host.example.com."))),
        ),
        (
            "_ngrok._tcp.example.com.",
            RData::SRV(SRV::new(0, 5, 443, name("tunnel.us.ngrok.com."))),
        ),
        ("example.com.", RData::NULL(NULL::with(vec![0, 1, 2, 255]))),
    ];
    for (owner, data) in answers {
        m.add_answer(Record::from_rdata(name(owner), 60, data));
    }
    m.set_edns(Edns::new());
    m.to_vec().expect("encode")
}

fn nxdomain(id: u16) -> Vec<u8> {
    let mut m = response(
        id,
        "nope.ngrok-free.app.",
        RecordType::AAAA,
        ResponseCode::NXDomain,
    );
    m.add_authority(Record::from_rdata(
        name("ngrok-free.app."),
        900,
        RData::SOA(SOA::new(
            name("ns1.ngrok-free.app."),
            name("hostmaster.ngrok-free.app."),
            1,
            7200,
            900,
            1_209_600,
            60,
        )),
    ));
    m.to_vec().expect("encode")
}

/// Many TXT answers: longer than the kernel's capture.
fn big_response(id: u16) -> Vec<u8> {
    let mut m = response(id, "big.ngrok.io.", RecordType::TXT, ResponseCode::NoError);
    for i in 0..40 {
        let text = format!("record {i:02} {}", "x".repeat(60));
        m.add_answer(Record::from_rdata(
            name("big.ngrok.io."),
            60,
            RData::TXT(TXT::new(vec![text])),
        ));
    }
    m.to_vec().expect("encode")
}

/// Labels with a dot, a backslash, a NUL, a space and upper case in them.
fn odd_name_query() -> Vec<u8> {
    let labels = [&b"we.ird"[..], b"a\\b", b"\x00 X\xff", b"NGROK", b"io"]
        .iter()
        .map(|l| Label::from_raw_bytes(l).expect("label"))
        .collect::<Vec<_>>();
    let mut qname = Name::from_labels(labels).expect("name");
    qname.set_fqdn(true);
    query(7, qname, RecordType::A)
}

fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        v.extend_from_slice(&c.to_be_bytes());
    }
    v
}

fn with_prefix(msg: &[u8]) -> Vec<u8> {
    let mut v = (msg.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(msg);
    v
}

fn flagged(complete: bool, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::from(complete)];
    v.extend_from_slice(payload);
    v
}

fn dns_seeds() -> Vec<(String, Vec<u8>)> {
    let a = query(0x2a2a, name("abc.ngrok.io."), RecordType::A);
    let aaaa = query(0x1234, name("ABC.Ngrok-Free.APP."), RecordType::AAAA);
    let https = query(9, name("tunnel.us.ngrok.com"), RecordType::HTTPS);
    let mixed = mixed_response(0xbeef);
    let nx = nxdomain(0x2a2a);
    let big = big_response(77);
    let root = query(1, Name::root(), RecordType::NS);
    let long_name = name(&format!(
        "{}.{}.{}.io.",
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63)
    ));
    let long = query(2, long_name, RecordType::TXT);

    let mut raw = Vec::new();
    // A question whose name points at itself.
    let mut m = header(3, 0x0100, [1, 0, 0, 0]);
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    raw.push(("pointer-loop", m));
    // A pointer forwards, into the answer.
    let mut m = header(4, 0x8180, [1, 1, 0, 0]);
    m.extend_from_slice(&[0xc0, 17, 0, 1, 0, 1]);
    m.extend_from_slice(&[1, b'x', 0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
    raw.push(("pointer-forward", m));
    // A 64-byte label.
    let mut m = header(5, 0x0100, [1, 0, 0, 0]);
    m.push(64);
    m.extend_from_slice(&[b'a'; 64]);
    m.extend_from_slice(&[0, 0, 1, 0, 1]);
    raw.push(("label-64", m));
    // Counts far beyond the bytes.
    let mut m = header(6, 0x8180, [1, 0xffff, 0xffff, 0xffff]);
    m.extend_from_slice(&[2, b'n', b'g', 0, 0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 9, 9, 9, 9]);
    raw.push(("counts-past-end", m));
    // An A record whose data is 3 bytes, then a record of an unknown type.
    let mut m = header(8, 0x8180, [1, 2, 0, 0]);
    m.extend_from_slice(&[1, b'q', 0, 0, 1, 0, 1]);
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 3, 1, 2, 3]);
    m.extend_from_slice(&[0xc0, 12, 0xff, 0x00, 0, 1, 0, 0, 0, 1, 0, 2, 0xab, 0xcd]);
    raw.push(("bad-rdata", m));
    // DNAME (39) and an EDNS OPT with extended rcode bits.
    let mut m = header(10, 0x8183, [1, 1, 0, 1]);
    m.extend_from_slice(&[1, b'd', 0, 0, 39, 0, 1]);
    m.extend_from_slice(&[0xc0, 12, 0, 39, 0, 1, 0, 0, 0, 1, 0, 3, 1, b'e', 0]);
    m.extend_from_slice(&[0, 0, 41, 0x10, 0, 1, 0, 0, 0, 0, 0]);
    raw.push(("dname-opt", m));

    let mut seeds = vec![
        ("udp-a".to_string(), flagged(true, &a)),
        ("udp-aaaa-mixed-case".into(), flagged(true, &aaaa)),
        ("udp-https".into(), flagged(true, &https)),
        ("udp-mixed-response".into(), flagged(true, &mixed)),
        ("udp-nxdomain-soa".into(), flagged(true, &nx)),
        (
            "udp-big-cut".into(),
            flagged(false, &big[..DNS_CAPTURE_MAX.min(big.len())]),
        ),
        ("udp-root".into(), flagged(true, &root)),
        ("udp-long-name".into(), flagged(true, &long)),
        ("udp-odd-labels".into(), flagged(true, &odd_name_query())),
    ];
    for (n, m) in raw {
        seeds.push((format!("raw-{n}"), flagged(true, &m)));
    }
    // TCP: two messages in one segment, then one cut by the end of the segment.
    let mut seg = with_prefix(&a);
    seg.extend_from_slice(&with_prefix(&aaaa));
    seeds.push(("tcp-two-queries".into(), flagged(true, &seg)));
    let mut seg = with_prefix(&nx);
    seg.extend_from_slice(&with_prefix(&mixed)[..40]);
    seeds.push(("tcp-response-then-cut".into(), flagged(false, &seg)));
    seeds
}

/// Process ids above any kernel's pid_max, so that the enricher finds no /proc entry.
const PID: u32 = 0x4000_0000;

fn v4(a: [u8; 4], port: u16) -> ([u8; 16], u16) {
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&a);
    (b, port)
}

fn record_seeds() -> Vec<(String, Vec<u8>)> {
    let ngrok = records::task(PID + 2, PID + 1, 1000, "ngrok");
    let exec_ngrok = records::exec(
        ngrok,
        "bash",
        0,
        b"ngrok\0http\08080\0",
        b"/tmp/x/ngrok\0",
        b"ngrok\0x\0tmp\0",
    );
    let long_args: Vec<u8> = (0..200)
        .flat_map(|i| format!("--opt{i}=value\0").into_bytes())
        .chain(*b"tcp\x0022\0")
        .collect();
    let exec_truncated = records::exec(
        records::task(PID + 3, PID + 1, 0, "update-helper"),
        "cron",
        exec_flags::ARGS_TRUNCATED | exec_flags::PATH_TRUNCATED,
        &long_args,
        b"/dev/fd/3\0",
        b"memfd:update-helper (deleted)\0",
    );
    let exec_no_path = records::exec(
        records::task(PID + 4, PID + 1, 1000, "cloudflared"),
        "bash",
        exec_flags::NO_EXE,
        b"cloudflared\0tunnel\0--url\0localhost:80\0",
        b"cloudflared\0",
        b"",
    );
    let query = query(0x2a2a, name("abc.ngrok.io."), RecordType::A);
    let answer = {
        let mut m = response(
            0x2a2a,
            "abc.ngrok.io.",
            RecordType::A,
            ResponseCode::NoError,
        );
        m.add_answer(Record::from_rdata(
            name("abc.ngrok.io."),
            60,
            RData::A(A(Ipv4Addr::new(3, 4, 5, 6))),
        ));
        m.to_vec().expect("encode")
    };
    let client = v4([127, 0, 0, 1], 33027);
    let server = v4([127, 0, 0, 53], 53);
    let out = Flow {
        direction: direction::EGRESS,
        ip_version: 4,
        protocol: 17,
        owner: owner_source::CURRENT,
        src: client,
        dst: server,
    };
    let back = Flow {
        direction: direction::INGRESS,
        owner: owner_source::UNKNOWN,
        src: server,
        dst: client,
        ..out
    };
    let dns_query = records::dns(ngrok, out, &query, query.len() as u32);
    let dns_answer = records::dns(
        records::task(0, 0, 0, ""),
        back,
        &answer,
        answer.len() as u32,
    );
    let tcp6 = {
        let mut seg = with_prefix(&query);
        seg.extend_from_slice(&with_prefix(&mixed_response(5)));
        let flow = Flow {
            ip_version: 6,
            protocol: 6,
            src: (Ipv6Addr::LOCALHOST.octets(), 40000),
            dst: (Ipv6Addr::LOCALHOST.octets(), 53),
            ..out
        };
        records::dns(ngrok, flow, &seg, seg.len() as u32)
    };
    let big = big_response(77);
    let dns_cut = records::dns(ngrok, back, &big, big.len() as u32);

    // Connections: a TLS one named by its ClientHello (in two segments), a QUIC one, one
    // named by the DNS answer above (3.4.5.6), and a datagram that is a DNS query to 5300.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../userspace/tests/fixtures");
    let hello = fs::read(root.join("client_hello/curl.bin")).expect("fixture");
    let initial = fs::read(root.join("quic/initial.bin")).expect("fixture");
    let local = v4([127, 0, 0, 1], 41000);
    let edge = v4([127, 0, 0, 1], 443);
    let capturing = conn_flags::CAPTURING;
    let tls = records::concat(&[
        records::conn(ngrok, 7, true, edge, capturing),
        records::flight(7, true, (local, edge), 1000, 0, &hello[..100]),
        records::flight(7, true, (local, edge), 1100, flight_flags::LAST, &hello[100..]),
    ]);
    let quic = records::concat(&[
        records::conn(ngrok, 8, false, v4([127, 0, 0, 1], 7844), capturing),
        records::flight(8, false, (local, v4([127, 0, 0, 1], 7844)), 0, 0, &initial),
    ]);
    let named = records::concat(&[
        dns_query.clone(),
        dns_answer.clone(),
        records::conn(ngrok, 9, true, v4([3, 4, 5, 6], 443), 0),
    ]);
    let other_port = records::concat(&[
        records::conn(ngrok, 10, false, v4([127, 0, 0, 1], 5300), capturing),
        records::flight(
            10,
            false,
            (local, v4([127, 0, 0, 1], 5300)),
            0,
            flight_flags::LAST,
            &query,
        ),
    ]);

    vec![
        ("exec".into(), exec_ngrok.clone()),
        ("exec-truncated-memfd".into(), exec_truncated),
        ("exec-no-path".into(), exec_no_path),
        ("fork".into(), records::fork(PID + 1, PID + 2)),
        ("exit".into(), records::exit(PID + 2, 0)),
        ("dns-udp-query".into(), dns_query.clone()),
        ("dns-tcp6-segment".into(), tcp6),
        ("dns-udp-cut".into(), dns_cut),
        ("conn-tls".into(), tls),
        ("conn-quic".into(), quic),
        ("conn-named-by-dns".into(), named),
        ("conn-dns-other-port".into(), other_port),
        (
            "sequence".into(),
            records::concat(&[
                records::fork(PID + 1, PID + 2),
                exec_ngrok,
                dns_query,
                dns_answer,
                records::exit(PID + 2, 0),
            ]),
        ),
    ]
}

/// `go_buildinfo` inputs: the length the file claims (8 bytes, little endian; 0 for the
/// input's own), then the file's first bytes.
fn executable_seeds() -> Vec<(String, Vec<u8>)> {
    let seed = |claimed: u64, bytes: &[u8]| {
        let mut s = claimed.to_le_bytes().to_vec();
        s.extend_from_slice(bytes);
        s
    };
    let mut seeds = Vec::new();
    for (version, layout) in [("go1.16.15", Layout::Pointers), ("go1.22.4", Layout::Inline)] {
        for (wide, big_endian) in [(true, false), (false, false), (true, true), (false, true)] {
            let mut f = GoFile::new(version, "go.ngrok.com/cmd/ngrok");
            assert_eq!(f.layout, layout);
            f.wide = wide;
            f.big_endian = big_endian;
            let name = format!(
                "{version}-elf{}{}",
                if wide { 64 } else { 32 },
                if big_endian { "be" } else { "le" }
            );
            seeds.push((name.clone(), seed(0, &f.elf())));
            let mut stripped = f.elf();
            strip_section_headers(&mut stripped);
            seeds.push((format!("{name}-stripped"), seed(0, &stripped)));
            if !big_endian {
                seeds.push((
                    format!("{version}-pe{}", if wide { "32plus" } else { "32" }),
                    seed(0, &f.pe()),
                ));
            }
        }
        let mut f = GoFile::new(version, "github.com/fatedier/frp/cmd/frpc");
        f.section = Some(".data.rel.ro".into());
        f.data_before = 100;
        seeds.push((format!("{version}-renamed-section"), seed(0, &f.elf())));
        for (claim, name) in [(1u64 << 25, "2p25"), (1 << 31, "2p31"), (1 << 58, "2p58")] {
            let (head, len) = claim_section_headers(&GoFile::new(version, "x/cmd/y").elf(), claim);
            seeds.push((format!("{version}-sparse-claims-{name}"), seed(len, &head)));
        }
    }
    // Strings that go nowhere or claim everything.
    let mut f = GoFile::new("go1.16.15", "go.ngrok.com/cmd/ngrok");
    f.section = None;
    let good = f.elf();
    let at = good
        .windows(14)
        .position(|w| w == b"\xff Go buildinf:")
        .expect("the blob");
    let mut nowhere = good.clone();
    nowhere[at + 16..at + 24].copy_from_slice(&0xdead_0000u64.to_le_bytes());
    seeds.push(("pointer-to-nowhere".into(), seed(0, &nowhere)));
    let mut huge = good.clone();
    huge[at + 40..at + 48].copy_from_slice(&(1u64 << 63).to_le_bytes());
    seeds.push(("string-of-2p63".into(), seed(0, &huge)));
    let mut inline = GoFile::new("go1.22.4", "go.ngrok.com/cmd/ngrok");
    inline.modinfo = modinfo("go.ngrok.com/cmd/ngrok", "go.ngrok.com").repeat(40);
    seeds.push(("inline-long-modinfo".into(), seed(0, &inline.elf())));
    seeds
}

/// Configuration files and a broken rule. The shipped rules are not copied: `cargo xtask fuzz`
/// gives libFuzzer `rules/` itself as a second seed directory.
fn rule_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let configs: [(&str, &str); 5] = [
        (
            "config-readme",
            "dns_ports: [53, 5353]\nring_buffer_size: 16MiB\nstats_interval: 60s\nallowlist:\n  - rules: [\"bc84d574-708c-467d-b78a-4c1e20171f97\"]\n    user: [ci-runner]\n    parent_process_name: [jenkins]\n  - query: [\"*.sanctioned.ngrok.io\"]\n",
        ),
        (
            "config-scalars",
            "dns_ports: 53\nring_buffer_size: 1048576\nstats_interval: 0\n",
        ),
        (
            "config-allowlist-all-fields",
            "allowlist:\n  - rules: [\"Linux Ngrok*\"]\n    user: [root]\n    user_id: [\"0\"]\n    process_name: [ngrok]\n    process_path: [/opt/*]\n    parent_process_name: [bash]\n    parent_process_path: [/usr/bin/bash]\n    query: [\"*.ngrok.io\"]\n    host: [build-??]\n",
        ),
        (
            "config-bad",
            "dns_ports: [0, 53, 53, 1, 2, 3, 4, 5, 6, 7]\nring_buffer_size: 3 TiB\nstats_interval: -5\nunknown: !tag x\n",
        ),
        (
            "config-two-docs",
            "---\ndns_ports: [53]\n---\nstats_interval: 5m\n",
        ),
    ];
    for (n, text) in configs {
        seeds.push((n.to_string(), text.as_bytes().to_vec()));
    }
    seeds.push((
        "rule-broken".into(),
        b"title: x\nid: 1\nlogsource: {category: process_creation, product: linux}\ndetection:\n  sel:\n    Image|endswith|re: ['(a+)+$', '\\\\ngrok']\n    CommandLine|contains|all: [http, tcp]\n  condition: sel and not 1 of filter_* or all of them\nlevel: nope\n"
            .to_vec(),
    ));
    seeds
}
