//! Rules at run time: user rule directories, reload on SIGHUP and on file change (a bad set is
//! refused and the running one stays), reload during an exec storm, replay of a recording.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::harness::{
    programs::{self, Tools},
    require_root,
    sensor::{BIN, Sensor, s},
};

const PROBE_RULE: &str = "6f2e1c3a-0d4b-4c7e-9a51-2b8d7f0e4a11";

/// A process_creation rule matching the image name `name`.
fn probe_rule(name: &str) -> String {
    format!(
        "title: Probe {name}\nid: {PROBE_RULE}\nlogsource:\n  product: linux\n  category: process_creation\n\
         detection:\n  selection:\n    process_name: {name}\n  condition: selection\nlevel: low\n"
    )
}

fn write(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn probe(tools: &Tools, name: &str) -> String {
    let p = tools.path(name);
    std::fs::copy(programs::true_binary(), &p).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn sighup_reloads_rules_and_a_bad_set_leaves_the_running_one() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("probe.yml");
    write(&rule, &probe_rule("tw-probe-a"));
    let a = probe(&tools, "tw-probe-a");
    let b = probe(&tools, "tw-probe-b");
    // Every alert printed (the same exec is run before and after reloads).
    let mut sensor = Sensor::start(&[
        "--rules",
        &dir.path().to_string_lossy(),
        "--fold-window",
        "0",
    ]);

    programs::run(&mut Command::new(&a));
    sensor.wait_for("probe a", |v| {
        s(v, "rule_id") == PROBE_RULE && s(v, "process_path") == a
    });

    write(&rule, &probe_rule("tw-probe-b"));
    sensor.signal(Signal::SIGHUP);
    sensor.wait_stderr("rules reloaded", 0);
    programs::run(&mut Command::new(&a));
    programs::run(&mut Command::new(&b));
    let lines = sensor.lines_until("probe b", |v| {
        s(v, "rule_id") == PROBE_RULE && s(v, "process_path") == b
    });
    assert!(
        !lines.iter().any(|v| s(v, "process_path") == a),
        "the old rule still fired after the reload: {lines:#?}"
    );

    // A broken rule: refused with its file and line; the rules in force stay.
    write(
        &rule,
        "title: broken\nlogsource:\n  category: process_creation\ndetection:\n  sel:\n    Image|nosuch: x\n  condition: sel\n",
    );
    sensor.signal(Signal::SIGHUP);
    let refused = sensor.wait_stderr("refused", 0);
    let err = sensor.stderr();
    assert!(err.contains("probe.yml:6"), "{refused}\n{err}");
    programs::run(&mut Command::new(&b));
    sensor.wait_for("probe b after a refused reload", |v| {
        s(v, "rule_id") == PROBE_RULE && s(v, "process_path") == b
    });
    sensor.stop();
}

#[test]
fn a_changed_rule_file_is_picked_up_without_a_signal() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let dir = tempfile::tempdir().unwrap();
    let rule = dir.path().join("probe.yml");
    write(&rule, &probe_rule("tw-probe-c"));
    let d = probe(&tools, "tw-probe-d");
    let mut sensor = Sensor::start(&["--rules", &dir.path().to_string_lossy()]);
    write(&rule, &probe_rule("tw-probe-d"));
    sensor.wait_stderr("rules reloaded", 0);
    programs::run(&mut Command::new(&d));
    sensor.wait_for("probe d", |v| {
        s(v, "rule_id") == PROBE_RULE && s(v, "process_path") == d
    });
    sensor.stop();
}

#[test]
fn reloads_during_an_exec_storm_lose_and_double_nothing() {
    if !require_root() {
        return;
    }
    const EXECS: usize = 300;
    let tools = Tools::new();
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("probe.yml"), &probe_rule("tw-probe-e"));
    let e = probe(&tools, "tw-probe-e");
    let mut sensor = Sensor::start(&[
        "--rules",
        &dir.path().to_string_lossy(),
        "--stats-interval",
        "0",
    ]);
    let script = tools.script(
        "storm.sh",
        &format!("i=0; while [ $i -lt {EXECS} ]; do {e} $i; i=$((i+1)); done; {e} done"),
    );
    let mut storm = Command::new(&script).stdout(Stdio::null()).spawn().unwrap();
    for _ in 0..5 {
        sensor.signal(Signal::SIGHUP);
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
    assert!(storm.wait().unwrap().success());
    let lines = sensor.lines_until("the last exec of the storm", |v| {
        s(v, "rule_id") == PROBE_RULE && s(v, "process") == format!("{e} done")
    });
    let mut seen: Vec<&str> = lines
        .iter()
        .filter(|v| s(v, "rule_id") == PROBE_RULE && s(v, "process_path") == e)
        .map(|v| s(v, "process"))
        .collect();
    assert_eq!(seen.len(), EXECS + 1, "every exec alerts exactly once");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), EXECS + 1, "no exec alerts twice");
    let stopped = sensor.stop();
    assert!(
        stopped.stderr.matches("rules reloaded").count() >= 1,
        "{}",
        stopped.stderr
    );
}

#[test]
fn replaying_a_recording_prints_the_live_alerts() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&["--all-events"]);
    let renamed = tools.go_tool("innocent-updater", "go.ngrok.com/cmd/ngrok");
    programs::run(Command::new(tools.path("ngrok")).args(["http", "8080"]));
    programs::run(Command::new(tools.path("ngrokker")).arg("x"));
    programs::run(Command::new(&renamed).arg("version"));
    let marker = tools.path("ngrok").to_string_lossy().into_owned();
    programs::run(Command::new(&marker).args(["tcp", "replay-marker"]));
    let live = sensor.lines_until("the marker", |v| {
        s(v, "process") == format!("{marker} tcp replay-marker")
    });
    sensor.stop();

    let recording = tools.path("recording.jsonl");
    let text: String = live.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(&recording, &text).unwrap();
    let out = Command::new(BIN)
        .arg("replay")
        .arg(&recording)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let live_alerts: Vec<&Value> = live.iter().filter(|v| s(v, "kind") == "alert").collect();
    assert!(
        live_alerts.len() >= 3,
        "ngrok, the renamed ngrok and the marker alerted live"
    );
    assert_eq!(replayed.iter().collect::<Vec<_>>(), live_alerts);
}

#[test]
fn rules_check_and_list_from_the_command_line() {
    let out = Command::new(BIN).args(["rules", "check"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new(BIN).args(["rules", "list"]).output().unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.lines()
            .any(|l| l.starts_with("bc84d574-708c-467d-b78a-4c1e20171f97\t"))
    );
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("bad.yml"),
        "title: x\nlogsource:\n  category: nosuch\ndetection:\n  s:\n    a: b\n  condition: s\n",
    );
    let out = Command::new(BIN)
        .args(["rules", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yml:3"), "{err}");
}

#[test]
fn signals_right_after_ready_are_handled_not_fatal() {
    if !require_root() {
        return;
    }
    // A SIGHUP the moment the sensor says it is ready reloads (it once killed the sensor:
    // the handlers were installed after the `ready` line).
    let tools = Tools::new();
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("probe.yml"), &probe_rule("tw-probe-r"));
    let r = probe(&tools, "tw-probe-r");
    for _ in 0..5 {
        let mut sensor = Sensor::start(&["--rules", &dir.path().to_string_lossy()]);
        sensor.signal(Signal::SIGHUP);
        sensor.wait_stderr("rules reloaded", 0);
        programs::run(&mut Command::new(&r));
        sensor.wait_for("probe r", |v| {
            s(v, "rule_id") == PROBE_RULE && s(v, "process_path") == r
        });
        let stopped = sensor.stop();
        assert!(stopped.status.success(), "{}", stopped.stderr);
    }
    // A SIGTERM the moment it is ready detaches and exits 0.
    for _ in 0..5 {
        let sensor = Sensor::start(&[]);
        let stopped = sensor.stop_with(Signal::SIGTERM);
        assert!(stopped.status.success(), "{}", stopped.stderr);
        assert!(stopped.stderr.contains("SIGTERM"), "{}", stopped.stderr);
    }
}
