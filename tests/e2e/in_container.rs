//! The sensor in a container. The OCI image `cargo xtask package` builds
//! (target/package/tunnelwatch-VERSION-ARCH.oci.tar; `cargo xtask test` builds it before the
//! tests) is loaded into a private Podman store and run with runc as the DaemonSet runs it:
//! the host's PID namespace, the host's cgroup v2 root and BTF mounted read-only, the
//! DaemonSet's capabilities and no others, not privileged. It must alert, on the container's
//! stdout, on a renamed ngrok executed on the host. Without the host's PID namespace, or with
//! a cgroup2 mount that is a private cgroup namespace's own cgroup, the sensor must refuse to
//! start (exit code 3) and say what is missing.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::OnceLock,
};

use tempfile::TempDir;

use crate::harness::{
    programs::{KillOnDrop, Tools},
    require_root,
    sensor::{BIN, Sensor, s},
    unique,
};

/// The capabilities deploy/tunnelwatch-daemonset.yaml grants.
const CAPABILITIES: &str =
    "BPF,PERFMON,NET_ADMIN,SYS_ADMIN,SYS_RESOURCE,SYS_PTRACE,DAC_READ_SEARCH";

/// The rule that fires on an executable identified as ngrok under another name.
const RENAMED_RULE: &str = "fe647c01-2e4b-4f5a-8611-6e0fab46fa0a";

/// A Podman of the tests' own: store, run state and configuration in a temp dir, runc,
/// cgroupfs, no raised ulimits (this machine's RLIMIT_NOFILE cannot be raised), and the image
/// loaded once.
struct Podman {
    dir: TempDir,
    image: String,
}

impl Podman {
    fn get() -> &'static Podman {
        static PODMAN: OnceLock<Podman> = OnceLock::new();
        PODMAN.get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("tunnelwatch-podman-")
                .tempdir()
                .unwrap();
            std::fs::write(
                dir.path().join("containers.conf"),
                "[containers]\ndefault_ulimits = []\n\
                 [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n",
            )
            .unwrap();
            let mut podman = Podman {
                dir,
                image: String::new(),
            };
            let archive = image_archive();
            assert!(
                archive.is_file(),
                "{} is missing: build it with `cargo xtask package --arch {}` (`cargo xtask \
                 test` does before the tests)",
                archive.display(),
                std::env::consts::ARCH
            );
            let out = podman.output(&["load", "--input", archive.to_str().unwrap()]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "podman load: {out:?}");
            podman.image = text
                .lines()
                .find_map(|l| l.strip_prefix("Loaded image: "))
                .unwrap_or_else(|| panic!("podman load named no image: {text}"))
                .trim()
                .to_string();
            podman
        })
    }

    /// `podman` with the private store and configuration.
    fn command(&self) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("store"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(["--storage-driver", "vfs", "--log-level", "error"]);
        c
    }

    fn output(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .expect("podman (installed by `cargo xtask setup`)")
    }

    /// `podman run` of the image as the DaemonSet runs it; `host_pid` and `cgroup_root` can
    /// be left out to see the refusals.
    fn run_command(&self, host_pid: bool, cgroup_root: bool, args: &[&str]) -> Command {
        let mut c = self.command();
        c.args(["run", "--rm", "--name", &unique("tunnelwatch-e2e")])
            .args(["--cap-drop", "ALL", "--cap-add", CAPABILITIES])
            .args(["--security-opt", "seccomp=unconfined"])
            .args(["--read-only", "--network", "none", "--uts", "host"])
            .args(["--cgroupns", "private"])
            .args(["-v", "/sys/kernel/btf:/sys/kernel/btf:ro"])
            .args([
                "-v",
                "/etc/passwd:/etc/passwd:ro",
                "-v",
                "/etc/group:/etc/group:ro",
            ]);
        if host_pid {
            c.args(["--pid", "host"]);
        }
        if cgroup_root {
            let root = tunnelwatch::linux::cgroup::v2_root().expect("the host's cgroup v2 root");
            c.arg("-v")
                .arg(format!("{}:/host/sys/fs/cgroup:ro", root.display()));
        }
        c.arg(&self.image).args(args);
        c
    }
}

/// The image archive of this machine's architecture.
fn image_archive() -> PathBuf {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(format!(
            "target/package/tunnelwatch-{}-{arch}.oci.tar",
            env!("CARGO_PKG_VERSION")
        ))
}

/// Runs `cmd` (a sensor that must refuse to start) and returns its stderr, once its exit code
/// is 3 (the host cannot run the sensor).
fn refused(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{err}");
    err
}

#[test]
fn the_image_run_as_the_daemonset_runs_it_alerts_on_a_renamed_ngrok_on_the_host() {
    if !require_root() {
        return;
    }
    let podman = Podman::get();
    let mut sensor = Sensor::start_command(&mut podman.run_command(
        true,
        true,
        &[
            "--config",
            "/etc/tunnelwatch/tunnelwatch.yml",
            "--stats-interval",
            "0",
        ],
    ));
    let tools = Tools::new();
    // A copy of `sleep` carrying ngrok's Go build information, alive while the sensor reads it
    // through /proc/PID/exe: the host's PID namespace at work. (Once it is gone the sensor
    // reads its path under /proc/1/root, which this machine's PID 1 does not allow.)
    let sleep = std::fs::canonicalize("/bin/sleep").unwrap();
    let agent = tools.go_tool_from(&sleep, &unique("update-agent"), "go.ngrok.com/cmd/ngrok");
    let _running = KillOnDrop(Command::new(&agent).arg("30").spawn().unwrap());
    let path = agent.to_str().unwrap().to_string();
    let line = sensor.wait_for("the renamed ngrok's alert", |l| {
        s(l, "rule_id") == RENAMED_RULE && s(l, "process_path") == path
    });
    assert_eq!(s(&line, "original_file_name"), "ngrok", "{line:#}");
    // The host's names, not the container's: its UTS namespace and its users.
    let hostname = nix::unistd::gethostname().unwrap();
    assert_eq!(s(&line, "host"), hostname.to_str().unwrap(), "{line:#}");
    assert_eq!(s(&line, "user"), "root", "{line:#}");
    // The process behind it is the host's, by the pid the host sees.
    assert!(
        line["process_id"].as_u64().is_some_and(|p| p > 0),
        "{line:#}"
    );
    let stopped = sensor.stop();
    assert!(
        stopped.stderr.contains("tunnelwatch: stats"),
        "{}",
        stopped.stderr
    );
}

#[test]
fn the_image_without_the_hosts_pid_namespace_says_so() {
    if !require_root() {
        return;
    }
    let out = Podman::get()
        .run_command(false, true, &[])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("private PID namespace"), "{err}");
    assert!(
        err.contains("--pid=host") && err.contains("hostPID: true"),
        "{err}"
    );
}

#[test]
fn the_image_without_the_hosts_cgroup_root_says_so() {
    if !require_root() {
        return;
    }
    let out = Podman::get()
        .run_command(true, false, &[])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    // A cgroup v2 host mounts the container's own cgroup there; a hybrid one (this
    // project's machines) mounts none in the container.
    assert!(
        err.contains("is not the host's root cgroup") || err.contains("no cgroup v2 hierarchy"),
        "{err}"
    );
}

/// The sensor on the host, in a private cgroup namespace whose cgroup2 mount is that
/// namespace's own cgroup (what a container sees): refused, with what to change.
#[test]
fn a_cgroup2_mount_of_a_private_cgroup_namespace_is_refused() {
    if !require_root() {
        return;
    }
    let root = tunnelwatch::linux::cgroup::v2_root().unwrap();
    let cgroup = root.join(unique("tunnelwatch-e2e-cgns"));
    std::fs::create_dir(&cgroup).unwrap();
    let script = format!(
        "echo $$ > '{}/cgroup.procs' && exec unshare --cgroup --mount sh -c \
         \"umount -l '{root}' && mount -t cgroup2 none '{root}' && exec '{BIN}'\"",
        cgroup.display(),
        root = root.display()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let _ = std::fs::remove_dir(&cgroup);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "the cgroup v2 file system mounted at {} is not the host's root cgroup",
            root.display()
        )),
        "{err}"
    );
    assert!(err.contains("--cgroupns=host"), "{err}");
}

/// The sensor without CAP_NET_ADMIN (and without CAP_SYS_ADMIN, which would stand for it):
/// refused before loading anything, naming the capability.
#[test]
fn a_missing_capability_is_named() {
    if !require_root() {
        return;
    }
    let err = refused(Command::new("setpriv").args([
        "--bounding-set",
        "-all,+bpf,+perfmon,+sys_resource,+sys_ptrace,+dac_read_search",
        BIN,
    ]));
    assert!(err.contains("runs without CAP_NET_ADMIN:"), "{err}");
}

/// The sensor on the host in a private PID namespace: refused, with what to change.
#[test]
fn a_private_pid_namespace_is_refused() {
    if !require_root() {
        return;
    }
    let err = refused(Command::new("unshare").args(["--pid", "--fork", "--mount-proc", BIN]));
    assert!(err.contains("private PID namespace"), "{err}");
}
