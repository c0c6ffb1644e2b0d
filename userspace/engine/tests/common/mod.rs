//! Event builders and helpers shared by the integration tests.
#![allow(dead_code)]

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tunnelwatch_engine::{
    alert::Alert,
    allowlist::Allowlist,
    builtin,
    engine::Engine,
    event::{DnsEvent, DnsMessageType, Event, Platform, Process, ProcessEvent},
    ruleset::RuleSet,
};

/// 2026-11-23T01:02:03.123456Z
pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::new(1_795_395_723, 123_456_789)
}

/// A process with `path` and `command_line`; the name is the path's last component.
pub fn process(pid: u32, path: &str, command_line: &str) -> Process {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    Process {
        pid,
        name: name.into(),
        path: path.into(),
        command_line: command_line.into(),
        user: "alice".into(),
        user_id: "1000".into(),
        original_file_name: Default::default(),
    }
}

/// `path` started with `command_line` on a Linux host `web1`, from a bash shell.
pub fn exec(path: &str, command_line: &str) -> Event {
    exec_on(Platform::Linux, path, command_line)
}

/// A process start on `platform`.
pub fn exec_on(platform: Platform, path: &str, command_line: &str) -> Event {
    let parent = match platform {
        Platform::Linux => process(4000, "/usr/bin/bash", "bash"),
        Platform::Windows => process(
            4000,
            r"C:\Windows\System32\cmd.exe",
            r"C:\Windows\System32\cmd.exe",
        ),
    };
    Event::Process(ProcessEvent {
        time: t0(),
        host: Arc::from("web1"),
        platform,
        process: process(4242, path, command_line),
        parent,
        args_truncated: false,
        fileless: "".into(),
        loader: "".into(),
    })
}

/// A DNS query for `name` on Linux host `web1`, from curl.
pub fn dns_query(name: &str) -> Event {
    Event::Dns(DnsEvent {
        time: t0(),
        host: Arc::from("web1"),
        platform: Platform::Linux,
        message_type: DnsMessageType::Query,
        query: name.to_owned(),
        query_type: "A".into(),
        transaction_id: 0x1234,
        reply_code: String::new(),
        reply_code_id: None,
        answers: Vec::new(),
        src: Some("10.0.0.5:40000".parse().unwrap()),
        dest: Some("10.0.0.1:53".parse().unwrap()),
        transport: "udp",
        process: Some(process(5150, "/usr/bin/curl", "curl https://abc.ngrok.io")),
        parent: Some(process(4000, "/usr/bin/bash", "bash")),
        inferred_from_response: false,
    })
}

/// The response to [`dns_query`], with `answers` and response code `rcode`.
pub fn dns_response(name: &str, answers: &[&str], rcode: u16) -> Event {
    let Event::Dns(mut d) = dns_query(name) else {
        unreachable!()
    };
    d.message_type = DnsMessageType::Response;
    d.answers = answers.iter().map(|s| s.to_string()).collect();
    d.reply_code_id = Some(rcode);
    d.reply_code = match rcode {
        0 => "NoError",
        3 => "NXDomain",
        _ => "Other",
    }
    .into();
    std::mem::swap(&mut d.src, &mut d.dest);
    Event::Dns(d)
}

/// Same event on another platform.
pub fn on(platform: Platform, mut e: Event) -> Event {
    match &mut e {
        Event::Process(p) => p.platform = platform,
        Event::Dns(d) => d.platform = platform,
    }
    e
}

/// The shipped rules, no allowlist.
pub fn builtin_engine() -> Engine {
    Engine::new(builtin::rules().unwrap(), Allowlist::default())
}

/// Ids of the rules `engine` fires on `event`, in order.
pub fn fired(engine: &Engine, event: &Event) -> Vec<String> {
    let mut out: Vec<Alert<'_>> = Vec::new();
    engine.evaluate(event, &mut out);
    out.iter()
        .map(|a| a.rule.id.clone().unwrap_or_else(|| a.rule.title.clone()))
        .collect()
}

/// An engine of the rules in `yaml` (file name `rules/x.yml`), no allowlist.
pub fn engine_of(yaml: &str) -> Engine {
    Engine::new(
        RuleSet::from_str("rules/x.yml", yaml).unwrap_or_else(|e| panic!("{e}")),
        Allowlist::default(),
    )
}

pub const LINUX: &str = "bc84d574-708c-467d-b78a-4c1e20171f97";
pub const WINDOWS: &str = "e2549f2c-0aef-408a-b0c1-e0f270623436";
pub const NETWORK: &str = "5790a766-53b8-40d3-a696-3547b978fcf0";
