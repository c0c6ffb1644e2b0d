//! `.etl` replay end to end: traces built from the documented structures (`etl_writer.rs`),
//! filled with the facts of a real trace, read back by the reader, decoded and mapped by the
//! live sensor's code, and run through the real engine.
//!
//! The facts are those of `net.4.5.2.x64.etl` (PerfView's TraceEvent test input
//! `src/TraceEvent/TraceEvent.Tests/inputs/net.4.5.2.x64.etl.zip`, a 64-bit Windows trace with
//! compressed buffers, recorded by PerfView with the kernel's process events,
//! Microsoft-Windows-Kernel-Process (with stacks) and Microsoft-Windows-DNS-Client), as
//! dissect.etl 3.14 reads them: see etw/README.md, which also says how this crate's reader
//! compared with dissect.etl and airbus-cert's etl-parser on the real file.

mod common;

use tunnelwatch_engine::{builtin, engine::Engine, event::Event, step::Step};
use tunnelwatch_etw::{
    enrich::Mode,
    etl::{EtlReader, Guid, is_etl},
    etl_writer::{EtlWriter, Rec},
    manifest_payload,
    process_v4::{self, ProcessRecord},
    replay::EtlReplay,
    schema::{dns_client, kernel_network, kernel_process},
    sid::Sid,
};

const USER: &str = "S-1-5-21-2935914779-1618742390-1451969622-1001";
/// The trace's start (TRACE_LOGFILE_HEADER.StartTime).
const START: i64 = 132_404_548_206_236_167;

fn record(pid: u32, ppid: u32, sid: &str, image: &str, cmd: &str) -> ProcessRecord {
    ProcessRecord {
        unique_process_key: 0xffff_e001_2345_6780 + u64::from(pid),
        pid,
        ppid,
        session_id: 1,
        exit_status: 259,
        directory_table_base: 0x1_0000_0000 + u64::from(pid) * 0x1000,
        flags: 0,
        sid: Sid::parse(sid),
        image_file_name: image.into(),
        command_line: cmd.into(),
        package_full_name: String::new(),
        application_id: String::new(),
    }
}

fn perfinfo(opcode: u8, r: &ProcessRecord, time: i64, pointer: u8) -> Rec {
    Rec::Perfinfo {
        group: 3,
        opcode,
        version: 4,
        time,
        payload: process_v4::encode(r, 4, pointer, 0xffff_e001_0000_1000),
    }
}

fn kernel(opcode: u8, r: &ProcessRecord, header_pid: u32, time: i64, pointer: u8) -> Rec {
    Rec::Kernel {
        group: 3,
        opcode,
        version: 4,
        pid: header_pid,
        tid: 3512,
        time,
        payload: process_v4::encode(r, 4, pointer, 0xffff_e001_0000_1000),
    }
}

fn provider(guid: &str, id: u16, version: u8, pid: u32, time: i64, payload: Vec<u8>) -> Rec {
    Rec::Provider {
        guid: Guid::parse(guid),
        id,
        version,
        opcode: if id == 1 { 1 } else { 0 },
        pid,
        tid: 3512,
        time,
        stack: guid == kernel_process::GUID,
        payload,
    }
}

/// Kernel-Process 1 version 1 (what the real trace has): ProcessID, CreateTime,
/// ParentProcessID, SessionID, Flags, ImageName.
fn process_start_v1(pid: u32, ppid: u32, time: i64, image: &str) -> Vec<u8> {
    let mut b = pid.to_le_bytes().to_vec();
    b.extend_from_slice(&time.to_le_bytes());
    b.extend_from_slice(&ppid.to_le_bytes());
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    for u in image.encode_utf16().chain([0]) {
        b.extend_from_slice(&u.to_le_bytes());
    }
    b
}

/// The real trace's rundown of the processes this test needs, its Test.x64.exe start (both
/// providers), and its stop.
fn perfview_like(pointer: u8, compressed: bool) -> Vec<u8> {
    let mut w = EtlWriter::new(pointer, START, 0x1000);
    if compressed {
        w = w.compressed();
    }
    let system = record(4, 0, "S-1-5-18", "System", "");
    let explorer = record(2876, 2856, USER, "explorer.exe", r"C:\Windows\Explorer.EXE");
    let cmd = record(
        3508,
        2876,
        USER,
        "cmd.exe",
        r#""C:\Windows\system32\cmd.exe" "#,
    );
    let test = record(3676, 3508, USER, "Test.x64.exe", "Test.x64.exe");
    let idle = ProcessRecord {
        image_file_name: "Idle".into(),
        ..ProcessRecord::default()
    };
    w.push(&perfinfo(3, &idle, 132_404_548_206_521_099, pointer))
        .push(&perfinfo(3, &system, 132_404_548_206_521_191, pointer))
        .push(&perfinfo(3, &explorer, 132_404_548_206_586_889, pointer))
        .push(&perfinfo(3, &cmd, 132_404_548_206_596_026, pointer))
        .push(&provider(
            kernel_process::GUID,
            1,
            1,
            3508,
            132_404_548_233_567_915,
            process_start_v1(
                3676,
                3508,
                132_404_548_233_567_915,
                r"\Device\Mup\clrmain\public\PerfInvestigations\20-07-28.TestTraces\Test.x64.exe",
            ),
        ))
        .push(&kernel(1, &test, 3508, 132_404_548_233_567_925, pointer))
        .push(&provider(
            kernel_process::GUID,
            2,
            1,
            3676,
            132_404_548_288_259_010,
            manifest_payload::encode_process_stop(3676),
        ))
        .push(&kernel(2, &test, 3676, 132_404_548_288_259_020, pointer));
    w.finish()
}

/// The line the live sensor would print for the real trace's process start.
const TEST_X64: &str = concat!(
    r#"{"time":"2020-07-29T00:07:03.356792Z","kind":"event","datamodel":"Endpoint.Processes","#,
    r#""vendor_product":"tunnelwatch","user_id":"S-1-5-21-2935914779-1618742390-1451969622-1001","#,
    r#""process":"Test.x64.exe","process_name":"Test.x64.exe","#,
    r#""process_path":"\\\\clrmain\\public\\PerfInvestigations\\20-07-28.TestTraces\\Test.x64.exe","#,
    r#""process_id":3676,"parent_process":"\"C:\\Windows\\system32\\cmd.exe\"","#,
    r#""parent_process_name":"cmd.exe","parent_process_path":"C:\\Windows\\system32\\cmd.exe","#,
    r#""parent_process_id":3508}"#
);

/// Every line `tunnelwatch replay --all-events` prints for `etl`, and the replay.
fn replay_lines(etl: &[u8], all_events: bool) -> Vec<String> {
    let engine = Engine::new(builtin::rules().unwrap(), Default::default());
    let mut step = Step::new(Vec::new(), all_events);
    for event in EtlReplay::new(etl, "").unwrap() {
        step.run(&engine, &event.unwrap()).unwrap();
    }
    String::from_utf8(step.get_ref().clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_real_traces_process_start_replays_as_the_live_sensor_prints_it() {
    for pointer in [8, 4] {
        for compressed in [false, true] {
            let etl = perfview_like(pointer, compressed);
            assert!(is_etl(&etl));
            assert_eq!(
                replay_lines(&etl, true),
                [TEST_X64],
                "pointer size {pointer}, compressed {compressed}"
            );
        }
    }
}

#[test]
fn the_reader_gives_back_what_was_written() {
    let etl = perfview_like(8, true);
    let mut reader = EtlReader::new(&etl[..]).unwrap();
    assert_eq!(reader.header().pointer_size, 8);
    assert_eq!(reader.header().start_time, START);
    let mut kinds = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        kinds.push((r.kind, r.pid, r.timestamp, r.payload.len()));
    }
    assert_eq!(
        kinds.len(),
        9,
        "the logfile header and 8 records: {kinds:#?}"
    );
    let stats = reader.stats();
    assert!(stats.compressed_buffers >= 1);
    assert_eq!(stats.damaged_buffers, 0);
    // The kernel Start: pid from the header, time as written.
    assert!(kinds.iter().any(|&(k, pid, t, _)| matches!(
        k,
        tunnelwatch_etw::etl::Kind::Kernel {
            group: 3,
            opcode: 1,
            version: 4
        }
    ) && pid == Some(3508)
        && t == 132_404_548_233_567_925));
}

/// ngrok on a 32-bit Windows: its DNS query reaches the trace before its Start (the two
/// sessions of a live sensor flush separately; a merged trace keeps that order), with
/// Kernel-Process 1 version 3 and DNS-Client 3006/3008.
fn ngrok_trace(pointer: u8) -> Vec<u8> {
    let t0 = START + 10_000_000;
    let cmd = record(
        4000,
        3100,
        USER,
        "cmd.exe",
        r#""C:\Windows\system32\cmd.exe" "#,
    );
    let ngrok = record(
        5832,
        4000,
        USER,
        "ngrok.exe",
        r"C:\Users\a\Downloads\ngrok.exe http 8080",
    );
    let mut w = EtlWriter::new(pointer, START, 0x400).compressed();
    w.push(&perfinfo(3, &cmd, START + 1, pointer))
        .push(&provider(
            dns_client::GUID,
            3006,
            0,
            5832,
            t0 + 2,
            manifest_payload::encode_dns_query("x.ngrok.io", 1),
        ))
        .push(&provider(
            kernel_process::GUID,
            1,
            3,
            4000,
            t0,
            manifest_payload::encode_process_start_v3(
                5832,
                4000,
                t0,
                r"\Device\HarddiskVolume3\Users\a\Downloads\ngrok.exe",
            ),
        ))
        .push(&kernel(1, &ngrok, 4000, t0 + 1, pointer))
        .push(&provider(
            dns_client::GUID,
            3008,
            0,
            5832,
            t0 + 3,
            manifest_payload::encode_dns_completed(
                "x.ngrok.io",
                1,
                0,
                "type: 5 tunnel.us.ngrok.com;::ffff:3.134.125.175;",
            ),
        ));
    w.finish()
}

#[test]
fn ngrok_in_a_trace_alerts_like_the_live_sensor_whatever_the_pointer_size() {
    for pointer in [4, 8] {
        let lines = replay_lines(&ngrok_trace(pointer), true);
        let v: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let windows: Vec<_> = v
            .iter()
            .filter(|a| a["rule_id"] == "e2549f2c-0aef-408a-b0c1-e0f270623436")
            .collect();
        assert_eq!(windows.len(), 1, "{lines:#?}");
        assert_eq!(
            windows[0]["process"],
            r"C:\Users\a\Downloads\ngrok.exe http 8080"
        );
        assert_eq!(
            windows[0]["process_path"],
            r"\Device\HarddiskVolume3\Users\a\Downloads\ngrok.exe"
        );
        assert_eq!(windows[0]["user_id"], USER);
        assert_eq!(windows[0]["parent_process_name"], "cmd.exe");
        let query: Vec<_> = v
            .iter()
            .filter(|a| a["rule_id"] == "5790a766-53b8-40d3-a696-3547b978fcf0")
            .collect();
        assert_eq!(query.len(), 1, "{lines:#?}");
        assert_eq!(query[0]["message_type"], "Query");
        let response: Vec<_> = v
            .iter()
            .filter(|a| a["message_type"] == "Response")
            .collect();
        assert_eq!(response.len(), 1, "{lines:#?}");
        assert_eq!(
            response[0]["answer"],
            serde_json::json!(["tunnel.us.ngrok.com", "3.134.125.175"])
        );
        for d in [query[0], response[0]] {
            // The query came before the Start in the trace, and is still named.
            assert_eq!(d["process_name"], "ngrok.exe");
            assert_eq!(d["process"], r"C:\Users\a\Downloads\ngrok.exe http 8080");
        }
    }
}

#[test]
fn a_trace_without_kernel_process_events_is_mapped_as_the_fallback_mode() {
    let mut w = EtlWriter::new(8, START, 0x1000);
    w.push(&provider(
        kernel_process::GUID,
        1,
        3,
        4000,
        START + 5,
        manifest_payload::encode_process_start_v3(
            5832,
            4000,
            START + 5,
            r"\Device\HarddiskVolume3\Users\a\Downloads\ngrok.exe",
        ),
    ));
    let etl = w.finish();
    let mut replay = EtlReplay::new(&etl[..], "").unwrap();
    let events: Vec<Event> = replay.by_ref().map(Result::unwrap).collect();
    assert_eq!(replay.mode(), Some(Mode::KernelProcess));
    let [Event::Process(p)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(&*p.process.name, "ngrok.exe");
    assert_eq!(
        &*p.process.command_line, "",
        "a trace has no live processes"
    );
    assert_eq!(p.parent.pid, 4000, "the parent is known by its pid only");
    assert_eq!(&*p.parent.name, "");
}

/// A renamed ngrok agent on a `pointer`-bit Windows, recorded with the kernel's process events,
/// DNS-Client and Kernel-Network (`logman ... -p Microsoft-Windows-Kernel-Network 0x30`): its
/// answer for connect.ngrok-agent.com, its TCP connect to the answered address (12), and
/// three UDP datagrams of one flow to Cloudflare's edge port (42), logged in System's context.
fn ngrok_connection_trace(pointer: u8) -> Vec<u8> {
    let t0 = START + 10_000_000;
    let cmd = record(
        4000,
        3100,
        USER,
        "cmd.exe",
        r#""C:\Windows\system32\cmd.exe" "#,
    );
    let agent = record(
        5832,
        4000,
        USER,
        "svc-update.exe",
        r"C:\Users\a\AppData\Local\Temp\svc-update.exe start --all",
    );
    let network = |tcp: bool, dst: &str, time: i64| {
        let (id, payload) = manifest_payload::encode_kernel_network(
            tcp,
            5832,
            0,
            "192.168.1.20:50123".parse().unwrap(),
            dst.parse().unwrap(),
        );
        provider(kernel_network::GUID, id, 0, 4, time, payload)
    };
    let mut w = EtlWriter::new(pointer, START, 0x400).compressed();
    w.push(&perfinfo(3, &cmd, START + 1, pointer))
        .push(&kernel(1, &agent, 4000, t0, pointer))
        .push(&provider(
            dns_client::GUID,
            3008,
            0,
            5832,
            t0 + 1,
            manifest_payload::encode_dns_completed(
                "connect.ngrok-agent.com",
                1,
                0,
                "::ffff:3.134.125.175;",
            ),
        ))
        .push(&network(true, "3.134.125.175:443", t0 + 2));
    for i in 0..3 {
        w.push(&network(false, "198.41.192.77:7844", t0 + 3 + i));
    }
    w.finish()
}

#[test]
fn kernel_network_connects_in_a_trace_are_named_by_its_dns_answers() {
    for pointer in [4, 8] {
        let lines = replay_lines(&ngrok_connection_trace(pointer), true);
        let v: Vec<serde_json::Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let conns: Vec<_> = v.iter().filter(|a| a.get("dest_ip").is_some()).collect();
        assert_eq!(
            conns.len(),
            2,
            "the TCP connect and one UDP flow: {lines:#?}"
        );
        let ngrok = conns[0];
        assert_eq!(ngrok["rule_id"], "b9b52559-80a1-4ed1-ad6b-cc147ff65fbc");
        assert_eq!(ngrok["dest"], "connect.ngrok-agent.com");
        assert_eq!(ngrok["dest_name_source"], "dns");
        assert_eq!(ngrok["dest_ip"], "3.134.125.175");
        assert_eq!(ngrok["dest_port"], 443);
        assert_eq!(ngrok["transport"], "tcp");
        assert_eq!(ngrok["process_id"], 5832);
        assert_eq!(ngrok["process_name"], "svc-update.exe");
        assert_eq!(ngrok["resolver_process_name"], "svc-update.exe");
        assert_eq!(ngrok["parent_process_name"], "cmd.exe");
        let udp = conns[1];
        assert_eq!(udp["rule_id"], "f941459f-d97d-443b-b877-d681bba24d30");
        assert_eq!(udp["transport"], "udp");
        assert_eq!(udp["dest_port"], 7844);
        assert_eq!(udp["process_name"], "svc-update.exe");
    }
}

#[test]
fn hostile_traces_end_with_an_error_or_less_never_a_panic() {
    for good in [ngrok_trace(8), ngrok_connection_trace(4)] {
        hostile(good);
    }
    // Not a trace at all.
    assert!(!is_etl(b"{\"time\":\"2026-11-23T05:26:01Z\"}"));
    assert!(EtlReplay::new(&b"not a trace"[..], "").is_err());
}

fn hostile(good: Vec<u8>) {
    let events_in_full = replay_lines(&good, true).len();
    // Cut anywhere: whatever came before the cut, then an error; never more.
    for cut in (0..good.len()).step_by(7) {
        let Ok(replay) = EtlReplay::new(&good[..cut], "") else {
            continue;
        };
        let mut n = 0;
        for e in replay {
            if e.is_err() {
                break;
            }
            n += 1;
        }
        assert!(n <= events_in_full);
    }
    // Every byte in turn set to 0xFF, then to 0x00, then flipped: no panic, no hang.
    for i in 0..good.len() {
        for v in [0xFF, 0x00, good[i] ^ 0x5A] {
            let mut bad = good.clone();
            bad[i] = v;
            if let Ok(replay) = EtlReplay::new(&bad[..], "") {
                for e in replay.take(100) {
                    if e.is_err() {
                        break;
                    }
                }
            }
        }
    }
}
