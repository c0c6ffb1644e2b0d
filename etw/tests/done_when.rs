//! Issue 4's "done when": a process start of `C:\Users\a\Downloads\ngrok.exe http 8080` and
//! DNS-Client queries, as ETW reports them, go through the mapping into the real engine (the
//! shipped rules) and come out as the exact JSON lines; and those lines have the shape the
//! Linux sensor prints for the same activity.

mod common;

use common::*;
use serde_json::Value;
use tunnelwatch_engine::{
    alert::Alert,
    builtin,
    emit::Emitter,
    engine::Engine,
    event::{DnsEvent, DnsMessageType, Event, Platform, Process, ProcessEvent},
};
use tunnelwatch_etw::fields::filetime_to_system_time;

const WINDOWS_RULE: &str = "e2549f2c-0aef-408a-b0c1-e0f270623436";
const LINUX_RULE: &str = "bc84d574-708c-467d-b78a-4c1e20171f97";
const NETWORK_RULE: &str = "5790a766-53b8-40d3-a696-3547b978fcf0";

/// The Windows seed's alert for ngrok.exe started from cmd.exe by CONTOSO\a.
const NGROK_ALERT: &str = concat!(
    r#"{"time":"2026-11-23T01:02:03.123456Z","host":"DESKTOP-1","kind":"alert","#,
    r#""rule_id":"e2549f2c-0aef-408a-b0c1-e0f270623436","rule_name":"Windows Ngrok Reverse Proxy Usage","#,
    r#""rule_type":"Anomaly","severity":"medium","mitre_technique_id":["T1572","T1090","T1102"],"#,
    r#""risk_score":50,"message":"A reverse proxy was identified spawning from cmd.exe - ngrok.exe on endpoint DESKTOP-1 by user CONTOSO\\a.","#,
    r#""falsepositives":["False positives will be present based on organizations that allow the use of Ngrok. Filter or monitor as needed."],"#,
    r#""datamodel":"Endpoint.Processes","vendor_product":"tunnelwatch","#,
    r#""dest":"DESKTOP-1","user":"CONTOSO\\a","user_id":"S-1-5-21-1004336348-1177238915-682003330-1001","#,
    r#""process":"C:\\Users\\a\\Downloads\\ngrok.exe http 8080","process_name":"ngrok.exe","#,
    r#""process_path":"C:\\Users\\a\\Downloads\\ngrok.exe","process_id":5832,"#,
    r#""parent_process":"\"C:\\Windows\\system32\\cmd.exe\"","parent_process_name":"cmd.exe","#,
    r#""parent_process_path":"C:\\Windows\\system32\\cmd.exe","parent_process_id":4000,"#,
    r#""original_file_name":"ngrok.exe"}"#
);

/// The network seed's alert for ngrok.exe's query for x.ngrok.io.
const NGROK_IO_ALERT: &str = concat!(
    r#"{"time":"2026-11-23T01:02:05.123456Z","host":"DESKTOP-1","kind":"alert","#,
    r#""rule_id":"5790a766-53b8-40d3-a696-3547b978fcf0","rule_name":"Ngrok Reverse Proxy on Network","#,
    r#""rule_type":"Anomaly","severity":"medium","mitre_technique_id":["T1572","T1090","T1102"],"#,
    r#""risk_score":50,"message":"An endpoint, DESKTOP-1, is beaconing out to the reverse proxy service of Ngrok.","#,
    r#""falsepositives":["False positives will be present based on organizations that allow the use of Ngrok. Filter or monitor as needed."],"#,
    r#""datamodel":"Network_Resolution","vendor_product":"tunnelwatch","#,
    r#""query":"x.ngrok.io","query_type":"A","message_type":"Query","transaction_id":0,"#,
    r#""process_id":5832,"process_name":"ngrok.exe","process_path":"C:\\Users\\a\\Downloads\\ngrok.exe","#,
    r#""process":"C:\\Users\\a\\Downloads\\ngrok.exe http 8080","user":"CONTOSO\\a","#,
    r#""user_id":"S-1-5-21-1004336348-1177238915-682003330-1001","#,
    r#""parent_process_id":4000,"parent_process_name":"cmd.exe","parent_process_path":"C:\\Windows\\system32\\cmd.exe"}"#
);

/// The `--all-events` line of ngrok.exe's query for x.ngrok-free.app (no built-in rule
/// matches it: the network seed lists *.ngrok.com, *.ngrok.io, ngrok.*.tunnel.com and
/// korgn.*.lennut.com only).
const NGROK_FREE_EVENT: &str = concat!(
    r#"{"time":"2026-11-23T01:02:04.123456Z","host":"DESKTOP-1","kind":"event","#,
    r#""datamodel":"Network_Resolution","vendor_product":"tunnelwatch","#,
    r#""query":"x.ngrok-free.app","query_type":"A","message_type":"Query","transaction_id":0,"#,
    r#""process_id":5832,"process_name":"ngrok.exe","process_path":"C:\\Users\\a\\Downloads\\ngrok.exe","#,
    r#""process":"C:\\Users\\a\\Downloads\\ngrok.exe http 8080","user":"CONTOSO\\a","#,
    r#""user_id":"S-1-5-21-1004336348-1177238915-682003330-1001","#,
    r#""parent_process_id":4000,"parent_process_name":"cmd.exe","parent_process_path":"C:\\Windows\\system32\\cmd.exe"}"#
);

/// The line of `rule` among `lines` (other shipped rules may fire on the same event too).
fn line_of<'a>(lines: &'a [String], rule: &str) -> &'a str {
    let found: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(&format!(r#""rule_id":"{rule}""#)))
        .collect();
    assert_eq!(found.len(), 1, "one line of {rule} expected in {lines:#?}");
    found[0]
}

/// ngrok's start as both providers report it: Kernel-Process's ProcessStart (full NT path)
/// and the kernel's Process Start (command line, user), in the order they usually arrive.
fn ngrok_start() -> Vec<tunnelwatch_etw::fields::RawEvent> {
    vec![
        kernel_process_start(
            5832,
            4000,
            r"\Device\HarddiskVolume3\Users\a\Downloads\ngrok.exe",
            T0,
        ),
        kernel_trace(
            1,
            5832,
            4000,
            USER_SID,
            "ngrok.exe",
            r"C:\Users\a\Downloads\ngrok.exe http 8080",
            T0,
        ),
    ]
}

#[test]
fn ngrok_http_8080_raises_the_windows_seed_alert() {
    let mut p = pipeline(false);
    for e in rundown() {
        p.handle(&e).unwrap();
    }
    assert!(take_lines(&mut p).is_empty(), "the rundown prints nothing");
    for e in ngrok_start() {
        p.handle(&e).unwrap();
    }
    let lines = take_lines(&mut p);
    assert_eq!(line_of(&lines, WINDOWS_RULE), NGROK_ALERT);
    assert!(lines.iter().all(|l| l.contains(r#""kind":"alert""#)));
    let v: Value = serde_json::from_str(NGROK_ALERT).unwrap();
    assert_eq!(v["time"], T0_TEXT);
}

#[test]
fn the_alert_is_the_same_whichever_provider_reports_first() {
    // The kernel session's Start before the user session's ProcessStart: the path comes from
    // the command line (an absolute path to ngrok.exe), and the late event confirms it.
    let mut p = pipeline(false);
    for e in rundown() {
        p.handle(&e).unwrap();
    }
    let mut start = ngrok_start();
    start.reverse();
    for e in &start {
        p.handle(e).unwrap();
    }
    assert_eq!(line_of(&take_lines(&mut p), WINDOWS_RULE), NGROK_ALERT);
}

#[test]
fn dns_queries_of_ngrok_map_and_alert_with_the_network_rule() {
    let mut p = pipeline(true);
    for e in rundown().into_iter().chain(ngrok_start()) {
        p.handle(&e).unwrap();
    }
    assert_eq!(line_of(&take_lines(&mut p), WINDOWS_RULE), NGROK_ALERT);

    // x.ngrok-free.app: mapped to the right DnsEvent, but the network seed does not list it.
    let mut events = Vec::new();
    p.enricher
        .handle(&dns_3006(5832, "x.ngrok-free.app", 1, at(1)), &mut events);
    let [Event::Dns(d)] = events.as_slice() else {
        panic!("one DNS event expected: {events:?}");
    };
    assert_eq!(d.query, "x.ngrok-free.app");
    assert_eq!(d.query_type, "A");
    assert_eq!(d.message_type, DnsMessageType::Query);
    assert_eq!(d.platform, Platform::Windows);
    let proc_ = d.process.as_ref().unwrap();
    assert_eq!(
        (proc_.pid, &*proc_.name, &*proc_.path),
        (5832, "ngrok.exe", r"C:\Users\a\Downloads\ngrok.exe")
    );
    assert_eq!(&*d.parent.as_ref().unwrap().name, "cmd.exe");
    let mut em = Emitter::new(Vec::new());
    em.write_event(&events[0]).unwrap();
    assert_eq!(
        String::from_utf8(em.into_inner()).unwrap(),
        format!("{NGROK_FREE_EVENT}\n")
    );
    let mut alerts = Vec::new();
    p.engine().evaluate(&events[0], &mut alerts);
    assert!(
        alerts
            .iter()
            .all(|a| a.rule.id.as_deref() != Some(NETWORK_RULE)),
        "the network seed lists *.ngrok.com, *.ngrok.io, ngrok.*.tunnel.com, korgn.*.lennut.com only"
    );

    // x.ngrok.io: the network seed fires.
    p.handle(&dns_3006(5832, "x.ngrok.io", 1, at(2))).unwrap();
    assert_eq!(line_of(&take_lines(&mut p), NETWORK_RULE), NGROK_IO_ALERT);

    // Its completion is a response: printed as an event, no second alert.
    p.handle(&dns_3008(
        5832,
        "x.ngrok.io",
        1,
        0,
        "type: 5 tunnel.us.ngrok.com;::ffff:3.134.125.175;",
        at(2),
    ))
    .unwrap();
    let lines = take_lines(&mut p);
    assert_eq!(lines.len(), 1);
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["kind"], "event");
    assert_eq!(v["message_type"], "Response");
    assert_eq!(v["reply_code"], "NoError");
    assert_eq!(v["reply_code_id"], 0);
    assert_eq!(
        v["answer"],
        serde_json::json!(["tunnel.us.ngrok.com", "3.134.125.175"])
    );
    assert_eq!(v["answer_count"], 2);
    assert_eq!(v["process_name"], "ngrok.exe");
}

// ---- The Linux sensor's lines for the same activity -------------------------------------

/// What the Linux sensor hands the engine for `/usr/local/bin/ngrok http 8080` started from
/// bash by alice (see userspace/src/linux/enrich.rs), and for that process's DNS query: the
/// same engine and emitter then print its lines.
fn linux_lines() -> (Value, Value) {
    let engine = Engine::new(builtin::rules().unwrap(), Default::default());
    let proc_ = |pid: u32, path: &str, cmd: &str| Process {
        pid,
        name: path.rsplit('/').next().unwrap().into(),
        path: path.into(),
        command_line: cmd.into(),
        user: "alice".into(),
        user_id: "1000".into(),
        original_file_name: Default::default(),
    };
    let ngrok = proc_(
        5832,
        "/usr/local/bin/ngrok",
        "/usr/local/bin/ngrok http 8080",
    );
    let bash = proc_(4000, "/usr/bin/bash", "-bash");
    let exec = Event::Process(ProcessEvent {
        time: filetime_to_system_time(T0),
        host: "web1".into(),
        platform: Platform::Linux,
        process: ngrok.clone(),
        parent: bash.clone(),
        args_truncated: false,
        fileless: "".into(),
        loader: "".into(),
    });
    let query = Event::Dns(DnsEvent {
        time: filetime_to_system_time(T0),
        host: "web1".into(),
        platform: Platform::Linux,
        message_type: DnsMessageType::Query,
        query: "x.ngrok.io".into(),
        query_type: "A".into(),
        transaction_id: 0x1234,
        reply_code: String::new(),
        reply_code_id: None,
        answers: Vec::new(),
        src: Some("10.0.0.5:40000".parse().unwrap()),
        dest: Some("10.0.0.1:53".parse().unwrap()),
        transport: "udp",
        process: Some(ngrok),
        parent: Some(bash),
        inferred_from_response: false,
    });
    let line = |e: &Event, rule: &str| {
        let mut alerts: Vec<Alert<'_>> = Vec::new();
        engine.evaluate(e, &mut alerts);
        let alert = alerts
            .iter()
            .find(|a| a.rule.id.as_deref() == Some(rule))
            .expect("the seed fires");
        let mut em = Emitter::new(Vec::new());
        em.write_alert(e, alert).unwrap();
        serde_json::from_slice::<Value>(&em.into_inner()).unwrap()
    };
    (line(&exec, LINUX_RULE), line(&query, NETWORK_RULE))
}

/// The keys of a line, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// The message with the event's values put back as `$field$`.
fn message_shape(v: &Value, fields: &[&str]) -> String {
    let mut m = v["message"].as_str().unwrap().to_owned();
    for f in fields {
        let value = match &v[*f] {
            Value::String(s) => s.clone(),
            Value::Null => "unknown".into(),
            other => other.to_string(),
        };
        m = m.replacen(&value, &format!("${f}$"), 1);
    }
    m
}

#[test]
fn windows_lines_have_the_linux_lines_shape() {
    let (linux_exec, linux_query) = linux_lines();
    let win_exec: Value = serde_json::from_str(NGROK_ALERT).unwrap();
    let win_query: Value = serde_json::from_str(NGROK_IO_ALERT).unwrap();

    // Rule ids: the process seeds are per platform (Linux / Windows Ngrok Reverse Proxy
    // Usage), the network seed is the same rule.
    assert_eq!(linux_exec["rule_id"], LINUX_RULE);
    assert_eq!(win_exec["rule_id"], WINDOWS_RULE);
    assert_eq!(linux_query["rule_id"], NETWORK_RULE);
    assert_eq!(win_query["rule_id"], NETWORK_RULE);
    for k in [
        "kind",
        "rule_type",
        "severity",
        "mitre_technique_id",
        "risk_score",
        "datamodel",
        "vendor_product",
    ] {
        assert_eq!(linux_exec[k], win_exec[k], "{k}");
        assert_eq!(linux_query[k], win_query[k], "{k}");
    }

    // Keys (in the same order: one emitter writes both): the same, plus original_file_name
    // on Windows (from the PE version resource; the Linux line has it only for binaries it
    // can identify).
    let mut expected = keys(&linux_exec);
    expected.push("original_file_name".into());
    expected.sort();
    assert_eq!(keys(&win_exec), expected);
    // DNS: DNS-Client does not report the client and server addresses, ports or transport,
    // so src, src_port, dest, dest_port and transport are left out on Windows.
    let expected: Vec<String> = keys(&linux_query)
        .into_iter()
        .filter(|k| !["src", "src_port", "dest", "dest_port", "transport"].contains(&k.as_str()))
        .collect();
    assert_eq!(keys(&win_query), expected);

    // Messages: the same template filled from each line's fields.
    let process_fields = ["parent_process_name", "process_name", "dest", "user"];
    assert_eq!(
        message_shape(&linux_exec, &process_fields),
        message_shape(&win_exec, &process_fields)
    );
    assert_eq!(
        message_shape(&win_exec, &process_fields),
        "A reverse proxy was identified spawning from $parent_process_name$ - $process_name$ on endpoint $dest$ by user $user$."
    );
    // The network message names the endpoint: the client address on Linux; on Windows, with
    // no address reported, the host itself.
    let template = "An endpoint, $src$, is beaconing out to the reverse proxy service of Ngrok.";
    assert_eq!(message_shape(&linux_query, &["src"]), template);
    let host = win_query["host"].as_str().unwrap();
    assert_eq!(
        win_query["message"].as_str().unwrap(),
        template.replace("$src$", host)
    );
}
