//! The first real host's surprises, driven through the pipeline with recorded field maps and a
//! host that answers from tables: a DNS event before its process's Start, and the
//! Kernel-Process mode the sensor falls back to when the kernel logger session cannot be had.

mod common;

use common::*;
use serde_json::Value;
use tunnelwatch_engine::{builtin, config::Config, engine::Engine};
use tunnelwatch_etw::{
    enrich::{DNS_HOLD, Mode},
    pipeline::Pipeline,
};

const NETWORK_RULE: &str = "5790a766-53b8-40d3-a696-3547b978fcf0";
const WINDOWS_RULE: &str = "e2549f2c-0aef-408a-b0c1-e0f270623436";

fn alerts_of(lines: &[String], rule: &str) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["rule_id"] == rule)
        .collect()
}

#[test]
fn a_dns_event_before_its_process_start_waits_for_it() {
    let mut p = pipeline(false);
    for e in rundown() {
        p.handle(&e).unwrap();
    }
    // The user session (DNS-Client) flushed before the kernel session: ngrok's first query
    // arrives before ngrok's Start.
    p.handle(&dns_3006(5832, "x.ngrok.io", 1, at(1))).unwrap();
    assert!(take_lines(&mut p).is_empty(), "held, not printed unnamed");
    assert_eq!(p.enricher.held(), 1);
    p.tick(at(1) + DNS_HOLD / 2).unwrap();
    assert!(take_lines(&mut p).is_empty(), "still within the wait");
    p.handle(&kernel_trace(
        1,
        5832,
        4000,
        USER_SID,
        "ngrok.exe",
        r"C:\Users\a\Downloads\ngrok.exe http 8080",
        T0,
    ))
    .unwrap();
    let lines = take_lines(&mut p);
    // The process alert first, then the query, named by the Start that released it.
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["datamodel"], "Endpoint.Processes");
    let dns = alerts_of(&lines, NETWORK_RULE);
    assert_eq!(dns.len(), 1, "{lines:#?}");
    assert_eq!(dns[0]["process_id"], 5832);
    assert_eq!(dns[0]["process_name"], "ngrok.exe");
    assert_eq!(
        dns[0]["process"],
        r"C:\Users\a\Downloads\ngrok.exe http 8080"
    );
    assert_eq!(dns[0]["user"], r"CONTOSO\a");
    assert_eq!(dns[0]["parent_process_name"], "cmd.exe");
    assert_eq!(p.enricher.held(), 0);
    assert_eq!(
        (
            p.enricher.counters.dns_held,
            p.enricher.counters.dns_unmatched
        ),
        (1, 0)
    );
}

#[test]
fn a_dns_event_whose_start_never_comes_is_named_from_the_live_process() {
    let mut host = table_host();
    host.live
        .insert(7000, r"C:\Users\a\Downloads\ngrok.exe".into());
    host.command_lines
        .insert(7000, r"C:\Users\a\Downloads\ngrok.exe tcp 22".into());
    host.users.insert(7000, USER_SID.into());
    let mut p = pipeline_with(host, &Config::default(), false);
    p.handle(&dns_3006(7000, "x.ngrok.io", 1, T0)).unwrap();
    p.tick(T0 + DNS_HOLD).unwrap();
    let lines = take_lines(&mut p);
    let dns = alerts_of(&lines, NETWORK_RULE);
    assert_eq!(dns.len(), 1, "{lines:#?}");
    assert_eq!(dns[0]["process_name"], "ngrok.exe");
    assert_eq!(dns[0]["process"], r"C:\Users\a\Downloads\ngrok.exe tcp 22");
    assert_eq!(dns[0]["user"], r"CONTOSO\a");
    assert_eq!(dns[0]["user_id"], USER_SID);
    // Nothing is lost at the end either: a held event is printed when the sensor stops.
    p.handle(&dns_3006(7001, "y.ngrok.io", 1, at(5))).unwrap();
    p.flush().unwrap();
    let lines = take_lines(&mut p);
    let dns = alerts_of(&lines, NETWORK_RULE);
    assert_eq!(dns.len(), 1);
    assert_eq!(dns[0]["process_id"], 7001);
    assert_eq!(p.enricher.counters.dns_unmatched, 2);
}

fn fallback_pipeline(host: TableHost) -> Pipeline<TableHost, Vec<u8>> {
    Pipeline::new(
        enricher(host).with_mode(Mode::KernelProcess),
        Engine::new(builtin::rules().unwrap(), Default::default()),
        Vec::new(),
        false,
    )
}

#[test]
fn without_the_kernel_session_kernel_process_starts_alert_with_the_live_command_line() {
    let mut host = table_host();
    // The parent was running before the sensor started: no rundown in this mode, so it is
    // read from the live system too.
    host.live
        .insert(4000, r"C:\Windows\System32\cmd.exe".into());
    host.command_lines
        .insert(4000, r#""C:\Windows\system32\cmd.exe" "#.into());
    host.users.insert(4000, USER_SID.into());
    host.command_lines
        .insert(5832, r"C:\Users\a\Downloads\ngrok.exe http 8080".into());
    host.users.insert(5832, USER_SID.into());
    let mut p = fallback_pipeline(host);
    assert_eq!(p.enricher.mode().name(), "kernel-process");
    p.handle(&kernel_process_start(
        5832,
        4000,
        r"\Device\HarddiskVolume3\Users\a\Downloads\ngrok.exe",
        T0,
    ))
    .unwrap();
    let lines = take_lines(&mut p);
    let alerts = alerts_of(&lines, WINDOWS_RULE);
    assert_eq!(alerts.len(), 1, "{lines:#?}");
    let a = &alerts[0];
    assert_eq!(a["process_id"], 5832);
    assert_eq!(a["process_path"], r"C:\Users\a\Downloads\ngrok.exe");
    assert_eq!(a["process"], r"C:\Users\a\Downloads\ngrok.exe http 8080");
    assert_eq!(a["user"], r"CONTOSO\a");
    assert_eq!(a["user_id"], USER_SID);
    assert_eq!(a["original_file_name"], "ngrok.exe");
    assert_eq!(a["parent_process_id"], 4000);
    assert_eq!(a["parent_process_name"], "cmd.exe");
    assert_eq!(a["parent_process"], r#""C:\Windows\system32\cmd.exe""#);
    assert_eq!(p.enricher.counters.live_command_lines, 1);

    // A process gone before its command line could be read: still an event, counted.
    p.handle(&kernel_process_start(
        5900,
        4000,
        r"\Device\HarddiskVolume3\Users\a\Downloads\ngrok.exe",
        at(1),
    ))
    .unwrap();
    let lines = take_lines(&mut p);
    assert_eq!(
        alerts_of(&lines, WINDOWS_RULE).len(),
        0,
        "the seed rule needs the command line"
    );
    assert_eq!(p.enricher.counters.missing_command_lines, 1);
    assert_eq!(p.enricher.counters.process_starts, 2);

    // A DNS event held for a process that starts later in this mode too.
    p.handle(&dns_3006(6000, "x.ngrok.io", 1, at(2))).unwrap();
    assert!(take_lines(&mut p).is_empty());
    p.handle(&kernel_process_start(
        6000,
        5832,
        r"\Device\HarddiskVolume3\Users\a\Downloads\curl.exe",
        at(2),
    ))
    .unwrap();
    let dns = alerts_of(&take_lines(&mut p), NETWORK_RULE);
    assert_eq!(dns.len(), 1);
    assert_eq!(dns[0]["process_name"], "curl.exe");
    assert_eq!(dns[0]["parent_process_name"], "ngrok.exe");
}

#[test]
fn the_kernel_mode_ignores_kernel_process_starts_for_events() {
    // In the normal mode the kernel's Start makes the event; Kernel-Process only fills the
    // table (no double events).
    let mut p = pipeline(true);
    p.handle(&kernel_process_start(
        5832,
        4000,
        r"\Device\HarddiskVolume3\Users\a\Downloads\ngrok.exe",
        T0,
    ))
    .unwrap();
    assert!(take_lines(&mut p).is_empty());
    assert_eq!(p.enricher.counters.process_starts, 0);
}
