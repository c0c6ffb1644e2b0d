//! Tunnels that hide in protocols, end to end with Debian's own tools (installed by `cargo xtask
//! setup`): SSH forwards, autossh, socat, sshuttle, ptunnel-ng, httptunnel, corkscrew and
//! stunnel started for real (against closed ports on 127.0.0.1, or inside a network namespace
//! the test makes, so that they fail fast or are stopped: the exec is what the rules see), and
//! the look-alikes that must stay silent; a renamed iodine client in DNS mode against iodined,
//! both in network namespaces the test makes and joins with a veth pair, caught by the DNS
//! tunnel correlations alone; and busy benign DNS loads that must not be.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::harness::{
    dns_client,
    dns_server::Responder,
    programs::{self, Tools},
    require_root,
    sensor::{Sensor, s},
    unique,
};

const SSH_REVERSE: &str = "12dd5349-d17f-448f-b4a4-0fff0bfc5239";
const SSH_LOCAL: &str = "51196896-7610-48c6-a46c-b46c6cb5af87";
const SSH_TUN: &str = "c6310729-6c27-4de6-9ab8-e95c668840b3";
const SOCAT: &str = "ec02bf0e-fc00-4315-b5b2-9964469d2423";
const SSHUTTLE: &str = "aab001b8-6b00-46d7-96f6-7bc3ce51548b";
const ICMP: &str = "987e3714-64ed-4730-94f6-050f895ce745";
const HTTP: &str = "f88b557d-a4ae-4d17-b0cf-6a406b5688f2";
const STUNNEL: &str = "281ae0a5-fc4d-4409-8efc-b5fcfe3e9a63";
const DNS_TOOL: &str = "0fa1d021-9ca2-4229-b476-a1b1fbe644fc";
const DNS_DATA: &str = "a34ebf57-34d1-4065-8d27-a0e6193f36de";
const DNS_TYPES: &str = "e6d2afae-f7a2-4c80-918c-2cd90fd10fcb";

/// A network namespace the test made, with its loopback up; deleted when dropped.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = unique("tw");
        programs::run(Command::new("ip").args(["netns", "add", &name]));
        programs::run(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Netns(name)
    }

    /// `program args` run inside the namespace (`ip netns exec` keeps the pid).
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A child stopped (and reaped) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command) -> Running {
    Running(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {cmd:?}: {e} (installed by cargo xtask setup)")
            }),
    )
}

/// Runs `cmd` to its end (it fails fast) and returns its pid.
fn run_to_end(cmd: &mut Command) -> u32 {
    let mut r = spawn(cmd);
    let pid = r.0.id();
    let _ = crate::harness::sensor::wait_timeout(&mut r.0, Duration::from_secs(20));
    pid
}

/// A TCP port free on 127.0.0.1 right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs this test's marker (the copy of /bin/true named ngrok) and returns every line up to its
/// alert: what was started before it has been reported by then.
fn lines_until_marker(sensor: &mut Sensor, tools: &Tools) -> Vec<Value> {
    let marker = tools.path("ngrok");
    let arg = unique("marker");
    programs::run(Command::new(&marker).args(["http", &arg]));
    sensor.lines_until("the marker alert", |v| s(v, "process").ends_with(&arg))
}

/// The ids of the rules that fired on process `pid`.
fn rules_on(lines: &[Value], pid: u32) -> Vec<String> {
    lines
        .iter()
        .filter(|v| v["process_id"].as_u64() == Some(u64::from(pid)))
        .map(|v| s(v, "rule_id").to_owned())
        .collect()
}

#[test]
fn classic_tunnels_alert_and_their_look_alikes_do_not() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&[]);
    let user = unique("tw");
    let target = format!("{user}@127.0.0.1");
    // Port 1 on loopback is closed: the client starts, then fails at once.
    let ssh = |extra: &[&str]| {
        let mut c = Command::new("ssh");
        c.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=2",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-p",
            "1",
        ]);
        c.args(extra);
        c
    };
    let mut expected: Vec<(&str, u32, Option<&str>)> = vec![
        (
            "ssh -R",
            run_to_end(&mut ssh(&["-N", "-R", "8080:localhost:80", &target])),
            Some(SSH_REVERSE),
        ),
        (
            "ssh -fNR glued",
            run_to_end(&mut ssh(&["-NR9090:127.0.0.1:22", &target])),
            Some(SSH_REVERSE),
        ),
        (
            "ssh -o RemoteForward",
            run_to_end(&mut ssh(&[
                "-o",
                "RemoteForward=8443 localhost:443",
                &target,
            ])),
            Some(SSH_REVERSE),
        ),
        (
            "ssh -L",
            run_to_end(&mut ssh(&["-N", "-L", "5432:127.0.0.1:5432", &target])),
            Some(SSH_LOCAL),
        ),
        (
            "ssh -D after the host",
            run_to_end(&mut ssh(&[&target, "-D", "1080", "-N"])),
            Some(SSH_LOCAL),
        ),
        (
            "ssh -w",
            run_to_end(&mut ssh(&["-w", "0:0", &target])),
            Some(SSH_TUN),
        ),
    ];
    let autossh = run_to_end(
        Command::new("autossh")
            .env("AUTOSSH_MAXSTART", "1")
            .env("AUTOSSH_GATETIME", "0")
            .args(["-M", "0", "-N", "-R", "2222:localhost:22"])
            .args(["-o", "BatchMode=yes", "-p", "1", &target]),
    );
    expected.push(("autossh -R", autossh, Some(SSH_REVERSE)));
    // Look-alikes.
    expected.push(("ssh -V", run_to_end(&mut ssh(&["-V"])), None));
    expected.push((
        "a plain ssh",
        run_to_end(&mut ssh(&[&target, "true"])),
        None,
    ));
    expected.push((
        "-R in the remote command",
        run_to_end(&mut ssh(&[&target, "grep", "-R", "x", "/etc"])),
        None,
    ));

    // socat: a relay alerts; listening to a local program, or the version, does not.
    let relay_port = free_port().to_string();
    let relay = spawn(Command::new("socat").args([
        &format!("TCP-LISTEN:{relay_port},bind=127.0.0.1,reuseaddr,fork"),
        "TCP:127.0.0.1:1",
    ]));
    expected.push(("socat relay", relay.0.id(), Some(SOCAT)));
    let listen_port = free_port().to_string();
    let listener = spawn(Command::new("socat").args([
        &format!("TCP-LISTEN:{listen_port},bind=127.0.0.1,reuseaddr"),
        "EXEC:/bin/cat",
    ]));
    expected.push(("socat listening only", listener.0.id(), None));
    expected.push((
        "socat -V",
        run_to_end(Command::new("socat").arg("-V")),
        None,
    ));

    // sshuttle and ptunnel-ng in a namespace of their own: whatever they would set up stays
    // there.
    let ns = Netns::new();
    let sshuttle = run_to_end(ns.command("sshuttle").args([
        "-r",
        &format!("{target}:1"),
        "-e",
        "ssh -o BatchMode=yes -o ConnectTimeout=2",
        "10.250.0.0/24",
    ]));
    expected.push(("sshuttle", sshuttle, Some(SSHUTTLE)));
    let ptunnel =
        spawn(
            ns.command("ptunnel-ng")
                .args(["-p127.0.0.1", "-l2222", "-r127.0.0.1", "-R22"]),
        );
    expected.push(("ptunnel-ng", ptunnel.0.id(), Some(ICMP)));

    // HTTP tunnels, stunnel, a DNS tunnel tool by name.
    let hts_port = free_port().to_string();
    let hts = spawn(Command::new("hts").args([
        "-w",
        "-F",
        "127.0.0.1:1",
        &format!("127.0.0.1:{hts_port}"),
    ]));
    expected.push(("hts", hts.0.id(), Some(HTTP)));
    expected.push((
        "corkscrew",
        run_to_end(Command::new("corkscrew").args(["127.0.0.1", "1", "127.0.0.1", "22"])),
        Some(HTTP),
    ));
    expected.push((
        "stunnel3 -c",
        run_to_end(Command::new("stunnel3").args(["-c", "-r", "127.0.0.1:1"])),
        Some(STUNNEL),
    ));
    expected.push((
        "iodine -v",
        run_to_end(Command::new("iodine").arg("-v")),
        None,
    ));

    let lines = lines_until_marker(&mut sensor, &tools);
    drop((relay, listener, ptunnel, hts));
    let mut wrong = Vec::new();
    for (name, pid, rule) in &expected {
        let fired = rules_on(&lines, *pid);
        let ok = match rule {
            Some(r) => fired.iter().any(|f| f == r),
            None => fired.is_empty(),
        };
        if !ok {
            wrong.push(format!(
                "{name} (pid {pid}): expected {rule:?}, fired {fired:?}"
            ));
        }
    }
    // autossh's ssh child alerts too, as itself.
    let child_of_autossh = lines.iter().any(|v| {
        v["parent_process_id"].as_u64() == Some(u64::from(autossh))
            && s(v, "rule_id") == SSH_REVERSE
            && s(v, "process_name") == "ssh"
    });
    if !child_of_autossh {
        wrong.push("the ssh that autossh started did not alert".into());
    }
    assert!(wrong.is_empty(), "{wrong:#?}\nlines: {lines:#?}");
    sensor.stop();
}

/// Joins two namespaces with a veth pair: `10.199.0.1/30` in `a`, `10.199.0.2/30` in `b`.
fn veth(a: &Netns, b: &Netns) {
    let id = std::process::id() % 100_000;
    let (va, vb) = (format!("twa{id}"), format!("twb{id}"));
    programs::run(Command::new("ip").args([
        "link", "add", &va, "netns", &a.0, "type", "veth", "peer", "name", &vb, "netns", &b.0,
    ]));
    for (ns, dev, addr) in [(a, &va, "10.199.0.1/30"), (b, &vb, "10.199.0.2/30")] {
        programs::run(Command::new("ip").args(["-n", &ns.0, "addr", "add", addr, "dev", dev]));
        programs::run(Command::new("ip").args(["-n", &ns.0, "link", "set", dev, "up"]));
    }
}

#[test]
fn a_renamed_iodine_in_dns_mode_is_named_with_its_domain() {
    if !require_root() {
        return;
    }
    let tools = Tools::new();
    let mut sensor = Sensor::start(&[]);
    let (server_ns, client_ns) = (Netns::new(), Netns::new());
    veth(&server_ns, &client_ns);
    let domain = format!("{}.test", unique("iod"));
    let topdomain = format!("t.{domain}");
    // The client, renamed: nothing in its name or path says iodine.
    let client = tools.path("sysupd");
    std::fs::copy("/usr/sbin/iodine", &client).expect("Debian's iodine (cargo xtask setup)");
    let _server = spawn(server_ns.command("iodined").args([
        "-f",
        "-c",
        "-P",
        "tunnelwatch",
        "-l",
        "10.199.0.1",
        "10.53.0.1/27",
        &topdomain,
    ]));
    std::thread::sleep(Duration::from_millis(500));
    // DNS mode (-r: no raw UDP), through iodined's address in the other namespace only.
    let log = tools.path("iodine.log");
    let mut child = client_ns.command(&client.to_string_lossy());
    child
        .args(["-f", "-r", "-P", "tunnelwatch", "10.199.0.1", &topdomain])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(tools.path("iodine.err")).unwrap());
    let _client = Running(child.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let err = tools.path("iodine.err");
    while !std::fs::read_to_string(&err)
        .unwrap_or_default()
        .contains("Connection setup complete")
    {
        assert!(
            Instant::now() < deadline,
            "iodine did not connect: {}",
            std::fs::read_to_string(&err).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Data through the tunnel, to iodined's tunnel address (inside the namespaces).
    programs::run(client_ns.command("python3").args([
        "-c",
        "import os, socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         for _ in range(40):\n    s.sendto(os.urandom(300), ('10.53.0.1', 9)); time.sleep(0.05)\n",
    ]));
    let path = client.to_string_lossy().into_owned();
    let seen = std::cell::RefCell::new(std::collections::HashSet::new());
    let lines = sensor.lines_until("both DNS tunnel correlations on the renamed client", |v| {
        if s(v, "process_path") == path && s(v, "query_registered_domain") == domain {
            seen.borrow_mut().insert(s(v, "rule_id").to_owned());
        }
        let seen = seen.borrow();
        seen.contains(DNS_DATA) && seen.contains(DNS_TYPES)
    });
    let data = lines
        .iter()
        .find(|v| s(v, "rule_id") == DNS_DATA && s(v, "process_path") == path)
        .unwrap();
    assert_eq!(s(data, "correlation_type"), "value_count");
    assert_eq!(s(data, "severity"), "high");
    assert!(data["distinct_count"].as_u64().unwrap() >= 30, "{data}");
    assert!(
        s(data, "message").starts_with(&format!(
            "{path} sent 30 distinct data-laden DNS names under {domain} within 1m"
        )),
        "{data}"
    );
    for key in ["firstTime", "lastTime", "time"] {
        assert!(s(data, key).ends_with('Z'), "{key}: {data}");
    }
    // No line names iodine: only what the client asked gave it away (iodined's own exec
    // raises the tool rule, by name).
    assert!(
        !lines
            .iter()
            .any(|v| s(v, "process_path") == path && s(v, "rule_id") == DNS_TOOL),
        "{lines:#?}"
    );
    sensor.stop();
}

/// A pseudo-random name part of `len` characters of Base32's alphabet.
fn random_label(seed: &mut u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ALPHABET[(*seed % 32) as usize] as char
        })
        .collect()
}

#[test]
fn busy_benign_dns_loads_stay_silent_and_a_data_load_does_not() {
    if !require_root() {
        return;
    }
    let dns = Responder::start(0);
    let port = dns.port.to_string();
    let mut sensor = Sensor::start(&["--dns-port", &port]);
    let server = dns.v4();
    let m = unique("benign");
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(std::process::id());
    // A CDN's shard names: many, short, under one domain.
    for i in 0..150 {
        dns_client::sendto(
            server,
            &format!("img{i}-a7f3.cdn.{m}.example"),
            RecordType::A,
        );
    }
    // A browser: long random names, each under a domain of its own.
    for i in 0..60 {
        let name = format!("{}.cdn.site{i}-{m}.example", random_label(&mut seed, 50));
        dns_client::sendto(server, &name, RecordType::A);
    }
    // A mail server: MX, A and TXT (SPF, DMARC) lookups of many senders.
    for i in 0..40 {
        let sender = format!("sender{i}-{m}.example");
        dns_client::sendto(server, &sender, RecordType::MX);
        dns_client::sendto(server, &format!("mx1.{sender}"), RecordType::A);
        dns_client::sendto(server, &sender, RecordType::TXT);
        dns_client::sendto(server, &format!("_dmarc.{sender}"), RecordType::TXT);
    }
    // A hash reputation service: hex digests under one domain.
    for i in 0..60u64 {
        let digest: String = (0..40)
            .map(|k| char::from(b"0123456789abcdef"[((i * 7919 + k * 104_729) % 16) as usize]))
            .collect();
        dns_client::sendto(server, &format!("{digest}.hash.{m}.example"), RecordType::A);
    }
    // And a tunnel-like load: data in names under one domain.
    let tunnel = format!("{m}-tunnel.example");
    for _ in 0..35 {
        let name = format!(
            "{}.{}.t.{tunnel}",
            random_label(&mut seed, 60),
            random_label(&mut seed, 40)
        );
        dns_client::sendto(server, &name, RecordType::A);
    }
    let lines = sensor.lines_until("the data-in-names correlation", |v| {
        s(v, "rule_id") == DNS_DATA && s(v, "query_registered_domain") == tunnel
    });
    let benign: Vec<&Value> = lines
        .iter()
        .filter(|v| {
            v.get("correlation_type").is_some()
                && s(v, "query_registered_domain").contains(&m)
                && s(v, "query_registered_domain") != tunnel
        })
        .collect();
    assert!(benign.is_empty(), "{benign:#?}");
    sensor.stop();
}
