//! Faults an attacker could cause (issue 12): rules and allowlists that a user other than root
//! could write (refused at start and at reload, `--allow-untrusted-config` overrides), an
//! allowlist entry that silences everything (warned at start and at reload), and the sensor's
//! cgroup links detached by root (`bpftool link detach`: attached again within a second,
//! warned and counted).

use std::{
    os::unix::fs::{PermissionsExt, chown},
    path::Path,
    process::Command,
    time::Duration,
};

use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::harness::{
    dns_client,
    dns_server::Responder,
    programs::Tools,
    require_root,
    sensor::{BIN, Sensor, s},
    unique,
};

const LINUX_RULE: &str = "bc84d574-708c-467d-b78a-4c1e20171f97";
const NETWORK_RULE: &str = "5790a766-53b8-40d3-a696-3547b978fcf0";

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `tunnelwatch ARGS` expecting a refusal at start: exit 2 and stderr.
fn refused(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

#[test]
fn config_and_rules_a_user_could_change_are_refused_at_start_unless_allowed() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("tw.yml");
    // Issue 12: a non-root user wrote this into a world-writable config file.
    write(&conf, "allowlist:\n  - process_name: ['*']\n", 0o666);
    let err = refused(&["--config", &conf.to_string_lossy()]);
    assert!(
        err.contains(&format!(
            "{}: refused: writable by group and others (mode 0666)",
            conf.display()
        )),
        "{err}"
    );
    assert!(err.contains("--allow-untrusted-config"), "{err}");

    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::set_permissions(&rules, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rule = rules.join("mine.yml");
    write(&rule, "title: x\n", 0o644);
    chown(&rule, Some(65534), Some(65534)).unwrap();
    let err = refused(&["--rules", &rules.to_string_lossy()]);
    assert!(
        err.contains(&format!(
            "{}: refused: owned by uid 65534, not root",
            rule.display()
        )),
        "{err}"
    );
    std::fs::remove_file(&rule).unwrap();
    std::fs::set_permissions(&rules, std::fs::Permissions::from_mode(0o775)).unwrap();
    let err = refused(&["--rules", &rules.to_string_lossy()]);
    assert!(err.contains("writable by group (mode 0775)"), "{err}");

    // The override, for development: it runs, and still warns about the allowlist.
    let sensor = Sensor::start(&[
        "--allow-untrusted-config",
        "--config",
        &conf.to_string_lossy(),
    ]);
    sensor.wait_stderr("allowlist entry matches every event", 0);
    sensor.stop();
    // Replay and rule checks only read: no ownership needed.
    let out = Command::new(BIN)
        .args(["rules", "list", "--rules", &rules.to_string_lossy()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn an_untrusted_change_is_refused_at_reload_and_a_match_everything_allowlist_is_warned() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("tw.yml");
    write(&conf, "stats_interval: 60s\n", 0o644);
    let mut sensor = Sensor::start(&["--config", &conf.to_string_lossy()]);
    let ngrok = tools.path("ngrok");
    let alerted = |sensor: &mut Sensor, arg: &str| {
        let status = Command::new(&ngrok).args(["http", arg]).status().unwrap();
        assert!(status.success());
        sensor.wait_for(arg, |v: &Value| {
            s(v, "rule_id") == LINUX_RULE && s(v, "process").ends_with(arg)
        });
    };
    alerted(&mut sensor, &unique("before"));
    // A user makes the file writable and silences everything: refused, the running set stays.
    write(&conf, "allowlist:\n  - process_name: ['*']\n", 0o666);
    let line = sensor.wait_stderr("refused, the running rules stay", 0);
    assert!(line.contains("a changed rule or config file"), "{line}");
    sensor.wait_stderr("writable by group and others (mode 0666)", 0);
    alerted(&mut sensor, &unique("after"));
    // Root's own file with that entry loads, with a warning naming the file and line.
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let warning = sensor.wait_stderr("allowlist entry matches every event", 0);
    assert!(
        warning.contains(&format!("{}:2", conf.display())),
        "{warning}"
    );
    sensor.wait_stderr("rules reloaded", 0);
    sensor.stop();
}

/// Ids of the links that attach `programs` (bpftool's JSON).
fn links_of(programs: &[u32]) -> Vec<(u64, String)> {
    let out = Command::new("bpftool")
        .args(["-j", "link", "show"])
        .output()
        .expect("bpftool (installed by cargo xtask setup)");
    assert!(out.status.success(), "{out:?}");
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    links
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| {
            l["type"] == "cgroup" && programs.contains(&(l["prog_id"].as_u64().unwrap_or(0) as u32))
        })
        .map(|l| {
            (
                l["id"].as_u64().unwrap(),
                l["attach_type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn detached_cgroup_links_are_attached_again_warned_and_counted() {
    if !require_root() {
        return;
    }
    let dns = Responder::start(0);
    let mut sensor = Sensor::start(&["--dns-port", &dns.port.to_string()]);
    let programs = sensor.program_ids();
    let links = links_of(&programs);
    // DNS egress and ingress, connect4/6 and sendmsg4/6.
    assert_eq!(links.len(), 6, "the six cgroup programs: {links:?}");
    // Root detaches them (the red team's `bpftool link detach`).
    for (id, _) in &links {
        let status = Command::new("bpftool")
            .args(["link", "detach", "id", &id.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "bpftool link detach id {id}");
    }
    for name in [
        "dns_egress",
        "dns_ingress",
        "conn_connect4",
        "conn_connect6",
        "conn_sendmsg4",
        "conn_sendmsg6",
    ] {
        sensor.wait_stderr(
            &format!("{name} was detached from outside: attached again"),
            0,
        );
    }
    let relinked = links_of(&programs);
    assert_eq!(relinked.len(), 6, "{relinked:?}");
    // DNS detection works again.
    let name = format!("{}.ngrok.io", unique("relinked"));
    dns_client::sendto(dns.v4(), &name, RecordType::A);
    let line = sensor.wait_for(&name, |v| {
        s(v, "rule_id") == NETWORK_RULE && s(v, "query") == name
    });
    assert!(line.get("inferred_from_response").is_none(), "{line:#}");
    std::thread::sleep(Duration::from_millis(10));
    let stopped = sensor.stop();
    let stats = stopped
        .stderr
        .lines()
        .find(|l| l.contains("\"final\""))
        .expect("final stats");
    let stats: Value =
        serde_json::from_str(stats.trim_start_matches("tunnelwatch: stats ")).unwrap();
    assert_eq!(stats["links_restored"], 6, "{stats}");
}
