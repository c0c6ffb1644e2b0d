//! Replay: recorded JSON lines back into events. Emitting a parsed line gives the line again,
//! byte for byte; replaying a recorded session prints the alerts the live run printed.

mod common;

use std::io::Cursor;

use common::*;
use tunnelwatch_engine::{
    alert::Alert,
    emit::Emitter,
    engine::Engine,
    event::{Event, Platform, Process},
    replay::{self, LineKind, Replay},
};

fn event_line(e: &Event) -> String {
    let mut em = Emitter::new(Vec::new());
    em.write_event(e).unwrap();
    String::from_utf8(em.into_inner()).unwrap()
}

/// Events of every shape the sensors produce.
fn events() -> Vec<Event> {
    let mut out = vec![
        exec("/usr/local/bin/ngrok", "/usr/local/bin/ngrok http 8080"),
        exec_on(
            Platform::Windows,
            r"C:\Users\bob\Downloads\ngrok.exe",
            r#"ngrok.exe "quoted \"arg\"" tcp 3389"#,
        ),
        exec("/usr/bin/python3", "python3 -c 'print(\"ärger\")' \t\u{1}"),
        dns_query("abc.ngrok.io"),
        dns_response("abc.ngrok.io", &["3.134.125.175", "", "cname.example"], 0),
        dns_response("nx.example", &[], 3),
    ];
    let mut bare = exec("/bin/true", "true");
    if let Event::Process(p) = &mut bare {
        p.parent = Process::default();
        p.process.user = Default::default();
        p.process.original_file_name = "true".into();
        p.args_truncated = true;
        p.time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_999);
    }
    out.push(bare);
    let mut v6 = dns_query("x.ngrok-free.app");
    if let Event::Dns(d) = &mut v6 {
        d.src = Some("[fd00::5]:40000".parse().unwrap());
        d.dest = Some("[2001:db8::53]:53".parse().unwrap());
        d.transport = "tcp";
        d.process = None;
        d.parent = None;
        d.host = "".into();
    }
    out.push(v6);
    let mut win_dns = on(Platform::Windows, dns_query("x.trycloudflare.com"));
    if let Event::Dns(d) = &mut win_dns {
        d.transport = "";
        d.src = None;
        d.process = Some(process(
            77,
            r"C:\x\cloudflared.exe",
            "cloudflared.exe tunnel",
        ));
    }
    out.push(win_dns);
    out
}

#[test]
fn emit_parse_emit_is_identical() {
    for e in events() {
        let line = event_line(&e);
        let parsed = replay::parse_line(line.trim_end())
            .map(|r| r.event.unwrap())
            .unwrap_or_else(|err| panic!("{err}: {line}"));
        assert_eq!(event_line(&parsed), line);
        assert_eq!(parsed.platform(), e.platform(), "{line}");
    }
}

#[test]
fn alert_lines_carry_the_event() {
    let engine = builtin_engine();
    let e = exec("/usr/local/bin/ngrok", "ngrok http 8080");
    let mut alerts: Vec<Alert<'_>> = Vec::new();
    engine.evaluate(&e, &mut alerts);
    let mut em = Emitter::new(Vec::new());
    em.write_alert(&e, &alerts[0]).unwrap();
    let line = String::from_utf8(em.into_inner()).unwrap();
    let rec = replay::parse_line(&line).unwrap();
    assert_eq!(
        rec.kind,
        LineKind::Alert {
            rule_id: Some(LINUX.into())
        }
    );
    assert_eq!(event_line(&rec.event.unwrap()), event_line(&e));
}

/// What the sensor does with `--all-events`: an event line when no rule fires, else one alert
/// line per alert.
fn run(engine: &Engine, events: impl IntoIterator<Item = Event>) -> String {
    let mut em = Emitter::new(Vec::new());
    for e in events {
        let mut alerts: Vec<Alert<'_>> = Vec::new();
        engine.evaluate(&e, &mut alerts);
        if alerts.is_empty() {
            em.write_event(&e).unwrap();
        }
        for a in &alerts {
            em.write_alert(&e, a).unwrap();
        }
    }
    String::from_utf8(em.into_inner()).unwrap()
}

#[test]
fn replaying_a_session_prints_the_live_alerts() {
    let engine = builtin_engine();
    let mut session = events();
    // An event that raises two alerts (one per family), recorded as two alert lines.
    let mut two = exec("/usr/bin/ssh", "ssh -R 80:localhost:3000 serveo.net");
    if let Event::Process(p) = &mut two {
        p.process.original_file_name = "ngrok".into();
    }
    session.push(two.clone());
    session.push(exec("/usr/bin/ls", "ls"));
    let live = run(&engine, session.clone());
    let recorded: Vec<Event> = Replay::new(Cursor::new(live.clone()))
        .collect::<Result<_, _>>()
        .unwrap();
    // Each event once, even the one recorded as two alert lines.
    assert_eq!(recorded.len(), session.len());
    let replayed = run(&engine, recorded);
    assert_eq!(replayed, live);
    assert!(live.matches("\"kind\":\"alert\"").count() >= 5, "{live}");
}

#[test]
fn replay_reports_bad_lines_with_their_number() {
    let text = format!(
        "{}\n\n{{\"kind\":\"event\"}}\n",
        event_line(&exec("/bin/ls", "ls")).trim_end()
    );
    let mut r = Replay::new(Cursor::new(text));
    assert!(r.next().unwrap().is_ok());
    let err = r.next().unwrap().unwrap_err();
    assert_eq!(err.line, 3);
    assert_eq!(err.to_string(), "line 3: no 'time'");
    assert!(r.next().is_none());
}

#[test]
fn a_platform_key_overrides_the_inference() {
    // A Windows DNS event without a process has nothing to infer from.
    let line = r#"{"time":"2026-11-23T01:02:03.123456Z","host":"ws7","kind":"event","datamodel":"Network_Resolution","vendor_product":"tunnelwatch","query":"x.ngrok.io","message_type":"Query","transaction_id":1}"#;
    assert_eq!(
        replay::parse_line(line).unwrap().event.unwrap().platform(),
        Platform::Linux
    );
    let with = line.replace("\"kind\"", "\"platform\":\"windows\",\"kind\"");
    assert_eq!(
        replay::parse_line(&with).unwrap().event.unwrap().platform(),
        Platform::Windows
    );
}
