//! Running the sensor: start-up errors, signals, a closed stdout, two sensors at once, stats.

use std::{
    io::Write,
    os::unix::process::CommandExt,
    process::{Command, Stdio},
};

use nix::sys::signal::Signal;

use crate::harness::{
    programs::{self, Tools},
    require_root,
    sensor::{BIN, PATIENCE, Sensor, Stopped, s, status_kib, wait_timeout},
};

/// Whether the kernel still has a program with this id.
fn program_exists(id: u32) -> bool {
    Command::new("bpftool")
        .args(["prog", "show", "id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("bpftool is installed by `cargo xtask setup`")
        .success()
}

/// The sensor exited 0 and none of its programs `ids` is loaded any more.
fn assert_detached(stopped: &Stopped, ids: &[u32], after: &str) {
    assert!(
        stopped.status.success(),
        "exit status {} after {after}: {}",
        stopped.status,
        stopped.stderr
    );
    for id in ids {
        assert!(
            !program_exists(*id),
            "program {id} still loaded after {after}"
        );
    }
}

fn detaches_on(signal: Signal) {
    let sensor = Sensor::start(&["--stats-interval", "0"]);
    let ids = sensor.program_ids();
    assert_eq!(
        ids.len(),
        5,
        "three tracepoints and two cgroup_skb programs: {ids:?}"
    );
    assert!(ids.iter().all(|&id| program_exists(id)));
    let stopped = sensor.stop_with(signal);
    assert_detached(&stopped, &ids, signal.as_ref());
    assert!(
        stopped.stderr.contains("programs detached"),
        "{}",
        stopped.stderr
    );
    let stats = stopped
        .stderr
        .lines()
        .find(|l| l.starts_with("tunnelwatch: stats ") && l.contains("\"final\""))
        .unwrap_or_else(|| panic!("no final stats line:\n{}", stopped.stderr));
    let stats: serde_json::Value =
        serde_json::from_str(stats.trim_start_matches("tunnelwatch: stats ")).unwrap();
    for key in [
        "exec_seen",
        "exec_lost",
        "dns_seen",
        "dns_lost",
        "records",
        "alerts",
    ] {
        assert!(stats[key].is_u64(), "stats lack {key}: {stats}");
    }
}

#[test]
fn sigint_detaches_everything_and_reports_final_stats() {
    if !require_root() {
        return;
    }
    detaches_on(Signal::SIGINT);
}

#[test]
fn sigterm_detaches_everything() {
    if !require_root() {
        return;
    }
    detaches_on(Signal::SIGTERM);
}

#[test]
fn two_sensors_at_once_both_alert() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut a = Sensor::start(&[]);
    let mut b = Sensor::start(&[]);
    programs::run(Command::new(tools.path("ngrok")).args(["http", "1234"]));
    let path = tools.path("ngrok").to_string_lossy().into_owned();
    for sensor in [&mut a, &mut b] {
        sensor.wait_for("ngrok in both sensors", |v| s(v, "process_path") == path);
    }
    a.stop();
    // The other one is unaffected by the first one's exit.
    programs::run(Command::new(tools.path("ngrok")).args(["http", "5678"]));
    b.wait_for("ngrok after the other sensor stopped", |v| {
        s(v, "process_path") == path && s(v, "process").ends_with("5678")
    });
    b.stop();
}

#[test]
fn a_closed_stdout_ends_the_sensor_cleanly() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut child = Command::new(BIN)
        .arg("--all-events")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until ready, then close our end of its stdout.
    let stderr = child.stderr.take().unwrap();
    let mut reader = std::io::BufReader::new(stderr);
    let mut line = String::new();
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        assert!(n > 0, "tunnelwatch exited before it was ready");
        if line.starts_with("tunnelwatch: ready") {
            break;
        }
    }
    drop(child.stdout.take());
    // Any event now makes it write to the closed pipe.
    programs::run(Command::new(tools.path("ngrok")).args(["http", "1"]));
    let status = wait_timeout(&mut child, PATIENCE).expect("tunnelwatch exits when stdout closes");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(status.success(), "{status}: {rest}");
    assert!(rest.contains("stdout closed"), "{rest}");
}

#[test]
fn not_root_is_a_clear_error() {
    if !require_root() {
        return;
    }
    let out = Command::new(BIN).uid(65534).gid(65534).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must run as root"), "{err}");
}

#[test]
fn bad_config_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("bad.yml");
    let mut f = std::fs::File::create(&conf).unwrap();
    writeln!(f, "dns_ports: [53]\nno_such_setting: 1").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2", conf.display())), "{err}");
}

#[test]
fn help_and_bad_flags() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--all-events",
        "--config",
        "--ring-buffer-size",
        "--dns-port",
        "--stats-interval",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    let out = Command::new(BIN)
        .args(["--ring-buffer-size", "3MiB"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("power of two"));
}

#[test]
fn a_blocked_stdout_drops_and_counts_lines_and_memory_stays_bounded() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    // stdout is a pipe nobody reads: it fills, then the sensor's queue (64 lines) fills.
    let (reader, writer) = nix::unistd::pipe().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--all-events",
            "--output-queue",
            "64",
            "--stats-interval",
            "0",
        ])
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut err = std::io::BufReader::new(stderr);
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0,
            "exited early"
        );
        if line.starts_with("tunnelwatch: ready") {
            break;
        }
    }
    // Enough events to fill a 64 KiB pipe and the queue several times over.
    let script = tools.script(
        "storm.sh",
        &format!(
            "i=0; while [ $i -lt 600 ]; do {} x $i; i=$((i+1)); done",
            tools.path("ngrokker").display()
        ),
    );
    programs::run(&mut Command::new(&script));
    let rss = status_kib(child.id(), "VmRSS");
    assert!(
        rss < 64 * 1024,
        "resident memory {rss} KiB with a blocked stdout"
    );
    // SIGTERM is still handled while stdout is stuck.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    let status =
        wait_timeout(&mut child, PATIENCE).expect("exits on SIGTERM with a blocked stdout");
    assert!(status.success(), "{status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let stats = rest
        .lines()
        .find(|l| l.contains("\"final\""))
        .unwrap_or_else(|| panic!("no final stats: {rest}"));
    let stats: serde_json::Value =
        serde_json::from_str(stats.trim_start_matches("tunnelwatch: stats ")).unwrap();
    assert!(stats["output_dropped"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["exec_lost"], 0, "{stats}");
    // Every line is accounted for: the ones still queued when the stuck writer was abandoned
    // at exit count as dropped (issue 12: 3007 lines, 160 written, 0 dropped).
    let count = |k: &str| {
        stats[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k}: {stats}"))
    };
    assert_eq!(
        count("lines"),
        count("lines_written") + count("output_dropped"),
        "{stats}"
    );
    drop(reader);
}

#[test]
fn a_full_ring_buffer_is_counted_and_reported_and_the_sensor_keeps_going() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&["--ring-buffer-size", "64KiB", "--stats-interval", "0"]);
    // Freeze user space: the kernel side keeps writing until the 64 KiB ring is full.
    sensor.signal(Signal::SIGSTOP);
    let padding = "z".repeat(4000);
    for i in 0..40 {
        programs::run(Command::new(tools.path("ngrokker")).args([&padding, &i.to_string()]));
    }
    sensor.signal(Signal::SIGCONT);
    sensor.wait_stderr("ring buffer full", 0);
    // Still watching.
    programs::run(Command::new(tools.path("ngrok")).args(["http", "after-overflow"]));
    let path = tools.path("ngrok").to_string_lossy().into_owned();
    sensor.wait_for("an alert after the overflow", |v| {
        s(v, "process_path") == path
    });
    let stopped = sensor.stop();
    let stats = stopped
        .stderr
        .lines()
        .find(|l| l.contains("\"final\""))
        .unwrap_or_else(|| panic!("no final stats: {}", stopped.stderr));
    let stats: serde_json::Value =
        serde_json::from_str(stats.trim_start_matches("tunnelwatch: stats ")).unwrap();
    assert!(stats["exec_lost"].as_u64().unwrap() > 0, "{stats}");
}

#[test]
fn sigterm_during_an_exec_storm_detaches_everything() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let sensor = Sensor::start(&["--all-events", "--stats-interval", "0"]);
    let ids = sensor.program_ids();
    let script = tools.script(
        "forever.sh",
        &format!("while :; do {} x; done", tools.path("ngrokker").display()),
    );
    let mut storm = Command::new(&script).stdout(Stdio::null()).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let stopped = sensor.stop_with(Signal::SIGTERM);
    let _ = storm.kill();
    let _ = storm.wait();
    assert_detached(&stopped, &ids, "SIGTERM during a storm");
}

#[test]
fn processes_gone_before_user_space_reads_them_are_still_named() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let renamed = tools.go_tool("update-helper", "go.ngrok.com/cmd/ngrok");
    let responder = crate::harness::dns_server::Responder::start(0);
    let port = responder.port.to_string();
    let mut sensor = Sensor::start(&["--dns-port", &port]);
    // Freeze user space: the kernel side keeps queuing, nothing reads /proc meanwhile.
    sensor.signal(Signal::SIGSTOP);
    let ngrok = tools.path("ngrok");
    let mut child = Command::new(&ngrok).args(["http", "gone"]).spawn().unwrap();
    let ngrok_pid = child.id();
    assert!(child.wait().unwrap().success());
    let mut child = Command::new(&renamed).args(["tcp", "22"]).spawn().unwrap();
    let renamed_pid = child.id();
    assert!(child.wait().unwrap().success());
    let name = format!("{}.ngrok.io", crate::harness::unique("gone"));
    crate::harness::dns_client::dig(responder.port, &name);
    // All three have exited and been reaped: their /proc entries are gone.
    for pid in [ngrok_pid, renamed_pid] {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    }
    sensor.signal(Signal::SIGCONT);

    let ngrok_path = ngrok.to_string_lossy().into_owned();
    let line = sensor.wait_for("the exited ngrok", |v| {
        s(v, "process_path") == ngrok_path && s(v, "process").ends_with("http gone")
    });
    assert_eq!(s(&line, "rule_id"), "bc84d574-708c-467d-b78a-4c1e20171f97");
    assert_eq!(line["process_id"], u64::from(ngrok_pid));
    assert_eq!(s(&line, "user"), "root");
    assert!(!s(&line, "parent_process_name").is_empty(), "{line:#}");
    assert!(!s(&line, "parent_process_path").is_empty(), "{line:#}");

    let renamed_path = renamed.to_string_lossy().into_owned();
    let line = sensor.wait_for("the exited renamed ngrok", |v| {
        s(v, "process_path") == renamed_path
    });
    assert_eq!(s(&line, "rule_name"), "Renamed Ngrok Agent");
    assert_eq!(line["process_id"], u64::from(renamed_pid));
    assert_eq!(s(&line, "original_file_name"), "ngrok");

    let line = sensor.wait_for("the exited dig's query", |v| s(v, "query") == name);
    assert_eq!(s(&line, "rule_id"), "5790a766-53b8-40d3-a696-3547b978fcf0");
    assert_eq!(s(&line, "process_name"), "dig");
    assert!(s(&line, "process_path").ends_with("/dig"), "{line:#}");
    assert!(s(&line, "process").contains(&name), "{line:#}");
    sensor.stop();
}
