//! Connections on Windows, end to end through the enricher, the shipped rules and the emitter:
//! DNS-Client answers name the addresses that Microsoft-Windows-Kernel-Network connects and
//! datagrams go to, as the Linux sensor's DNS answers do, and the `network_connection` rules
//! (the same pack) alert on them. Payloads are built after the manifest's template and decoded
//! by the sensor's own decoder (`common::kernel_network`).

mod common;

use common::*;
use serde_json::Value;
use tunnelwatch_engine::event::{Event, NameSource};

/// Connection to an Ngrok Agent Endpoint.
const NGROK_ENDPOINT_RULE: &str = "b9b52559-80a1-4ed1-ad6b-cc147ff65fbc";
/// Connection to Port 7844, Cloudflare Tunnel's Edge Port.
const CLOUDFLARED_PORT_RULE: &str = "f941459f-d97d-443b-b877-d681bba24d30";

/// A renamed ngrok agent, pid 5832, started from cmd.exe (pid 4000).
fn renamed_agent_start() -> Vec<tunnelwatch_etw::fields::RawEvent> {
    vec![
        kernel_process_start(
            5832,
            4000,
            r"\Device\HarddiskVolume3\Users\a\AppData\Local\Temp\svc-update.exe",
            T0,
        ),
        kernel_trace(
            1,
            5832,
            4000,
            USER_SID,
            "svc-update.exe",
            r"C:\Users\a\AppData\Local\Temp\svc-update.exe start --all",
            T0,
        ),
    ]
}

fn lines_of(lines: &[String], rule: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l.contains(&format!(r#""rule_id":"{rule}""#)))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn connections(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v.get("dest_ip").is_some())
        .collect()
}

#[test]
fn a_dns_answer_then_a_connect_raises_the_ngrok_endpoint_rule_with_the_name() {
    let mut p = pipeline(false);
    for e in rundown().into_iter().chain(renamed_agent_start()) {
        p.handle(&e).unwrap();
    }
    take_lines(&mut p);
    p.handle(&dns_3006(5832, "connect.ngrok-agent.com", 1, at(1)))
        .unwrap();
    p.handle(&dns_3008(
        5832,
        "connect.ngrok-agent.com",
        1,
        0,
        "::ffff:3.134.125.175;::ffff:3.134.125.176;",
        at(1),
    ))
    .unwrap();
    p.handle(&kernel_network(
        true,
        5832,
        "192.168.1.20:50123",
        "3.134.125.176:443",
        at(2),
    ))
    .unwrap();
    let lines = take_lines(&mut p);
    let alerts = lines_of(&lines, NGROK_ENDPOINT_RULE);
    assert_eq!(alerts.len(), 1, "{lines:#?}");
    let a = &alerts[0];
    assert_eq!(
        a["message"],
        "svc-update.exe on DESKTOP-1 connected to the ngrok agent endpoint connect.ngrok-agent.com (3.134.125.176 port 443, named by dns)"
    );
    assert_eq!(a["dest"], "connect.ngrok-agent.com");
    assert_eq!(a["dest_name_source"], "dns");
    assert_eq!(a["dns_name"], "connect.ngrok-agent.com");
    assert_eq!(a["dest_ip"], "3.134.125.176");
    assert_eq!(a["dest_port"], 443);
    assert_eq!(a["src_ip"], "192.168.1.20");
    assert_eq!(a["src_port"], 50123);
    assert_eq!(a["transport"], "tcp");
    assert_eq!(a["direction"], "outbound");
    assert_eq!(a["resolver_process_id"], 5832);
    assert_eq!(a["resolver_process_name"], "svc-update.exe");
    assert_eq!(a["process_id"], 5832);
    assert_eq!(a["process_name"], "svc-update.exe");
    assert_eq!(
        a["process"],
        r"C:\Users\a\AppData\Local\Temp\svc-update.exe start --all"
    );
    assert_eq!(
        a["process_path"],
        r"C:\Users\a\AppData\Local\Temp\svc-update.exe"
    );
    assert_eq!(a["user"], r"CONTOSO\a");
    assert_eq!(a["parent_process_name"], "cmd.exe");
    assert_eq!(a["host"], "DESKTOP-1");
    // No first flight on Windows: no server name, ALPN or application protocol.
    for absent in ["server_name", "alpn", "app"] {
        assert!(
            a.get(absent)
                .is_none_or(|v| v == "" || v == &Value::Array(vec![])),
            "{absent}: {a}"
        );
    }
    assert_eq!(p.enricher.counters().connections, 1);
    assert_eq!(p.enricher.counters().names_learned, 2);
}

#[test]
fn another_process_connecting_to_the_answered_address_is_named_with_who_asked() {
    let mut p = pipeline(true);
    for e in rundown().into_iter().chain(renamed_agent_start()) {
        p.handle(&e).unwrap();
    }
    p.handle(&dns_3008(
        5832,
        "tunnel.us.ngrok.com",
        28,
        0,
        "type: 5 tunnel.us.ngrok.com.edge.example;2600:1f16:d83:1200::6e:4;",
        at(1),
    ))
    .unwrap();
    // cmd.exe (pid 4000) connects over IPv6 (event 28).
    p.handle(&kernel_network(
        true,
        4000,
        "[2001:db8::20]:50200",
        "[2600:1f16:d83:1200::6e:4]:443",
        at(2),
    ))
    .unwrap();
    // An address no answer named.
    p.handle(&kernel_network(
        true,
        4000,
        "192.168.1.20:50201",
        "203.0.113.50:443",
        at(3),
    ))
    .unwrap();
    let lines = take_lines(&mut p);
    let alerts = lines_of(&lines, NGROK_ENDPOINT_RULE);
    assert_eq!(alerts.len(), 1, "{lines:#?}");
    assert_eq!(alerts[0]["process_name"], "cmd.exe");
    assert_eq!(alerts[0]["dest"], "tunnel.us.ngrok.com");
    assert_eq!(alerts[0]["resolver_process_id"], 5832);
    assert_eq!(alerts[0]["resolver_process_name"], "svc-update.exe");
    assert_eq!(alerts[0]["dest_ip"], "2600:1f16:d83:1200::6e:4");
    let conns = connections(&lines);
    assert_eq!(conns.len(), 2, "{lines:#?}");
    let unnamed = &conns[1];
    assert_eq!(unnamed["dest_ip"], "203.0.113.50");
    assert!(unnamed.get("dest").is_none_or(|d| d == ""), "{unnamed}");
    assert!(unnamed.get("dest_name_source").is_none_or(|d| d == ""));
}

#[test]
fn a_udp_flow_is_one_event_and_raises_the_cloudflared_port_rule_once() {
    let mut p = pipeline(true);
    for e in rundown() {
        p.handle(&e).unwrap();
    }
    p.handle(&kernel_trace(
        1,
        6100,
        4000,
        USER_SID,
        "cloudflared.exe",
        r"C:\tools\cloudflared.exe tunnel run",
        at(0),
    ))
    .unwrap();
    take_lines(&mut p);
    for i in 0..50 {
        p.handle(&kernel_network(
            false,
            6100,
            "192.168.1.20:61000",
            "198.41.192.77:7844",
            at(1) + i * 1000,
        ))
        .unwrap();
    }
    let lines = take_lines(&mut p);
    assert_eq!(connections(&lines).len(), 1, "{lines:#?}");
    let alerts = lines_of(&lines, CLOUDFLARED_PORT_RULE);
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0]["message"],
        "cloudflared.exe on DESKTOP-1 connected to 198.41.192.77 port 7844 over udp, Cloudflare Tunnel's edge port"
    );
    let c = p.enricher.counters();
    assert_eq!((c.connections, c.udp_repeats), (1, 49));
    // A second socket is a second flow.
    p.handle(&kernel_network(
        false,
        6100,
        "192.168.1.20:61001",
        "198.41.192.77:7844",
        at(2),
    ))
    .unwrap();
    assert_eq!(connections(&take_lines(&mut p)).len(), 1);
}

#[test]
fn a_connect_before_its_process_start_waits_for_it() {
    let mut e = enricher(table_host());
    let mut out = Vec::new();
    for r in rundown() {
        e.handle(&r, &mut out);
    }
    // The user session's events (answer, connect) before the kernel session's Start.
    e.handle(
        &dns_3008(
            5832,
            "connect.ngrok-agent.com",
            1,
            0,
            "3.134.125.175;",
            at(0),
        ),
        &mut out,
    );
    e.handle(
        &kernel_network(true, 5832, "192.168.1.20:50123", "3.134.125.175:443", at(0)),
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(e.held(), 2);
    for r in renamed_agent_start() {
        e.handle(&r, &mut out);
    }
    let conn = out
        .iter()
        .find_map(|ev| match ev {
            Event::Connection(c) => Some(c),
            _ => None,
        })
        .unwrap_or_else(|| panic!("released by the Start: {out:#?}"));
    let p = conn.process.as_ref().unwrap();
    assert_eq!(&*p.name, "svc-update.exe");
    assert_eq!(conn.dest_name, "connect.ngrok-agent.com");
    assert_eq!(conn.name_source, Some(NameSource::Dns));
    assert_eq!(&*conn.resolver.as_ref().unwrap().name, "svc-update.exe");
    let c = e.counters();
    assert_eq!(
        (c.connections_held, c.connections_unmatched, c.dns_held),
        (1, 0, 1)
    );

    // One whose Start never comes goes out after the wait, named by its pid.
    e.handle(
        &kernel_network(
            true,
            7777,
            "192.168.1.20:50124",
            "3.134.125.175:443",
            at(10),
        ),
        &mut out,
    );
    out.clear();
    e.tick(at(10) + tunnelwatch_etw::enrich::DNS_HOLD, &mut out);
    match out.as_slice() {
        [Event::Connection(c)] => {
            assert_eq!(c.process.as_ref().unwrap().pid, 7777);
            assert_eq!(c.dest_name, "connect.ngrok-agent.com");
        }
        other => panic!("{other:#?}"),
    }
    assert_eq!(e.counters().connections_unmatched, 1);
}
