//! Evasions a tunnel operator might try; each must still be caught.

use std::{
    os::unix::process::CommandExt,
    process::{Command, Stdio},
};

use hickory_proto::rr::RecordType;

use crate::harness::{
    dns_client,
    dns_server::Responder,
    programs::{self, KillOnDrop, Tools},
    require_root,
    sensor::{Sensor, s},
    unique,
};

const LINUX_RULE: &str = "bc84d574-708c-467d-b78a-4c1e20171f97";
const NETWORK_RULE: &str = "5790a766-53b8-40d3-a696-3547b978fcf0";

#[test]
fn a_spoofed_argv0_does_not_hide_the_image() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&[]);
    let ngrok = tools.path("ngrok");
    programs::run(
        Command::new(&ngrok)
            .arg0("[kworker/0:1]")
            .args(["http", "80"]),
    );
    let path = ngrok.to_string_lossy().into_owned();
    let line = sensor.wait_for("ngrok with a spoofed argv[0]", |v| {
        s(v, "rule_id") == LINUX_RULE && s(v, "process_path") == path
    });
    assert_eq!(s(&line, "process_name"), "ngrok");
    assert_eq!(s(&line, "process"), "[kworker/0:1] http 80");
    sensor.stop();
}

#[test]
fn the_tunnel_argument_after_seventy_others_is_seen() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&[]);
    let mut args: Vec<String> = (0..70).map(|i| format!("--opt{i}=v")).collect();
    args.extend(["tcp".into(), "22".into()]);
    programs::run(Command::new(tools.path("ngrok")).args(&args));
    let path = tools.path("ngrok").to_string_lossy().into_owned();
    let line = sensor.wait_for("ngrok with 72 arguments", |v| {
        s(v, "rule_id") == LINUX_RULE && s(v, "process_path") == path
    });
    assert!(s(&line, "process").ends_with("--opt69=v tcp 22"));
    assert!(line.get("args_truncated").is_none());
    sensor.stop();
}

#[test]
fn a_command_line_beyond_the_kernel_copy_is_completed_while_the_tunnel_runs() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    // `tail -f /dev/null` runs until killed whatever other files it is given, like a tunnel
    // agent, and leaves its argument area alone. (`yes` would not do: it reuses its argument
    // area for its output, and the sensor then rightly refuses what /proc shows.)
    std::fs::create_dir(tools.dir().join("live")).unwrap();
    let ngrok_named = tools.dir().join("live").join("ngrok");
    std::fs::copy(
        std::fs::canonicalize("/usr/bin/tail").unwrap(),
        &ngrok_named,
    )
    .unwrap();
    let mut sensor = Sensor::start(&[]);
    let padding = "p".repeat(200);
    let mut args: Vec<String> = vec!["-f".into(), "/dev/null".into()];
    args.extend((0..60).map(|_| padding.clone())); // ~12 KiB
    args.extend(["http".into(), "8080".into()]);
    let child = KillOnDrop(
        Command::new(&ngrok_named)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let path = ngrok_named.to_string_lossy().into_owned();
    let line = sensor.wait_for("ngrok with a 12 KiB command line", |v| {
        s(v, "rule_id") == LINUX_RULE && s(v, "process_path") == path
    });
    drop(child);
    assert!(
        s(&line, "process").ends_with(" http 8080"),
        "tail of the command line seen"
    );
    assert!(line.get("args_truncated").is_none());
    let stopped = sensor.stop();
    assert!(
        stopped.stderr.contains("\"args_completed\":"),
        "{}",
        stopped.stderr
    );
}

#[test]
fn a_short_lived_process_with_a_huge_command_line_is_flagged_truncated() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&["--all-events"]);
    let padding = "q".repeat(1000);
    let args: Vec<String> = (0..12).map(|_| padding.clone()).collect();
    // Gone for sure before user space could read its /proc entry: the sensor is stopped
    // meanwhile (else it may complete the command line in time, as it should).
    sensor.signal(nix::sys::signal::Signal::SIGSTOP);
    let mut child = Command::new(tools.path("ngrokker"))
        .args(&args)
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait().unwrap().success());
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    sensor.signal(nix::sys::signal::Signal::SIGCONT);
    let path = tools.path("ngrokker").to_string_lossy().into_owned();
    let line = sensor.wait_for("the truncated exec", |v| s(v, "process_path") == path);
    assert_eq!(line["args_truncated"], true);
    assert!(s(&line, "process").len() >= 8000);
    sensor.stop();
}

#[test]
fn a_query_with_a_trailing_dot_is_caught() {
    if !require_root() {
        return;
    }
    let dns = Responder::start(0);
    let port = dns.port.to_string();
    let mut sensor = Sensor::start(&["--dns-port", &port]);
    let name = format!("{}.ngrok.io", unique("dot"));
    dns_client::sendto(dns.v4(), &format!("{name}."), RecordType::A);
    let line = sensor.wait_for(&name, |v| {
        s(v, "rule_id") == NETWORK_RULE && s(v, "query") == name
    });
    assert_eq!(s(&line, "query"), name);
    sensor.stop();
}

#[test]
fn a_query_from_another_network_namespace_is_caught() {
    if !require_root() {
        return;
    }
    // A fresh network namespace with only its own loopback: the query and its responder live
    // there; the sensor in the host namespace still sees it (cgroup, not netns, decides).
    let port = 5300 + (std::process::id() % 500) as u16;
    let name = format!("{}.ngrok.io", unique("netns"));
    let mut sensor = Sensor::start(&["--dns-port", &port.to_string()]);
    let script = format!(
        "import socket,struct\n\
         srv=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);srv.bind(('127.0.0.1',{port}))\n\
         q=struct.pack('>HHHHHH',0x4242,0x0100,1,0,0,0)+b''.join(bytes([len(l)])+l.encode() for l in '{name}'.split('.'))+b'\\0'+struct.pack('>HH',1,1)\n\
         c=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);c.sendto(q,('127.0.0.1',{port}))\n\
         srv.settimeout(5);srv.recvfrom(512)\n"
    );
    let status = programs::python_in_own_netns(&script);
    assert!(
        status.success(),
        "query inside a new network namespace: {status}"
    );
    let line = sensor.wait_for(&name, |v| {
        s(v, "rule_id") == NETWORK_RULE && s(v, "query") == name
    });
    assert!(s(&line, "process_name").starts_with("python3"), "{line:#}");
    assert_eq!(line["transaction_id"], 0x4242);
    sensor.stop();
}

#[test]
fn a_tunnel_run_from_a_memfd_is_still_identified() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    // A long-running "ngrok" (tail -f carrying ngrok's build information) that only ever
    // exists in memory: written to a memfd and executed from its descriptor (fexecve).
    let tail = std::fs::canonicalize("/usr/bin/tail").unwrap();
    let image = tools.go_tool_from(&tail, "payload", "go.ngrok.com/cmd/ngrok");
    let script = format!(
        "import os\n\
         fd = os.memfd_create('ngrok', 0)\n\
         os.write(fd, open('{}', 'rb').read())\n\
         os.execve(fd, ['svc', '-f', '/dev/null', 'http', '8080'], {{}})\n",
        image.display()
    );
    let mut sensor = Sensor::start(&[]);
    let _child = KillOnDrop(
        Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let line = sensor.wait_for("the memfd ngrok", |v| {
        s(v, "original_file_name") == "ngrok"
            && s(v, "process") == "svc -f /dev/null http 8080"
            && s(v, "rule_name") == "Renamed Ngrok Agent"
    });
    assert_eq!(s(&line, "process_path"), "/memfd:ngrok");
    assert_eq!(s(&line, "process_fileless"), "memfd");
    sensor.stop();
}

#[test]
fn a_fileless_tunnel_alerts_whatever_its_memfd_name() {
    if !require_root() {
        return;
    }
    // Issue 12: a memfd's name is the attacker's choice (`kworker` here) and the program in it
    // need not be one the sensor identifies (plain tail): its tunnel arguments and its having
    // no file give it away.
    let arg = unique("memfd");
    let script = format!(
        "import os\n\
         fd = os.memfd_create('kworker', 0)\n\
         os.write(fd, open('/usr/bin/tail', 'rb').read())\n\
         os.execve(fd, ['kworker', '-f', '/dev/null', 'http', '{arg}'], {{}})\n"
    );
    let mut sensor = Sensor::start(&[]);
    let _child = KillOnDrop(
        Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let line = sensor.wait_for("the fileless tunnel", |v| {
        s(v, "rule_name") == "Fileless Program With Tunnel Arguments"
            && s(v, "process").ends_with(&arg)
    });
    assert_eq!(s(&line, "process_fileless"), "memfd", "{line:#}");
    assert_eq!(s(&line, "process_path"), "/memfd:kworker", "{line:#}");
    assert_eq!(s(&line, "process_name"), "memfd:kworker", "{line:#}");
    sensor.stop();
}

/// The system's dynamic loader and its real path.
fn system_loader() -> (String, String) {
    let given = "/lib64/ld-linux-x86-64.so.2".to_string();
    let real = std::fs::canonicalize(&given)
        .expect("the x86-64 dynamic loader")
        .to_string_lossy()
        .into_owned();
    (given, real)
}

#[test]
fn a_tunnel_run_through_the_dynamic_loader_is_named_and_identified() {
    if !require_root() {
        return;
    }
    // Issue 12: `/lib64/ld-linux-x86-64.so.2 ./ngrok http 80` runs the loader; the program it
    // loads is the one that runs, named from the loader's arguments. The programs are copies
    // of tail that keep running (`-f /dev/null`), as a tunnel agent does.
    let tools = Tools::new();
    let tail = std::fs::canonicalize("/usr/bin/tail").unwrap();
    let ngrok = tools.path("ngrok");
    std::fs::copy(&tail, &ngrok).unwrap();
    let (loader, loader_real) = system_loader();
    let mut sensor = Sensor::start(&[]);
    let spawn = |cmd: &mut Command| {
        KillOnDrop(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let arg = unique("ldso");
    let _relative = spawn(
        Command::new(&loader)
            .args(["./ngrok", "-f", "/dev/null", "http", &arg])
            .current_dir(tools.dir()),
    );
    let line = sensor.wait_for("ngrok through ld.so", |v| {
        s(v, "rule_id") == LINUX_RULE && s(v, "process").ends_with(&arg)
    });
    assert_eq!(s(&line, "process_name"), "ngrok", "{line:#}");
    assert_eq!(
        s(&line, "process_path"),
        ngrok.to_string_lossy(),
        "{line:#}"
    );
    assert_eq!(s(&line, "process_loader"), loader_real, "{line:#}");
    assert_eq!(
        s(&line, "process"),
        format!("{loader} ./ngrok -f /dev/null http {arg}")
    );
    // Loader options with values, and a renamed Go-built ngrok identified by its content.
    let helper = tools.go_tool_from(&tail, "update-helper", "go.ngrok.com/cmd/ngrok");
    let arg = unique("ldso-renamed");
    let _renamed = spawn(Command::new(&loader).args([
        "--argv0",
        "sshd",
        "--library-path",
        "/nonexistent",
        &helper.to_string_lossy(),
        "-f",
        "/dev/null",
        "http",
        &arg,
    ]));
    let line = sensor.wait_for("a renamed ngrok through ld.so", |v| {
        s(v, "rule_name") == "Renamed Ngrok Agent" && s(v, "process").ends_with(&arg)
    });
    assert_eq!(s(&line, "process_name"), "update-helper", "{line:#}");
    assert_eq!(s(&line, "original_file_name"), "ngrok", "{line:#}");
    assert_eq!(s(&line, "process_loader"), loader_real, "{line:#}");
    // A copy of the loader under another name is still a loader.
    let copy = tools.path("runner");
    std::fs::copy(&loader_real, &copy).unwrap();
    let arg = unique("ldso-copy");
    let _copied = spawn(Command::new(&copy).args([
        &*ngrok.to_string_lossy(),
        "-f",
        "/dev/null",
        "tcp",
        &arg,
    ]));
    let line = sensor.wait_for("ngrok through a renamed ld.so", |v| {
        s(v, "rule_id") == LINUX_RULE && s(v, "process").ends_with(&arg)
    });
    assert_eq!(s(&line, "process_name"), "ngrok", "{line:#}");
    assert_eq!(
        s(&line, "process_loader"),
        copy.to_string_lossy(),
        "{line:#}"
    );
    sensor.stop();
}
