//! DNS detection end to end: real queries through every send path to a responder on loopback,
//! the network seed rule, the querying process named in the alert.

use std::{net::SocketAddr, process::Command};

use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

use crate::{
    exec::me,
    harness::{
        dns_client,
        dns_server::Responder,
        require_root,
        sensor::{Sensor, s},
        unique,
    },
};

const NETWORK_RULE: &str = "5790a766-53b8-40d3-a696-3547b978fcf0";

/// A responder on a free port and a sensor watching that port.
pub(crate) fn setup() -> (Responder, Sensor) {
    let responder = Responder::start(0);
    let port = responder.port.to_string();
    let sensor = Sensor::start(&["--dns-port", &port]);
    (responder, sensor)
}

pub(crate) fn alert_for(query: &str) -> impl Fn(&Value) -> bool + '_ {
    move |v| s(v, "rule_id") == NETWORK_RULE && s(v, "query") == query
}

/// Asserts each `(key, value)` of `expected` in `line`.
fn assert_fields(line: &Value, expected: Value) {
    for (k, v) in expected.as_object().unwrap() {
        assert_eq!(line.get(k), Some(v), "field {k} in {line:#}");
    }
}

/// Fields every network alert for a query from this test process carries.
fn network_alert(query: &str, qtype: &str, id: u16, server: SocketAddr, transport: &str) -> Value {
    let me = me();
    let client = server.ip().to_string();
    json!({
        "kind": "alert",
        "rule_id": NETWORK_RULE,
        "rule_name": "Ngrok Reverse Proxy on Network",
        "rule_type": "Anomaly",
        "severity": "medium",
        "mitre_technique_id": ["T1572", "T1090", "T1102"],
        "risk_score": 50,
        "message": format!("An endpoint, {client}, is beaconing out to the reverse proxy service of Ngrok."),
        "falsepositives": ["False positives will be present based on organizations that allow the use of Ngrok. Filter or monitor as needed."],
        "datamodel": "Network_Resolution",
        "vendor_product": "tunnelwatch",
        "query": query,
        "query_type": qtype,
        "message_type": "Query",
        "transaction_id": id,
        "src": client,
        "dest": server.ip().to_string(),
        "dest_port": server.port(),
        "transport": transport,
        "process_id": me.pid,
        "process_name": me.name,
        "process_path": me.path,
        "process": me.command_line,
        "user": "root",
        "user_id": "0",
    })
}

#[test]
fn udp_sendto_ipv4_alerts_with_the_querying_process() {
    if !require_root() {
        return;
    }
    let (dns, mut sensor) = setup();
    let name = format!("{}.ngrok.io", unique("sendto"));
    let answer = dns_client::sendto(dns.v4(), &name, RecordType::A);
    let line = sensor.wait_for(&name, alert_for(&name));
    assert_fields(
        &line,
        network_alert(&name, "A", answer.metadata.id, dns.v4(), "udp"),
    );
    assert!(line["src_port"].as_u64().unwrap() > 0);
    sensor.stop();
}

#[test]
fn udp_connected_send_over_ipv6() {
    if !require_root() {
        return;
    }
    let (dns, mut sensor) = setup();
    let name = format!("{}.ngrok.com", unique("send6"));
    let answer = dns_client::connected_send(dns.v6(), &name, RecordType::AAAA);
    let line = sensor.wait_for(&name, alert_for(&name));
    assert_fields(
        &line,
        network_alert(&name, "AAAA", answer.metadata.id, dns.v6(), "udp"),
    );
    sensor.stop();
}

#[test]
fn plain_write_on_a_connected_socket() {
    if !require_root() {
        return;
    }
    let (dns, mut sensor) = setup();
    let name = format!("ngrok.{}.tunnel.com", unique("write"));
    let answer = dns_client::write(dns.v4(), &name, RecordType::A);
    let line = sensor.wait_for(&name, alert_for(&name));
    assert_fields(
        &line,
        network_alert(&name, "A", answer.metadata.id, dns.v4(), "udp"),
    );
    sensor.stop();
}

#[test]
fn sendmmsg_a_and_aaaa_in_one_call_both_alert() {
    if !require_root() {
        return;
    }
    let (dns, mut sensor) = setup();
    let name = format!("korgn.{}.lennut.com", unique("mmsg"));
    let (a, aaaa) = dns_client::sendmmsg(dns.v4(), &name);
    let first = sensor.wait_for(&name, alert_for(&name));
    let second = sensor.wait_for(&name, alert_for(&name));
    let mut got = [first, second];
    got.sort_by_key(|v| s(v, "query_type").to_string());
    assert_fields(
        &got[0],
        network_alert(&name, "A", a.metadata.id, dns.v4(), "udp"),
    );
    assert_fields(
        &got[1],
        network_alert(&name, "AAAA", aaaa.metadata.id, dns.v4(), "udp"),
    );
    sensor.stop();
}

#[test]
fn tcp_over_ipv4_and_ipv6() {
    if !require_root() {
        return;
    }
    let (dns, mut sensor) = setup();
    for server in [dns.v4(), dns.v6()] {
        let name = format!("{}.ngrok.io", unique("tcp"));
        let answer = dns_client::tcp(server, &name, RecordType::A);
        let line = sensor.wait_for(&name, alert_for(&name));
        assert_fields(
            &line,
            network_alert(&name, "A", answer.metadata.id, server, "tcp"),
        );
    }
    sensor.stop();
}

#[test]
fn mixed_case_names_are_matched_and_reported_in_lower_case() {
    if !require_root() {
        return;
    }
    let (dns, mut sensor) = setup();
    let label = unique("MiXeD");
    let sent = format!("{label}.NgRoK.Io");
    let lower = sent.to_ascii_lowercase();
    dns_client::sendto(dns.v4(), &sent, RecordType::A);
    let line = sensor.wait_for(&lower, alert_for(&lower));
    assert_eq!(s(&line, "query"), lower);
    sensor.stop();
}

#[test]
fn benign_domains_do_not_alert() {
    if !require_root() {
        return;
    }
    let (dns, mut sensor) = setup();
    let tag = unique("benign");
    for name in [
        format!("{tag}.example.com"),
        format!("ngrok.io.{tag}.example.com"),
        format!("{tag}notngrok.io"),
        format!("{tag}.ngrok.io.example.net"),
    ] {
        dns_client::sendto(dns.v4(), &name, RecordType::A);
    }
    let marker = format!("{tag}-marker.ngrok.io");
    dns_client::sendto(dns.v4(), &marker, RecordType::A);
    let lines = sensor.lines_until("the marker alert", alert_for(&marker));
    let ours: Vec<&Value> = lines
        .iter()
        .filter(|v| s(v, "query").contains(&tag))
        .collect();
    assert_eq!(ours.len(), 1, "only the marker may alert: {ours:#?}");
    sensor.stop();
}

#[test]
fn python_and_dig_clients_are_named() {
    if !require_root() {
        return;
    }
    let (dns, mut sensor) = setup();
    let port = dns.port.to_string();
    let py_name = format!("{}.ngrok.io", unique("python"));
    let script = format!(
        "import socket,struct\n\
         q=struct.pack('>HHHHHH',0x1234,0x0100,1,0,0,0)+b''.join(bytes([len(l)])+l.encode() for l in '{py_name}'.split('.'))+b'\\0'+struct.pack('>HH',1,1)\n\
         s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(5);s.sendto(q,('127.0.0.1',{port}));s.recv(512)\n"
    );
    let status = Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(status.success());
    let line = sensor.wait_for(&py_name, alert_for(&py_name));
    assert!(s(&line, "process_name").starts_with("python3"), "{line:#}");
    assert_eq!(line["transaction_id"], 0x1234);

    let dig_name = format!("{}.ngrok.io", unique("dig"));
    crate::harness::dns_client::dig(dns.port, &dig_name);
    let line = sensor.wait_for(&dig_name, alert_for(&dig_name));
    assert_eq!(s(&line, "process_name"), "dig");
    sensor.stop();
}

#[test]
fn glibc_resolver_through_getaddrinfo_on_port_53() {
    if !require_root() {
        return;
    }
    // glibc only speaks to port 53. The responder takes 127.0.0.1:53 and ::1:53, and getent runs
    // in a private mount namespace whose /etc/resolv.conf names only 127.0.0.1: nothing is
    // sent to the host's real resolver.
    let dns = Responder::start(53);
    let mut sensor = Sensor::start(&[]);
    let name = format!("{}.ngrok.io", unique("glibc"));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("resolv.conf");
    std::fs::write(
        &conf,
        "nameserver 127.0.0.1\noptions timeout:2 attempts:1\n",
    )
    .unwrap();
    let status = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &format!(
                "mount --bind {} /etc/resolv.conf && getent ahosts {name}",
                conf.display()
            ),
        ])
        .status()
        .unwrap();
    assert!(
        status.success(),
        "getent in a private mount namespace: {status}"
    );
    let a = sensor.wait_for(&name, alert_for(&name));
    assert_eq!(s(&a, "process_name"), "getent");
    assert_eq!(s(&a, "dest"), "127.0.0.1");
    assert_eq!(a["dest_port"], 53);
    // glibc asks for A and AAAA (in one sendmmsg): both are seen.
    let b = sensor.wait_for(&name, alert_for(&name));
    let mut types = [
        s(&a, "query_type").to_string(),
        s(&b, "query_type").to_string(),
    ];
    types.sort();
    assert_eq!(types, ["A", "AAAA"]);
    drop(dns);
    sensor.stop();
}

#[test]
fn responses_are_tied_to_their_query_and_process() {
    if !require_root() {
        return;
    }
    let dns = Responder::start(0);
    let port = dns.port.to_string();
    let mut sensor = Sensor::start(&["--all-events", "--dns-port", &port]);
    let me = me();
    let name = format!("{}.example.org", unique("answered"));
    let answer = dns_client::sendto(dns.v4(), &name, RecordType::A);
    let response = sensor.wait_for("the response event", |v| {
        s(v, "query") == name && s(v, "message_type") == "Response"
    });
    assert_fields(
        &response,
        json!({
            "kind": "event",
            "datamodel": "Network_Resolution",
            "transaction_id": answer.metadata.id,
            "reply_code": "NoError",
            "reply_code_id": 0,
            "answer": ["127.0.0.1"],
            "src": "127.0.0.1",
            "dest": "127.0.0.1",
            "dest_port": dns.port,
            "process_id": me.pid,
            "process_name": me.name,
        }),
    );
    let missing = format!("{}.nxdomain.example", unique("gone"));
    dns_client::sendto(dns.v6(), &missing, RecordType::A);
    let response = sensor.wait_for("the NXDomain response", |v| {
        s(v, "query") == missing && s(v, "message_type") == "Response"
    });
    assert_eq!(s(&response, "reply_code"), "NXDomain");
    assert_eq!(response["reply_code_id"], 3);
    assert_eq!(s(&response, "src"), "::1");
    sensor.stop();
}
