//! Container context on lines (exec, DNS and connection): the container and namespace fields
//! written after the body, read back by `replay`, named by allowlists, Sigma rules, filters
//! and messages; host processes carry none.

mod common;

use std::sync::Arc;

use common::*;
use tunnelwatch_engine::{
    allowlist::Allowlist,
    builtin,
    config::Config,
    emit::Emitter,
    engine::Engine,
    event::{Container, Event, Namespaces},
    replay::parse_line,
    ruleset::{LoadOptions, RuleSet},
};

const ID: &str = "93b6694fe4836db7e01d49fa230e91aa4cd46503e6ddf216a1b36a8f30b7bcb7";

fn container(image: &str, pod_namespace: &str) -> Arc<Container> {
    Arc::new(Container {
        id: ID.into(),
        runtime: "podman".into(),
        name: "web".into(),
        image: image.into(),
        pod_namespace: pod_namespace.into(),
        ..Container::default()
    })
}

/// `e` with its process in `c`, in namespaces of its own.
fn inside(mut e: Event, c: Arc<Container>) -> Event {
    let p = e.process_mut();
    p.container = Some(c);
    p.namespaces = Some(Namespaces {
        pid: 4026532301,
        mnt: 4026532299,
        net: 4026532304,
    });
    e
}

/// The processes of `a` and `b` run in the same container and namespaces (a line keeps the
/// time to the microsecond and not the parent's user: `replay.rs`).
fn assert_same_place(a: &Event, b: &Event) {
    let (a, b) = (a.process().unwrap(), b.process().unwrap());
    assert_eq!((&a.container, a.namespaces), (&b.container, b.namespaces));
}

fn lines(engine: &Engine, event: &Event) -> Vec<String> {
    let mut alerts = Vec::new();
    engine.evaluate(event, &mut alerts);
    let mut em = Emitter::new(Vec::new());
    if alerts.is_empty() {
        em.write_event(event).unwrap();
    }
    for a in &alerts {
        em.write_alert(event, a).unwrap();
    }
    String::from_utf8(em.into_inner())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_container_alert_names_the_container_after_the_body_and_reads_back() {
    let e = inside(
        exec("/usr/local/bin/ngrok", "/usr/local/bin/ngrok http 8080"),
        container("localhost/tunnel:1", ""),
    );
    let line = lines(&builtin_engine(), &e).remove(0);
    assert!(
        line.ends_with(&format!(
            r#""parent_process_id":4000,"container_id":"{ID}","container_runtime":"podman","container_name":"web","container_image":"localhost/tunnel:1","pid_ns":4026532301,"mnt_ns":4026532299,"net_ns":4026532304}}"#
        )),
        "{line}"
    );
    let back = parse_line(&line).unwrap().event.unwrap();
    assert_same_place(&back, &e);
    // Byte for byte again.
    assert_eq!(lines(&builtin_engine(), &back), [line]);
}

#[test]
fn dns_lines_carry_the_container_of_their_process() {
    let e = inside(dns_query("abc.ngrok.io"), container("img", "prod"));
    let line = lines(&builtin_engine(), &e).remove(0);
    assert!(
        line.contains(r#""parent_process_path":"/usr/bin/bash","container_id":""#)
            && line.contains(r#""pod_namespace":"prod""#),
        "{line}"
    );
    assert_same_place(&parse_line(&line).unwrap().event.unwrap(), &e);
}

#[test]
fn host_processes_carry_no_container_field() {
    let line = lines(
        &builtin_engine(),
        &exec("/usr/local/bin/ngrok", "ngrok http 80"),
    )
    .remove(0);
    for key in ["container", "pod_", "_ns\""] {
        assert!(!line.contains(key), "{line}");
    }
    // Namespaces alone (an `unshare`d process): marked, without a container.
    let mut e = dns_query("abc.ngrok.io");
    e.process_mut().namespaces = Some(Namespaces {
        pid: 0,
        mnt: 4026532299,
        net: 0,
    });
    let line = lines(&builtin_engine(), &e).remove(0);
    assert!(
        line.ends_with(r#""parent_process_path":"/usr/bin/bash","mnt_ns":4026532299}"#),
        "{line}"
    );
    assert_same_place(&parse_line(&line).unwrap().event.unwrap(), &e);
}

#[test]
fn an_allowlist_entry_can_sanction_one_image() {
    let config: Config = Config::from_str(
        "tw.yml",
        "allowlist:\n  - container_image: ['registry.example/preview-*']\n    pod_namespace: [ci]\n",
    )
    .unwrap();
    let engine = Engine::new(builtin::rules().unwrap(), config.allowlist);
    let ngrok = || exec("/usr/local/bin/ngrok", "ngrok http 8080");
    let sanctioned = inside(ngrok(), container("registry.example/preview-web:3", "ci"));
    assert!(fired(&engine, &sanctioned).is_empty());
    assert_eq!(engine.suppressed(), 1);
    // Another namespace, another image, or the host: alerts.
    let other_ns = inside(ngrok(), container("registry.example/preview-web:3", "prod"));
    let other_image = inside(ngrok(), container("docker.io/library/alpine", "ci"));
    assert_eq!(fired(&engine, &other_ns), [LINUX]);
    assert_eq!(fired(&engine, &other_image), [LINUX]);
    assert_eq!(fired(&engine, &ngrok()), [LINUX]);
    let refused = Config::<()>::from_str("tw.yml", "allowlist:\n  - container_tag: [x]\n")
        .unwrap_err()
        .to_string();
    assert!(refused.contains("unknown key 'container_tag'"), "{refused}");
}

#[test]
fn sigma_rules_and_filters_name_container_fields() {
    let rule = r#"
title: A tunnel agent in a production pod
id: 6a3c1d7e-2b4f-4c8a-9e1d-0f5b7a9c3e21
logsource: {category: process_creation, product: linux}
detection:
  selection:
    process_name: ngrok
    pod_namespace|startswith: prod
  condition: selection
level: high
tunnelwatch:
  message: "ngrok in container $container_name$ ($container_image$) of pod namespace $pod_namespace$"
"#;
    let engine = engine_of(rule);
    let e = inside(
        exec("/usr/local/bin/ngrok", "ngrok http 80"),
        container("img:1", "prod-eu"),
    );
    let mut alerts = Vec::new();
    engine.evaluate(&e, &mut alerts);
    assert_eq!(
        alerts
            .iter()
            .map(|a| a.message.as_str())
            .collect::<Vec<_>>(),
        ["ngrok in container web (img:1) of pod namespace prod-eu"]
    );
    let host = exec("/usr/local/bin/ngrok", "ngrok http 80");
    assert!(fired(&engine, &host).is_empty());

    let filter = r#"
title: Sanctioned tunnel image
id: 0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6
logsource: {category: process_creation, product: linux}
filter:
  rules: [bc84d574-708c-467d-b78a-4c1e20171f97]
  selection:
    container_image|startswith: registry.example/tunnel
  condition: not selection
"#;
    let mut sources: Vec<(&str, &str)> = builtin::SOURCES.to_vec();
    sources.push(("filters/f.yml", filter));
    let loaded = RuleSet::from_sources(sources, LoadOptions::default()).unwrap();
    let engine = Engine::new(loaded.rules, Allowlist::default());
    let sanctioned = inside(
        exec("/usr/local/bin/ngrok", "ngrok http 80"),
        container("registry.example/tunnel:2", ""),
    );
    assert!(fired(&engine, &sanctioned).is_empty());
    assert_eq!(fired(&engine, &host), [LINUX]);
}

#[test]
fn connections_carry_the_container_and_allowlists_name_it() {
    const ENDPOINT: &str = "b9b52559-80a1-4ed1-ad6b-cc147ff65fbc";
    let agent = || connection("127.0.0.1:443", "connect.ngrok-agent.com");
    let e = inside(agent(), container("registry.example/preview-web:3", "ci"));
    let line = lines(&builtin_engine(), &e).remove(0);
    assert!(
        line.contains(r#""rule_id":"b9b52559-80a1-4ed1-ad6b-cc147ff65fbc""#)
            && line.contains(&format!(r#""container_id":"{ID}""#))
            && line.contains(r#""container_image":"registry.example/preview-web:3""#),
        "{line}"
    );
    assert_same_place(&parse_line(&line).unwrap().event.unwrap(), &e);
    // The image's allowlist entry silences its connection alerts, and only its.
    let config: Config = Config::from_str(
        "tw.yml",
        "allowlist:\n  - container_image: ['registry.example/preview-*']\n",
    )
    .unwrap();
    let engine = Engine::new(builtin::rules().unwrap(), config.allowlist);
    assert!(fired(&engine, &e).is_empty());
    let elsewhere = inside(agent(), container("docker.io/library/alpine", "ci"));
    assert_eq!(fired(&engine, &elsewhere), [ENDPOINT]);
    assert_eq!(fired(&engine, &agent()), [ENDPOINT]);
}
