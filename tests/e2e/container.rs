//! Container context and folded repeats, end to end: a real container runtime (Debian's
//! Podman with runc; its image imported offline from a busybox root file system), a tunnel
//! exec and a DNS query inside a container named by its id, name and image (through Podman's
//! Docker-compatible API service, which the test starts on a socket of its own); a host
//! process with no container field; a process in `unshare`d namespaces marked by them; a
//! container gone before user space reads its exec; repeats folded with exact counts.
//!
//! Nothing leaves loopback: the containers have no network but their own loopback
//! (`--network none`), where the DNS query goes.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::harness::{
    programs::{KillOnDrop, Tools, run},
    require_root,
    sensor::{PATIENCE, Sensor, s},
    unique,
};

const LINUX_RULE: &str = "bc84d574-708c-467d-b78a-4c1e20171f97";
const NETWORK_RULE: &str = "5790a766-53b8-40d3-a696-3547b978fcf0";

/// Podman as the tests run it: runc (crun refuses hybrid cgroup hosts), the cgroupfs
/// manager (works with or without systemd), no raised RLIMIT_NOFILE (refused on some
/// hosts), its configuration in a file of its own.
struct Podman {
    dir: tempfile::TempDir,
}

/// One image for every test of this file: busybox (static) as `/bin/*`, and `/ngrok`, a copy
/// of busybox by that name (an exec that a tunnel rule sees by its name and arguments).
static IMAGE: OnceLock<String> = OnceLock::new();

impl Podman {
    fn new() -> Podman {
        let dir = tempfile::Builder::new()
            .prefix("tunnelwatch-podman-")
            .tempdir()
            .unwrap();
        fs::write(
            dir.path().join("containers.conf"),
            "[containers]\ndefault_ulimits = []\n[engine]\nruntime = \"runc\"\n\
             cgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        Podman { dir }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.path().join("containers.conf"));
        c
    }

    /// Runs podman with `args`; its stdout, trimmed.
    fn out(&self, args: &[&str]) -> String {
        let o = self
            .cmd()
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman {args:?}: {e}"));
        assert!(o.status.success(), "podman {args:?} failed: {}", o.status);
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }

    /// The test image, imported once from a local root file system.
    fn image(&self) -> &'static str {
        IMAGE.get_or_init(|| {
            let root = self.dir.path().join("rootfs");
            fs::create_dir_all(root.join("bin")).unwrap();
            let busybox = root.join("bin/busybox");
            fs::copy("/bin/busybox", &busybox).expect("busybox-static's /bin/busybox");
            fs::set_permissions(&busybox, fs::Permissions::from_mode(0o755)).unwrap();
            for applet in ["sh", "sleep", "true", "nslookup"] {
                std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
            }
            fs::copy("/bin/busybox", root.join("ngrok")).unwrap();
            let tar = self.dir.path().join("rootfs.tar");
            run(Command::new("tar")
                .arg("-C")
                .arg(&root)
                .arg("-cf")
                .arg(&tar)
                .arg("."));
            // One name: each run replaces the last one's image.
            let image = "localhost/tunnelwatch-e2e:1".to_owned();
            let _ = self.cmd().args(["rmi", "-f", &image]).output();
            self.out(&["import", &tar.to_string_lossy(), &image]);
            image
        })
    }

    /// `podman system service` on a socket of its own; stopped when dropped.
    fn service(&self) -> (KillOnDrop, PathBuf) {
        let socket = self.dir.path().join("podman.sock");
        let child = self
            .cmd()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("podman system service");
        let deadline = Instant::now() + PATIENCE;
        while !socket.exists() {
            assert!(Instant::now() < deadline, "no podman API socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        (KillOnDrop(child), socket)
    }
}

/// A sensor asking the Podman service at `socket` for names, printing every event.
fn sensor_with_api(socket: &Path, dir: &Path, extra: &[&str]) -> Sensor {
    let conf = dir.join("tunnelwatch.yml");
    fs::write(
        &conf,
        format!(
            "podman_sockets: [{}]\ndocker_sockets: []\ncri_sockets: []\n",
            socket.display()
        ),
    )
    .unwrap();
    let mut args = vec!["--config".to_owned(), conf.to_string_lossy().into_owned()];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Sensor::start(&args)
}

fn no_container_field(line: &Value) {
    for key in [
        "container_id",
        "container_runtime",
        "container_name",
        "container_image",
        "pod_uid",
        "pod_name",
        "pod_namespace",
        "pid_ns",
        "mnt_ns",
        "net_ns",
    ] {
        assert!(line.get(key).is_none(), "{key} on a host line: {line}");
    }
}

#[test]
fn alerts_from_a_container_name_it_and_its_image_and_host_alerts_do_not() {
    if !require_root() {
        return;
    }
    let podman = Podman::new();
    let image = podman.image();
    let (_service, socket) = podman.service();
    let mut sensor = sensor_with_api(
        &socket,
        podman.dir.path(),
        &["--all-events", "--fold-window", "0"],
    );
    let name = unique("tw-e2e-web");
    let id = podman.out(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        &name,
        image,
        "/bin/sleep",
        "120",
    ]);
    let _cleanup = Cleanup(&podman, name.clone());
    // The first exec seen in the container asks the API; wait until its answer shows (events
    // before it carry the id alone).
    let deadline = Instant::now() + PATIENCE;
    loop {
        podman.out(&["exec", &name, "/bin/true"]);
        let line = sensor.wait_for("an exec in the container", |l| {
            l.get("container_id").and_then(Value::as_str) == Some(&id)
        });
        if line.get("container_name").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no container name: {line}");
    }
    // Busybox by another name exits 127 ("applet not found"): the exec is what counts.
    let _ = podman
        .cmd()
        .args(["exec", &name, "/ngrok", "http", "8080"])
        .stderr(Stdio::null())
        .status();
    let alert = sensor.wait_for("the tunnel exec in the container", |l| {
        s(l, "kind") == "alert" && s(l, "process") == "/ngrok http 8080"
    });
    assert_eq!(s(&alert, "rule_id"), LINUX_RULE);
    assert_eq!(s(&alert, "container_id"), id);
    assert_eq!(s(&alert, "container_runtime"), "podman");
    assert_eq!(s(&alert, "container_name"), name);
    assert_eq!(s(&alert, "container_image"), image);
    // A container has namespaces of its own.
    for key in ["pid_ns", "mnt_ns"] {
        assert!(alert[key].as_u64().is_some_and(|n| n > 0), "{key}: {alert}");
    }

    let query = format!("{}.ngrok.io", unique("tw-fleet"));
    let _ = podman
        .cmd()
        .args(["exec", &name, "/bin/nslookup", &query, "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let dns = sensor.wait_for("the DNS query in the container", |l| {
        s(l, "kind") == "alert" && s(l, "query") == query
    });
    assert_eq!(s(&dns, "rule_id"), NETWORK_RULE);
    assert_eq!(s(&dns, "container_id"), id);
    assert_eq!(s(&dns, "container_name"), name);
    assert_eq!(s(&dns, "container_image"), image);

    // The same tunnel on the host: no container field at all.
    let tools = Tools::new();
    run(Command::new(tools.path("ngrok")).args(["http", "8081"]));
    let host = sensor.wait_for("the tunnel exec on the host", |l| {
        s(l, "kind") == "alert" && s(l, "process").ends_with("ngrok http 8081")
    });
    no_container_field(&host);
    sensor.stop();
}

#[test]
fn a_container_gone_before_user_space_looks_still_carries_its_id() {
    if !require_root() {
        return;
    }
    let podman = Podman::new();
    let image = podman.image();
    let mut sensor = Sensor::start(&["--fold-window", "0"]);
    let cidfile = podman.dir.path().join("cid");
    let name = unique("tw-e2e-brief");
    // The container's only program is the tunnel; it exits at once and the container (and
    // its cgroup) is removed.
    let _ = podman
        .cmd()
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--name",
            &name,
            "--cidfile",
        ])
        .arg(&cidfile)
        .args([image, "/ngrok", "http", "9090"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let id = fs::read_to_string(&cidfile).unwrap().trim().to_owned();
    let alert = sensor.wait_for("the brief container's tunnel", |l| {
        s(l, "kind") == "alert" && s(l, "process") == "/ngrok http 9090"
    });
    assert_eq!(s(&alert, "container_id"), id);
    assert_eq!(s(&alert, "container_runtime"), "podman");
    sensor.stop();
}

#[test]
fn a_process_in_unshared_namespaces_is_marked_without_a_container() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&["--fold-window", "0"]);
    let ngrok = tools.path("ngrok");
    run(Command::new("unshare")
        .args(["--mount", "--net", "--pid", "--fork"])
        .arg(&ngrok)
        .args(["http", "7070"]));
    let alert = sensor.wait_for("the unshared tunnel", |l| {
        s(l, "kind") == "alert" && s(l, "process").ends_with("ngrok http 7070")
    });
    let own = |key: &str| {
        let ns = alert[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key}: {alert}"));
        let host = fs::read_link(format!("/proc/self/ns/{}", &key[..key.len() - 3]))
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            !host.contains(&ns.to_string()),
            "{key} {ns} is the host's {host}"
        );
    };
    own("pid_ns");
    own("mnt_ns");
    own("net_ns");
    assert!(alert.get("container_id").is_none(), "{alert}");
    sensor.stop();
}

#[test]
fn a_reconnect_storm_is_one_alert_and_one_summary_with_the_count() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&["--fold-window", "3"]);
    let ngrok = tools.path("ngrok");
    // The agent restarts five times (five processes, one command line) within the window.
    for _ in 0..5 {
        run(Command::new(&ngrok).args(["start", "--all"]));
    }
    let is_ours = |l: &Value| s(l, "process").ends_with("ngrok start --all");
    let lines = sensor.lines_until("the summary", |l| s(l, "kind") == "summary" && is_ours(l));
    let ours: Vec<&Value> = lines.iter().filter(|l| is_ours(l)).collect();
    assert_eq!(ours.len(), 2, "{ours:#?}");
    assert_eq!(s(ours[0], "kind"), "alert");
    let summary = ours[1];
    assert_eq!(summary["count"], 4, "{summary}");
    assert_eq!(s(summary, "rule_id"), s(ours[0], "rule_id"));
    assert_eq!(s(summary, "fold_key"), s(ours[0], "process"));
    // RFC 3339 times of one format and zone compare as text.
    let (first, last) = (s(summary, "firstTime"), s(summary, "lastTime"));
    assert!(s(ours[0], "time") <= first && first <= last, "{summary}");
    assert_eq!(s(summary, "time"), last);
    sensor.stop();
}

/// Removes the container at the end of a test, whatever happened.
struct Cleanup<'a>(&'a Podman, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .cmd()
            .args(["rm", "-f", "-t", "0", &self.1])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
