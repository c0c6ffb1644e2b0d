//! Connections end to end: real clients nobody here wrote (openssl s_client, curl, python's
//! ssl, aioquic) on loopback, the connection rules of the pack, and what names the
//! destination: the ClientHello's server name (TLS, QUIC), or a DNS answer a resolver daemon
//! got on the program's behalf; a hosts-file name in a private mount namespace (no DNS at
//! all); TCP and UDP to port 7844; IPv6; a DNS query to a port that is not a DNS port; a
//! ClientHello later than the hold; a benign name and a benign port that stay silent.
//!
//! Names are unique per test (`unique`), and lines are matched on the test's own clients'
//! pids or names, so concurrent tests and sensors do not see each other's traffic as theirs.

use std::{
    io::{BufRead as _, BufReader},
    net::{SocketAddr, TcpListener},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use crate::harness::{
    dns_server::Responder,
    require_root,
    sensor::{Sensor, s},
    tls::{
        PYTHON_QUIC, PYTHON_TLS, RESOLVER_CLIENT, RESOLVER_DAEMON, TlsServer, free_port,
        run_client, s_client, udp_sink, venv_python,
    },
    unique,
};

const NGROK_AGENT: &str = "b9b52559-80a1-4ed1-ad6b-cc147ff65fbc";
const CLOUDFLARE_EDGE: &str = "aa1557d2-d79d-48d7-bf5c-5b4a49c5369a";
const PORT_7844: &str = "f941459f-d97d-443b-b877-d681bba24d30";
const NGROK_DNS_SEED: &str = "5790a766-53b8-40d3-a696-3547b978fcf0";

/// Asserts each `(key, value)` of `expected` in `line`.
fn assert_fields(line: &Value, expected: Value) {
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(line.get(k), Some(v), "field {k} in {line:#}");
    }
}

fn alert_of(rule: &'static str, dest: String) -> impl Fn(&Value) -> bool {
    move |v| s(v, "kind") == "alert" && s(v, "rule_id") == rule && s(v, "dest") == dest
}

fn tcp_v4() -> TlsServer {
    TlsServer::start(SocketAddr::from(([127, 0, 0, 1], free_port())))
}

#[test]
fn tls_clients_are_caught_by_their_server_name() {
    if !require_root() {
        return;
    }
    let server = tcp_v4();
    let mut sensor = Sensor::start(&[]);
    let addr = server.addr;
    let port = addr.port().to_string();

    // openssl s_client.
    let name = format!("connect.{}.ngrok-agent.com", unique("openssl"));
    let pid = run_client(&mut s_client(addr, Some(&name)));
    let alert = sensor.wait_for("openssl's connection", alert_of(NGROK_AGENT, name.clone()));
    assert_fields(
        &alert,
        json!({
            "datamodel": "Network_Traffic",
            "rule_name": "Connection to an Ngrok Agent Endpoint",
            "transport": "tcp",
            "dest_ip": "127.0.0.1",
            "dest_port": addr.port(),
            "src_ip": "127.0.0.1",
            "dest_name_source": "tls",
            "server_name": name,
            "alpn": ["h2"],
            "app": "tls",
            "direction": "outbound",
            "process_id": pid,
            "process_name": "openssl",
            "user": "root",
        }),
    );
    assert!(
        alert["src_port"].as_u64().is_some_and(|p| p != 0),
        "{alert:#}"
    );
    assert_eq!(
        s(&alert, "message"),
        format!(
            "openssl on {} connected to the ngrok agent endpoint {name} (127.0.0.1 port {port}, named by tls)",
            s(&alert, "host")
        )
    );

    // curl, told the address: no DNS query at all.
    let name = format!("connect.{}.ngrok-agent.com", unique("curl"));
    let pid = run_client(
        Command::new("curl")
            .args(["-sk", "--max-time", "5", "--resolve"])
            .arg(format!("{name}:{port}:127.0.0.1"))
            .arg(format!("https://{name}:{port}/")),
    );
    let alert = sensor.wait_for("curl's connection", alert_of(NGROK_AGENT, name.clone()));
    assert_fields(
        &alert,
        json!({"process_id": pid, "process_name": "curl", "alpn": ["h2", "http/1.1"]}),
    );

    // python's ssl module.
    let name = format!("tunnel.{}.ngrok.com", unique("python"));
    let pid = run_client(
        Command::new("python3")
            .args(["-c", PYTHON_TLS, "127.0.0.1", &port])
            .arg(&name),
    );
    let alert = sensor.wait_for("python's connection", alert_of(NGROK_AGENT, name));
    assert_eq!(alert["process_id"], json!(pid), "{alert:#}");
    assert!(
        s(&alert, "process_name").starts_with("python3"),
        "{alert:#}"
    );
}

#[test]
fn ipv6_connection_and_a_hosts_file_name_without_dns() {
    if !require_root() {
        return;
    }
    let server = TlsServer::start(SocketAddr::from((
        std::net::Ipv6Addr::LOCALHOST,
        free_port(),
    )));
    let mut sensor = Sensor::start(&["--all-events"]);
    let name = format!("connect.{}.ngrok-agent.com", unique("v6"));
    let pid = run_client(&mut s_client(server.addr, Some(&name)));
    let alert = sensor.wait_for("the IPv6 connection", alert_of(NGROK_AGENT, name));
    assert_fields(
        &alert,
        json!({"dest_ip": "::1", "src_ip": "::1", "process_id": pid}),
    );

    // A name only the hosts file knows, in a mount namespace of the client's own (with a
    // resolv.conf naming loopback, should anything ask DNS anyway).
    let dir = tempfile::tempdir().unwrap();
    let name = format!("tunnel.{}.ngrok.com", unique("hosts"));
    std::fs::write(dir.path().join("hosts"), format!("::1 {name}\n")).unwrap();
    std::fs::write(dir.path().join("resolv.conf"), "nameserver 127.0.0.1\n").unwrap();
    let script = format!(
        "mount --bind {d}/hosts /etc/hosts && mount --bind {d}/resolv.conf /etc/resolv.conf && exec curl -sk --max-time 5 https://{name}:{port}/",
        d = dir.path().display(),
        port = server.addr.port()
    );
    let pid = run_client(Command::new("unshare").args(["-m", "sh", "-c", &script]));
    let lines = sensor.lines_until(
        "the hosts-file connection",
        alert_of(NGROK_AGENT, name.clone()),
    );
    let alert = lines.last().unwrap();
    assert_fields(
        alert,
        json!({"process_id": pid, "process_name": "curl", "dest_name_source": "tls", "dest_ip": "::1"}),
    );
    assert!(
        !lines.iter().any(|l| s(l, "query") == name),
        "a DNS query for {name}: {lines:#?}"
    );
}

#[test]
fn quic_initial_names_the_cloudflare_tunnel_edge() {
    if !require_root() {
        return;
    }
    let python = venv_python();
    let sink = udp_sink("127.0.0.1", 0);
    let mut sensor = Sensor::start(&[]);
    let name = format!("quic-{}.cftunnel.com", unique("quic"));
    let pid = run_client(
        Command::new(&python)
            .args(["-c", PYTHON_QUIC, "127.0.0.1", &sink.port().to_string()])
            .args([name.as_str(), "argotunnel"]),
    );
    let alert = sensor.wait_for(
        "the QUIC connection",
        alert_of(CLOUDFLARE_EDGE, name.clone()),
    );
    assert_fields(
        &alert,
        json!({
            "transport": "udp",
            "dest_port": sink.port(),
            "dest_name_source": "quic",
            "server_name": name,
            "alpn": ["argotunnel"],
            "app": "quic",
            "process_id": pid,
        }),
    );
}

#[test]
fn a_resolver_daemon_names_the_destination_of_another_program() {
    if !require_root() {
        return;
    }
    // The daemon asks the responder (a DNS port the sensor watches); the program asks the
    // daemon over a Unix socket, then connects by address, sending no server name.
    let responder = Responder::start(0);
    let server = tcp_v4();
    let mut sensor = Sensor::start(&["--dns-port", &responder.port.to_string()]);
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("resolver.sock");
    let mut daemon = Command::new("python3")
        .args(["-c", RESOLVER_DAEMON])
        .arg(&socket)
        .arg(responder.port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(daemon.stdout.as_mut().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    let name = format!("region1.{}.v2.argotunnel.com", unique("daemon"));
    let script = format!(
        "ip=$(python3 -c '{client}' {sock} {name}) && exec openssl s_client -noservername -connect $ip:{port} </dev/null",
        client = RESOLVER_CLIENT.replace('\'', "\""),
        sock = socket.display(),
        port = server.addr.port()
    );
    let sh = run_client(Command::new("sh").args(["-c", &script]));
    let alert = sensor.wait_for(
        "the connection named by DNS",
        alert_of(CLOUDFLARE_EDGE, name.clone()),
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_fields(
        &alert,
        json!({
            "dest_ip": "127.0.0.1",
            "dest_port": server.addr.port(),
            "dest_name_source": "dns",
            "dns_name": name,
            "resolver_process_id": daemon.id(),
            "process_id": sh,
            "process_name": "openssl",
        }),
    );
    assert!(alert.get("server_name").is_none(), "{alert:#}");
}

#[test]
fn port_7844_over_tcp_and_udp_and_dns_on_another_port() {
    if !require_root() {
        return;
    }
    let mut sensor = Sensor::start(&[]);
    // TCP to a closed port 7844 (refused: the connection is reported all the same), UDP
    // datagrams to 7844 over IPv4 and IPv6, and a DNS query for an ngrok name to a port that
    // is not a DNS port (a resolver on 5300 or 5353).
    let dns_sink = udp_sink("127.0.0.1", 0);
    let query = format!("{}.ngrok.io", unique("port5300"));
    let script = r#"
import socket, struct, sys
try:
    socket.create_connection(("127.0.0.1", 7844), timeout=2).close()
except OSError:
    pass
for fam, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.sendto(b"\xc0" + b"\0" * 40, (host, 7844))
q = struct.pack(">HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
for label in sys.argv[1].split("."):
    q += bytes([len(label)]) + label.encode()
q += b"\0" + struct.pack(">HH", 1, 1)
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(q, ("127.0.0.1", int(sys.argv[2])))
"#;
    let pid = run_client(
        Command::new("python3")
            .args(["-c", script, &query])
            .arg(dns_sink.port().to_string()),
    );
    let mine = move |v: &Value| v["process_id"] == json!(pid);
    let mut seen: Vec<(String, String, String)> = Vec::new();
    while seen.len() < 4 {
        let l = sensor.wait_for("the 7844 and DNS alerts", |v| {
            s(v, "kind") == "alert" && mine(v)
        });
        seen.push((
            s(&l, "rule_id").to_string(),
            s(&l, "transport").to_string(),
            l["dest_ip"]
                .as_str()
                .or(l["dest"].as_str())
                .unwrap_or("")
                .to_string(),
        ));
        if s(&l, "rule_id") == NGROK_DNS_SEED {
            assert_fields(&l, json!({"query": query, "dest_port": dns_sink.port()}));
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            (NGROK_DNS_SEED.into(), "udp".into(), "127.0.0.1".into()),
            (PORT_7844.into(), "tcp".into(), "127.0.0.1".into()),
            (PORT_7844.into(), "udp".into(), "127.0.0.1".into()),
            (PORT_7844.into(), "udp".into(), "::1".into()),
        ]
    );
}

#[test]
fn a_client_hello_after_the_hold_is_reported_late_with_the_name() {
    if !require_root() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            let mut c = c.unwrap();
            let _ = std::io::copy(&mut c, &mut std::io::sink());
        }
    });
    let mut sensor = Sensor::start(&["--all-events"]);
    // A ClientHello sent 1.5 s after the connect (the hold is 500 ms): a round trip as long
    // as that, or a server that speaks first.
    let hello = include_bytes!("../../userspace/tests/fixtures/client_hello/curl.bin");
    let script = r#"
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
time.sleep(1.5)
s.sendall(sys.stdin.buffer.read())
time.sleep(0.2)
"#;
    let mut child = Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), hello).unwrap();
    let pid = child.id();
    let first = sensor.wait_for("the connection, without a name", |v| {
        s(v, "datamodel") == "Network_Traffic" && v["process_id"] == json!(pid)
    });
    assert_eq!(s(&first, "kind"), "event", "{first:#}");
    assert!(
        first.get("dest").is_none() && first.get("late").is_none(),
        "{first:#}"
    );
    let late = sensor.wait_for("the late alert", move |v| {
        s(v, "kind") == "alert" && s(v, "rule_id") == NGROK_AGENT && v["process_id"] == json!(pid)
    });
    child.wait().unwrap();
    assert_fields(
        &late,
        json!({"late": true, "dest": "connect.ngrok-agent.com", "dest_port": port, "dest_name_source": "tls"}),
    );
}

#[test]
fn a_benign_name_and_a_benign_port_stay_silent() {
    if !require_root() {
        return;
    }
    let server = tcp_v4();
    let sink = udp_sink("127.0.0.1", 0);
    let mut sensor = Sensor::start(&["--all-events"]);
    let name = format!("www.{}.example.org", unique("benign"));
    let tls = run_client(&mut s_client(server.addr, Some(&name)));
    let udp = run_client(
        Command::new("python3")
            .args(["-c", "import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hello', ('127.0.0.1', int(sys.argv[1])))"])
            .arg(sink.port().to_string()),
    );
    for (pid, what) in [(tls, "the TLS connection"), (udp, "the UDP flow")] {
        let line = sensor.wait_for(what, |v| {
            s(v, "datamodel") == "Network_Traffic" && v["process_id"] == json!(pid)
        });
        assert_eq!(s(&line, "kind"), "event", "{line:#}");
    }
    // Nothing of the test's clients raises an alert later (a late line, a DNS query).
    let later = sensor.lines_for(Duration::from_millis(1500));
    assert!(
        !later
            .iter()
            .any(|v| s(v, "kind") == "alert" && [json!(tls), json!(udp)].contains(&v["process_id"])),
        "{later:#?}"
    );
}
