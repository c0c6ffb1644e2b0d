//! Alert and event lines: exact JSON, omitted unknowns, message filling, write errors.

mod common;

use std::io::{self, Write};

use common::*;
use tunnelwatch_engine::{
    alert::Alert,
    emit::Emitter,
    event::{Event, Platform, Process},
};

fn alerts_line(event: &Event) -> String {
    let engine = builtin_engine();
    let mut alerts = Vec::new();
    engine.evaluate(event, &mut alerts);
    assert_eq!(alerts.len(), 1);
    let mut em = Emitter::new(Vec::new());
    em.write_alert(event, &alerts[0]).unwrap();
    String::from_utf8(em.into_inner()).unwrap()
}

fn event_line(event: &Event) -> String {
    let mut em = Emitter::new(Vec::new());
    em.write_event(event).unwrap();
    String::from_utf8(em.into_inner()).unwrap()
}

#[test]
fn process_alert_line() {
    let e = exec("/usr/local/bin/ngrok", "/usr/local/bin/ngrok http 8080");
    assert_eq!(
        alerts_line(&e),
        concat!(
            r#"{"time":"2026-11-23T01:02:03.123456Z","host":"web1","kind":"alert","#,
            r#""rule_id":"bc84d574-708c-467d-b78a-4c1e20171f97","rule_name":"Linux Ngrok Reverse Proxy Usage","#,
            r#""rule_type":"Anomaly","severity":"medium","mitre_technique_id":["T1572","T1090","T1102"],"#,
            r#""risk_score":50,"message":"A reverse proxy was identified spawning from bash - ngrok on endpoint web1 by user alice.","#,
            r#""falsepositives":["False positives may be present if Ngrok is an authorized utility. Filter as needed."],"#,
            r#""datamodel":"Endpoint.Processes","vendor_product":"tunnelwatch","#,
            r#""dest":"web1","user":"alice","user_id":"1000","process":"/usr/local/bin/ngrok http 8080","#,
            r#""process_name":"ngrok","process_path":"/usr/local/bin/ngrok","process_id":4242,"#,
            r#""parent_process":"bash","parent_process_name":"bash","parent_process_path":"/usr/bin/bash","#,
            r#""parent_process_id":4000}"#,
            "\n"
        )
    );
}

#[test]
fn dns_alert_line() {
    let e = dns_query("abc.ngrok.io");
    assert_eq!(
        alerts_line(&e),
        concat!(
            r#"{"time":"2026-11-23T01:02:03.123456Z","host":"web1","kind":"alert","#,
            r#""rule_id":"5790a766-53b8-40d3-a696-3547b978fcf0","rule_name":"Ngrok Reverse Proxy on Network","#,
            r#""rule_type":"Anomaly","severity":"medium","mitre_technique_id":["T1572","T1090","T1102"],"#,
            r#""risk_score":50,"message":"An endpoint, 10.0.0.5, is beaconing out to the reverse proxy service of Ngrok.","#,
            r#""falsepositives":["False positives will be present based on organizations that allow the use of Ngrok. Filter or monitor as needed."],"#,
            r#""datamodel":"Network_Resolution","vendor_product":"tunnelwatch","#,
            r#""query":"abc.ngrok.io","query_type":"A","message_type":"Query","transaction_id":4660,"#,
            r#""src":"10.0.0.5","src_port":40000,"dest":"10.0.0.1","dest_port":53,"transport":"udp","#,
            r#""process_id":5150,"process_name":"curl","process_path":"/usr/bin/curl","#,
            r#""process":"curl https://abc.ngrok.io","user":"alice","user_id":"1000","#,
            r#""parent_process_id":4000,"parent_process_name":"bash","parent_process_path":"/usr/bin/bash"}"#,
            "\n"
        )
    );
}

#[test]
fn all_events_line_of_a_dns_response() {
    let mut e = dns_response("abc.ngrok.io", &["3.134.125.175", "3.13.191.225"], 0);
    if let Event::Dns(d) = &mut e {
        d.src = Some("[fd00::5]:40000".parse().unwrap());
        d.dest = None;
        d.transport = "";
        d.parent = None;
        d.process = Some(Process {
            pid: 5150,
            name: "curl".into(),
            ..Process::default()
        });
    }
    assert_eq!(
        event_line(&e),
        concat!(
            r#"{"time":"2026-11-23T01:02:03.123456Z","host":"web1","kind":"event","#,
            r#""datamodel":"Network_Resolution","vendor_product":"tunnelwatch","#,
            r#""query":"abc.ngrok.io","query_type":"A","message_type":"Response","transaction_id":4660,"#,
            r#""reply_code":"NoError","reply_code_id":0,"answer":["3.134.125.175","3.13.191.225"],"#,
            r#""answer_count":2,"src":"fd00::5","src_port":40000,"#,
            r#""process_id":5150,"process_name":"curl"}"#,
            "\n"
        )
    );
}

#[test]
fn process_event_line_omits_unknowns_and_flags_truncation() {
    let mut e = exec_on(
        Platform::Windows,
        r"C:\x\ngrok.exe",
        "ngrok.exe \"quoted\" \\ path",
    );
    if let Event::Process(p) = &mut e {
        p.parent = Process::default();
        p.process.user = Default::default();
        p.process.user_id = "S-1-5-18".into();
        p.process.original_file_name = "ngrok.exe".into();
        p.args_truncated = true;
    }
    assert_eq!(
        event_line(&e),
        concat!(
            r#"{"time":"2026-11-23T01:02:03.123456Z","host":"web1","kind":"event","#,
            r#""datamodel":"Endpoint.Processes","vendor_product":"tunnelwatch","#,
            r#""dest":"web1","user_id":"S-1-5-18","process":"ngrok.exe \"quoted\" \\ path","#,
            r#""process_name":"ngrok.exe","process_path":"C:\\x\\ngrok.exe","process_id":4242,"#,
            r#""original_file_name":"ngrok.exe","args_truncated":true}"#,
            "\n"
        )
    );
}

#[test]
fn messages_fill_unknown_values_with_unknown() {
    let mut e = exec("/usr/local/bin/ngrok", "ngrok tcp 22");
    if let Event::Process(p) = &mut e {
        p.parent = Process::default();
        p.process.user = Default::default();
    }
    let engine = builtin_engine();
    let mut alerts: Vec<Alert<'_>> = Vec::new();
    engine.evaluate(&e, &mut alerts);
    assert_eq!(
        alerts[0].message,
        "A reverse proxy was identified spawning from unknown - ngrok on endpoint web1 by user unknown."
    );
    let mut q = dns_query("x.ngrok.io");
    if let Event::Dns(d) = &mut q {
        d.src = None;
    }
    alerts.clear();
    engine.evaluate(&q, &mut alerts);
    assert_eq!(
        alerts[0].message,
        "An endpoint, web1, is beaconing out to the reverse proxy service of Ngrok.",
        "without a client address, the endpoint is the host"
    );
}

#[test]
fn times_before_the_epoch_are_clamped() {
    let mut e = exec("/bin/true", "true");
    if let Event::Process(p) = &mut e {
        p.time = std::time::UNIX_EPOCH - std::time::Duration::from_secs(10);
    }
    assert!(event_line(&e).starts_with(r#"{"time":"1970-01-01T00:00:00.000000Z","#));
}

struct Closed;

impl Write for Closed {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Counts flushes and checks each one ends a line.
#[derive(Default)]
struct Lines {
    data: Vec<u8>,
    flushes: usize,
}

impl Write for Lines {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.data.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        assert_eq!(self.data.last(), Some(&b'\n'));
        self.flushes += 1;
        Ok(())
    }
}

#[test]
fn write_errors_are_returned_and_lines_flushed() {
    let e = exec("/bin/true", "true");
    let err = Emitter::new(Closed).write_event(&e).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    let mut em = Emitter::new(Lines::default());
    em.write_event(&e).unwrap();
    em.write_event(&dns_query("a.b")).unwrap();
    let out = em.into_inner();
    assert_eq!(out.flushes, 2);
    let text = String::from_utf8(out.data).unwrap();
    assert_eq!(text.lines().count(), 2);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["vendor_product"], "tunnelwatch");
    }
}
