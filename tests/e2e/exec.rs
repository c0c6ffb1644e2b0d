//! Exec detection end to end: real processes, the Linux seed rule, exact alert lines.

use std::{os::unix::process::CommandExt, path::Path, process::Command};

use serde_json::{Value, json};

use crate::harness::{
    programs::{self, Tools},
    require_root,
    sensor::{Sensor, s},
};

const LINUX_RULE: &str = "bc84d574-708c-467d-b78a-4c1e20171f97";

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// This test process, as the sensor names a parent.
pub struct Me {
    pub pid: u32,
    pub name: String,
    pub path: String,
    pub command_line: String,
}

pub fn me() -> Me {
    let path = std::fs::read_link("/proc/self/exe").unwrap();
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
    let args: Vec<String> = cmdline
        .strip_suffix(&[0])
        .unwrap_or(&cmdline)
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Me {
        pid: std::process::id(),
        name: path.file_name().unwrap().to_string_lossy().into_owned(),
        path: path.to_string_lossy().into_owned(),
        command_line: args.join(" "),
    }
}

/// The exact alert line (without `time`) for the Linux seed rule.
#[allow(clippy::too_many_arguments)]
fn linux_alert(
    process: &str,
    path: &Path,
    pid: u64,
    user: &str,
    uid: u32,
    parent: (&str, &str, &str, u64),
) -> Value {
    let host = hostname();
    let (parent_name, parent_path, parent_cmd, parent_pid) = parent;
    json!({
        "host": host,
        "kind": "alert",
        "rule_id": LINUX_RULE,
        "rule_name": "Linux Ngrok Reverse Proxy Usage",
        "rule_type": "Anomaly",
        "severity": "medium",
        "mitre_technique_id": ["T1572", "T1090", "T1102"],
        "risk_score": 50,
        "message": format!("A reverse proxy was identified spawning from {parent_name} - ngrok on endpoint {host} by user {user}."),
        "falsepositives": ["False positives may be present if Ngrok is an authorized utility. Filter as needed."],
        "datamodel": "Endpoint.Processes",
        "vendor_product": "tunnelwatch",
        "dest": host,
        "user": user,
        "user_id": uid.to_string(),
        "process": process,
        "process_name": "ngrok",
        "process_path": path.to_string_lossy(),
        "process_id": pid,
        "parent_process": parent_cmd,
        "parent_process_name": parent_name,
        "parent_process_path": parent_path,
        "parent_process_id": parent_pid,
    })
}

/// Checks `line` equals `expected` except for `time`, which must be RFC 3339 UTC.
pub fn assert_line(line: &Value, expected: &Value) {
    let mut actual = line.clone();
    let time = actual
        .as_object_mut()
        .unwrap()
        .remove("time")
        .expect("time field");
    let time = time.as_str().unwrap();
    assert!(
        time.len() == "2026-11-23T01:02:03.123456Z".len()
            && time.ends_with('Z')
            && time.as_bytes()[10] == b'T',
        "time {time:?} is not RFC 3339 UTC with microseconds"
    );
    assert_eq!(&actual, expected, "alert line differs");
}

fn is_linux_alert_for(dir: &Path) -> impl Fn(&Value) -> bool + '_ {
    move |v| {
        s(v, "rule_id") == LINUX_RULE && s(v, "process_path").starts_with(&*dir.to_string_lossy())
    }
}

/// Runs the marker (an alerting exec) and returns every line printed up to its alert.
/// Anything a test ran before the marker has been reported by then: records reach user space
/// in the order they were written.
fn lines_until_marker(sensor: &mut Sensor, tools: &Tools) -> Vec<Value> {
    let marker = tools.path("ngrok");
    programs::run(Command::new(&marker).args(["http", "marker"]));
    // This test's marker: other tests run markers of their own at the same time.
    let process = format!("{} http marker", marker.display());
    sensor.lines_until("the marker alert", |v| {
        s(v, "rule_id") == LINUX_RULE && s(v, "process") == process
    })
}

#[test]
fn ngrok_http_as_root_alerts_with_every_field() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&[]);
    let ngrok = tools.path("ngrok");
    let mut child = Command::new(&ngrok).args(["http", "8080"]).spawn().unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    let line = sensor.wait_for("ngrok http 8080", is_linux_alert_for(tools.dir()));
    let me = me();
    assert_line(
        &line,
        &linux_alert(
            &format!("{} http 8080", ngrok.display()),
            &ngrok,
            pid.into(),
            "root",
            0,
            (&me.name, &me.path, &me.command_line, me.pid.into()),
        ),
    );
    sensor.stop();
}

#[test]
fn ngrok_as_unprivileged_user_names_that_user() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&[]);
    let ngrok = tools.path("ngrok");
    let mut child = Command::new(&ngrok)
        .args(["tcp", "22"])
        .uid(65534)
        .gid(65534)
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    let line = sensor.wait_for("ngrok tcp 22 as nobody", is_linux_alert_for(tools.dir()));
    let me = me();
    assert_line(
        &line,
        &linux_alert(
            &format!("{} tcp 22", ngrok.display()),
            &ngrok,
            pid.into(),
            "nobody",
            65534,
            (&me.name, &me.path, &me.command_line, me.pid.into()),
        ),
    );
    sensor.stop();
}

#[test]
fn ngrok_through_a_symlink_is_named_for_what_it_runs() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let link = tools.symlink("ngrok", "innocent");
    let mut sensor = Sensor::start(&[]);
    programs::run(Command::new(&link).args(["start", "--all"]));
    let line = sensor.wait_for("ngrok via symlink", is_linux_alert_for(tools.dir()));
    // The image is the file the link points to; the command line is what was typed.
    assert_eq!(s(&line, "process_name"), "ngrok");
    assert_eq!(
        s(&line, "process_path"),
        tools.path("ngrok").to_string_lossy()
    );
    assert_eq!(
        s(&line, "process"),
        format!("{} start --all", link.display())
    );
    sensor.stop();
}

#[test]
fn ngrok_through_execveat_from_a_file_descriptor() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&[]);
    let ngrok = tools.path("ngrok");
    programs::execveat(&ngrok, &["http", "9090"]);
    let line = sensor.wait_for("ngrok via execveat", is_linux_alert_for(tools.dir()));
    assert_eq!(s(&line, "process_path"), ngrok.to_string_lossy());
    assert_eq!(
        s(&line, "process"),
        format!("{} http 9090", ngrok.display())
    );
    sensor.stop();
}

#[test]
fn ngrok_started_by_a_script_names_the_shell_as_parent() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let script = tools.script(
        "tunnel.sh",
        &format!("{} http 7070", tools.path("ngrok").display()),
    );
    let mut sensor = Sensor::start(&[]);
    programs::run(&mut Command::new(&script));
    let line = sensor.wait_for("ngrok from a script", is_linux_alert_for(tools.dir()));
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    assert_eq!(
        s(&line, "process"),
        format!("{} http 7070", tools.path("ngrok").display())
    );
    assert_eq!(s(&line, "parent_process_path"), sh.to_string_lossy());
    assert_eq!(
        s(&line, "parent_process_name"),
        sh.file_name().unwrap().to_string_lossy()
    );
    assert_eq!(
        s(&line, "parent_process"),
        format!("/bin/sh {}", script.display())
    );
    sensor.stop();
}

#[test]
fn benign_look_alikes_do_not_alert() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&[]);
    let dir = tools.dir().to_string_lossy().into_owned();
    // ngrok without tunnel arguments, a longer name, ngrok as an argument of another tool.
    programs::run(Command::new(tools.path("ngrok")).arg("version"));
    programs::run(&mut Command::new(tools.path("ngrok")));
    programs::run(Command::new(tools.path("ngrokker")).args(["http", "8080"]));
    programs::run(Command::new(programs::true_binary()).args([
        &format!("{dir}/ngrok"),
        "http",
        "8080",
    ]));
    let lines = lines_until_marker(&mut sensor, &tools);
    let ours: Vec<&Value> = lines
        .iter()
        .filter(|v| s(v, "process_path").starts_with(&dir) || s(v, "process").contains(&dir))
        .collect();
    assert_eq!(ours.len(), 1, "only the marker may alert: {ours:#?}");
    sensor.stop();
}

#[test]
fn all_events_streams_benign_execs_too() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&["--all-events"]);
    programs::run(Command::new(tools.path("ngrokker")).args(["--flag", "value"]));
    let line = sensor.wait_for("the ngrokker event", |v| {
        s(v, "kind") == "event" && s(v, "process_path") == tools.path("ngrokker").to_string_lossy()
    });
    assert_eq!(s(&line, "datamodel"), "Endpoint.Processes");
    assert_eq!(
        s(&line, "process"),
        format!("{} --flag value", tools.path("ngrokker").display())
    );
    assert!(line.get("rule_id").is_none());
    sensor.stop();
}

#[test]
fn allowlist_from_the_config_file_suppresses_only_what_it_names() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let conf = tools.path("tunnelwatch.yml");
    std::fs::write(
        &conf,
        format!(
            "allowlist:\n  - rules: [\"{LINUX_RULE}\"]\n    user: [nobody]\n    process_path: [\"{}/*\"]\n",
            tools.dir().display()
        ),
    )
    .unwrap();
    let mut sensor = Sensor::start(&["--config", &conf.to_string_lossy()]);
    // Allowed: nobody running this directory's ngrok.
    let status = Command::new(tools.path("ngrok"))
        .args(["http", "allowed"])
        .uid(65534)
        .gid(65534)
        .status()
        .unwrap();
    assert!(status.success());
    // Not allowed: root running it (the marker).
    let lines = lines_until_marker(&mut sensor, &tools);
    let dir = tools.dir().to_string_lossy().into_owned();
    let ours: Vec<&Value> = lines
        .iter()
        .filter(|v| s(v, "process_path").starts_with(&dir))
        .collect();
    assert_eq!(ours.len(), 1, "the allowed exec must not alert: {ours:#?}");
    assert_eq!(s(ours[0], "user"), "root");
    let stopped = sensor.stop();
    assert!(
        stopped.stderr.contains("\"suppressed\":1"),
        "{}",
        stopped.stderr
    );
}

#[test]
fn a_renamed_ngrok_is_identified_by_its_build_information_and_alerts() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let renamed = tools.go_tool("update-helper", "go.ngrok.com/cmd/ngrok");
    let innocent = tools.go_tool("some-go-tool", "github.com/example/tool/cmd/tool");
    let mut sensor = Sensor::start(&["--all-events"]);
    programs::run(Command::new(&innocent).arg("serve"));
    programs::run(Command::new(&renamed).args(["http", "8080"]));
    let innocent_path = innocent.to_string_lossy().into_owned();
    let renamed_path = renamed.to_string_lossy().into_owned();
    let lines = sensor.lines_until("the renamed ngrok", |v| {
        s(v, "process_path") == renamed_path
    });
    let alert = lines.last().unwrap();
    assert_eq!(s(alert, "kind"), "alert");
    assert_eq!(s(alert, "rule_id"), "fe647c01-2e4b-4f5a-8611-6e0fab46fa0a");
    assert_eq!(s(alert, "rule_name"), "Renamed Ngrok Agent");
    assert_eq!(s(alert, "process_name"), "update-helper");
    assert_eq!(s(alert, "original_file_name"), "ngrok");
    let other = lines
        .iter()
        .find(|v| s(v, "process_path") == innocent_path)
        .expect("the other Go tool's event");
    assert!(other.get("original_file_name").is_none(), "{other:#}");
    sensor.stop();
}
