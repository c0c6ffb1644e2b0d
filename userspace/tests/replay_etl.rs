//! `tunnelwatch replay` on an `.etl` trace, end to end through the real binary: recognised by
//! its content (any file name, or stdin), mapped by the Windows sensor's code, and printed as
//! the live sensor would. The trace is built from the documented structures
//! (`tunnelwatch_etw::etl_writer`); a JSON recording still replays as before.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use tunnelwatch_etw::{
    etl::Guid,
    etl_writer::{EtlWriter, Rec},
    manifest_payload,
    process_v4::{self, ProcessRecord},
    schema::{dns_client, kernel_process},
    sid::Sid,
};

const START: i64 = 134_398_693_231_234_567;
const USER: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";

fn trace(buffer_size: usize) -> Vec<u8> {
    let ngrok = ProcessRecord {
        pid: 5832,
        ppid: 4000,
        sid: Sid::parse(USER),
        image_file_name: "ngrok.exe".into(),
        command_line: r"C:\Users\a\Downloads\ngrok.exe http 8080".into(),
        ..ProcessRecord::default()
    };
    let mut w = EtlWriter::new(8, START, buffer_size);
    w.push(&Rec::Provider {
        guid: Guid::parse(kernel_process::GUID),
        id: 1,
        version: 3,
        opcode: 1,
        pid: 4000,
        tid: 1,
        time: START,
        stack: false,
        payload: manifest_payload::encode_process_start_v3(
            5832,
            4000,
            START,
            r"\Device\HarddiskVolume3\Users\a\Downloads\ngrok.exe",
        ),
    })
    .push(&Rec::Kernel {
        group: 3,
        opcode: 1,
        version: 4,
        pid: 4000,
        tid: 1,
        time: START,
        payload: process_v4::encode(&ngrok, 4, 8, 0xffff_8000_0000_1000),
    })
    .push(&Rec::Provider {
        guid: Guid::parse(dns_client::GUID),
        id: 3006,
        version: 0,
        opcode: 0,
        pid: 5832,
        tid: 2,
        time: START + 10_000,
        stack: false,
        payload: manifest_payload::encode_dns_query("x.ngrok.io", 1),
    });
    w.finish()
}

fn replay(args: &[&str], stdin: &[u8]) -> (Vec<serde_json::Value>, String, bool) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tunnelwatch"))
        .arg("replay")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (
        lines,
        String::from_utf8(out.stderr).unwrap(),
        out.status.success(),
    )
}

#[test]
fn an_etl_trace_replays_to_the_live_sensors_alerts() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("replay-etl");
    std::fs::create_dir_all(&dir).unwrap();
    // The name says nothing: the content does.
    let file = dir.join("recording.bin");
    std::fs::write(&file, trace(0x1000)).unwrap();
    for (args, stdin) in [
        (vec![file.to_str().unwrap()], Vec::new()),
        (vec!["-"], trace(0x1000)),
    ] {
        let (lines, stderr, ok) = replay(&args, &stdin);
        assert!(ok, "{stderr}");
        let rules: Vec<_> = lines.iter().map(|l| l["rule_id"].clone()).collect();
        assert!(
            rules.contains(&"e2549f2c-0aef-408a-b0c1-e0f270623436".into()),
            "{lines:#?}"
        );
        assert!(
            rules.contains(&"5790a766-53b8-40d3-a696-3547b978fcf0".into()),
            "{lines:#?}"
        );
        let process = lines
            .iter()
            .find(|l| l["datamodel"] == "Endpoint.Processes")
            .unwrap();
        assert_eq!(
            process["process"],
            r"C:\Users\a\Downloads\ngrok.exe http 8080"
        );
        assert_eq!(process["user_id"], USER);
        assert_eq!(process["time"], "2026-11-23T01:02:03.123456Z");
        assert!(stderr.contains("tunnelwatch: replayed"), "{stderr}");
    }
}

#[test]
fn a_trace_cut_short_prints_what_came_before_and_fails() {
    // Small buffers: the process start in the first ones, the DNS query in the last, which is
    // cut.
    let t = trace(0x190);
    let (lines, stderr, ok) = replay(&["-"], &t[..t.len() - 100]);
    assert!(!ok);
    assert!(stderr.contains("ends inside buffer 3"), "{stderr}");
    let rules: Vec<_> = lines.iter().map(|l| l["rule_id"].clone()).collect();
    assert!(
        rules.contains(&"e2549f2c-0aef-408a-b0c1-e0f270623436".into()),
        "what came before the cut is printed: {lines:#?}"
    );
    assert!(!rules.contains(&"5790a766-53b8-40d3-a696-3547b978fcf0".into()));
}
