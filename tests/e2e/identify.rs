//! What an executable really is, against someone who wants it misread: renamed Go binaries
//! (real ones built by the Go toolchain, and Go 1.16's older layout built byte by byte) with
//! their section headers zeroed or renamed; a file rewritten in place with its mtime set back;
//! a FIFO swapped in at the executed path; a program that execs a renamed tool; and, as an
//! unprivileged user, sparse ELF files whose section-header tables claim 2^25 and 2^31
//! entries, after which the sensor must still be small and still answer.

use std::{
    fs::{self, OpenOptions},
    io::Write as _,
    os::unix::{fs::MetadataExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use nix::sys::signal::Signal;
use serde_json::Value;
use tunnelwatch_identify::testing::{
    GoFile, claim_section_headers, go_build, strip_section_headers,
};

use crate::harness::{
    programs::{self, KillOnDrop, Tools},
    require_root,
    sensor::{PATIENCE, Sensor, s, status_kib},
};

const NGROK: &str = "go.ngrok.com/cmd/ngrok";
const RENAMED_RULE: &str = "fe647c01-2e4b-4f5a-8611-6e0fab46fa0a";
const LINUX_RULE: &str = "bc84d574-708c-467d-b78a-4c1e20171f97";

fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Runs `path http 8080` and returns the sensor's line for it.
fn run_and_read(sensor: &mut Sensor, path: &Path) -> Value {
    programs::run(Command::new(path).args(["http", "8080"]));
    let want = text(path);
    sensor.wait_for(&want, |v| s(v, "process_path") == want)
}

fn assert_renamed_ngrok(line: &Value, what: &str) {
    assert_eq!(s(line, "rule_id"), RENAMED_RULE, "{what}: {line:#}");
    assert_eq!(s(line, "original_file_name"), "ngrok", "{what}: {line:#}");
}

#[test]
fn a_renamed_real_go_binary_is_identified_whatever_its_section_headers() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let go = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-go");
    let built = go_build(&go, "go.ngrok.com", "cmd/ngrok", "linux", "amd64", &[]);
    let bytes = fs::read(built).unwrap();
    let mut stripped = bytes.clone();
    strip_section_headers(&mut stripped);
    let mut renamed_section = bytes.clone();
    let at = renamed_section
        .windows(14)
        .position(|w| w == b".go.buildinfo\0")
        .expect("a .go.buildinfo section");
    renamed_section[at..at + 13].copy_from_slice(b".data.rel.xx\0");
    let mut sensor = Sensor::start(&[]);
    for (name, bytes) in [
        ("update-helper", &bytes),
        ("kworker-helper", &stripped),
        ("dbus-helper", &renamed_section),
    ] {
        let path = tools.executable(name, bytes);
        let line = run_and_read(&mut sensor, &path);
        assert_renamed_ngrok(&line, name);
        assert_eq!(s(&line, "process_name"), name);
    }
    sensor.stop();
}

#[test]
fn a_renamed_go_1_16_agent_is_identified() {
    if !require_root() {
        return;
    }
    // Go 1.13 to 1.17 wrote pointers to the strings, not the strings (ngrok v2 agents are
    // built with Go 1.16): with its section, renamed, and without section headers.
    let tools = Tools::new();
    let mut sensor = Sensor::start(&[]);
    for (name, section) in [
        ("agent", Some(".go.buildinfo")),
        ("agent-renamed", Some(".noptrdata")),
        ("agent-stripped", None),
    ] {
        let mut file = GoFile::new("go1.16.15", NGROK);
        file.section = section.map(str::to_owned);
        let path = tools.executable(name, &file.elf());
        assert_renamed_ngrok(&run_and_read(&mut sensor, &path), name);
    }
    sensor.stop();
}

#[test]
fn a_file_rewritten_in_place_with_its_mtime_set_back_is_read_again() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let benign = GoFile::new("go1.22.4", "example.com/cmd/helper").elf();
    let ngrok = GoFile::new("go1.22.4", NGROK).elf();
    assert_eq!(benign.len(), ngrok.len());
    let path = tools.executable("helper", &benign);
    let mut sensor = Sensor::start(&["--all-events"]);
    let line = run_and_read(&mut sensor, &path);
    assert_eq!(s(&line, "kind"), "event");
    assert!(line.get("original_file_name").is_none(), "{line:#}");

    let before = fs::metadata(&path).unwrap();
    std::thread::sleep(Duration::from_millis(20)); // let the clock tick past the first write
    let mut f = OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(&ngrok).unwrap();
    // touch -r: the old mtime back, to the nanosecond.
    f.set_modified(before.modified().unwrap()).unwrap();
    drop(f); // closed, or the exec is refused (ETXTBSY)
    let after = fs::metadata(&path).unwrap();
    assert_eq!(
        (
            after.dev(),
            after.ino(),
            after.mtime(),
            after.mtime_nsec(),
            after.size()
        ),
        (
            before.dev(),
            before.ino(),
            before.mtime(),
            before.mtime_nsec(),
            before.size()
        )
    );
    assert_renamed_ngrok(&run_and_read(&mut sensor, &path), "rewritten in place");
    sensor.stop();
}

#[test]
fn a_fifo_swapped_in_for_the_executed_file_does_not_stall_the_sensor() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let victim = tools.executable("victim", &fs::read(programs::true_binary()).unwrap());
    let mut sensor = Sensor::start(&[]);
    // Run it while user space is frozen, so that it has exited (its /proc entry gone) when
    // the sensor looks, then put a FIFO at its path.
    sensor.signal(Signal::SIGSTOP);
    programs::run(&mut Command::new(&victim));
    fs::remove_file(&victim).unwrap();
    nix::unistd::mkfifo(&victim, nix::sys::stat::Mode::from_bits_truncate(0o755)).unwrap();
    sensor.signal(Signal::SIGCONT);
    let ngrok = tools.path("ngrok");
    programs::run(Command::new(&ngrok).args(["tcp", "22"]));
    let want = text(&ngrok);
    let line = sensor.wait_for("ngrok after the FIFO", |v| s(v, "process_path") == want);
    assert_eq!(s(&line, "rule_id"), LINUX_RULE);
    sensor.stop();
}

#[test]
fn a_program_that_execs_a_renamed_tool_is_not_taken_for_it() {
    if !require_root() {
        return;
    }
    // A wrapper (`sh -c 'exec agent ...'`) becomes the agent in the same process: by the time
    // the sensor reads the wrapper's exec, /proc/PID/exe is the agent's file.
    let tools = Tools::new();
    let sh = fs::canonicalize("/bin/sh").unwrap();
    let wrapper = tools.executable("wrapper", &fs::read(sh).unwrap());
    let tail = fs::canonicalize("/usr/bin/tail").unwrap();
    let agent = tools.go_tool_from(&tail, "agent", NGROK);
    let mut sensor = Sensor::start(&["--all-events"]);
    sensor.signal(Signal::SIGSTOP);
    let child = KillOnDrop(
        Command::new(&wrapper)
            .args([
                "-c",
                &format!("exec {} -f /dev/null http 8080", agent.display()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let exe = format!("/proc/{}/exe", child.0.id());
    let deadline = Instant::now() + PATIENCE;
    while fs::read_link(&exe).ok().as_deref() != Some(agent.as_path()) {
        assert!(
            Instant::now() < deadline,
            "the wrapper never became the agent"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    sensor.signal(Signal::SIGCONT);
    let (wrapper_path, agent_path) = (text(&wrapper), text(&agent));
    let lines = sensor.lines_until("the agent", |v| s(v, "process_path") == agent_path);
    assert_renamed_ngrok(lines.last().unwrap(), "the agent");
    let wrapper_line = lines
        .iter()
        .find(|v| s(v, "process_path") == wrapper_path)
        .expect("the wrapper's exec");
    assert_eq!(s(wrapper_line, "kind"), "event", "{wrapper_line:#}");
    assert!(
        wrapper_line.get("original_file_name").is_none(),
        "{wrapper_line:#}"
    );
    sensor.stop();
}

#[test]
fn sparse_elf_files_claiming_millions_of_section_headers_leave_the_sensor_small() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&[]);
    for (name, claim) in [("claims-2p25", 1u64 << 25), ("claims-2p31", 1 << 31)] {
        let (bytes, len) = claim_section_headers(&GoFile::new("go1.16.15", NGROK).elf(), claim);
        let path = tools.executable(name, &bytes);
        // The table the headers claim lies in a hole: 2 GiB and 128 GiB, none of it on disk.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len)
            .unwrap();
        let status = Command::new(&path)
            .args(["http", "8080"])
            .uid(65534)
            .gid(65534)
            .status()
            .unwrap();
        assert!(status.success(), "{name} as nobody: {status}");
        let want = text(&path);
        let line = sensor.wait_for(name, |v| s(v, "process_path") == want);
        // Identified all the same, by its program headers.
        assert_renamed_ngrok(&line, name);
        assert_eq!(s(&line, "user"), "nobody", "{line:#}");
    }
    // Still answering.
    let ngrok = tools.path("ngrok");
    programs::run(Command::new(&ngrok).args(["tcp", "22"]));
    let want = text(&ngrok);
    let line = sensor.wait_for("ngrok after the hostile files", |v| {
        s(v, "process_path") == want
    });
    assert_eq!(s(&line, "rule_id"), LINUX_RULE);
    let peak = status_kib(sensor.pid(), "VmHWM");
    eprintln!("sensor VmHWM after the hostile files: {peak} KiB");
    assert!(peak < 200 * 1024, "sensor VmHWM {peak} KiB");
    sensor.stop();
}
