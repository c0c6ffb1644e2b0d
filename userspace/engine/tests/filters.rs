//! Sigma filters: exclusions applied across rules, with pySigma's semantics (the filter's
//! condition is ANDed to each covered rule's), loaded with the rules and refused with their
//! lines when wrong.

mod common;

use common::*;
use tunnelwatch_engine::{
    allowlist::Allowlist,
    builtin,
    engine::Engine,
    event::{Event, Platform},
    ruleset::{LoadOptions, RuleSet},
};

/// The shipped rules plus `filters`.
fn engine_with(filters: &str) -> Engine {
    let mut sources: Vec<(&str, &str)> = builtin::SOURCES.to_vec();
    sources.push(("filters/f.yml", filters));
    let loaded =
        RuleSet::from_sources(sources, LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    Engine::new(loaded.rules, Allowlist::default())
}

fn ngrok_by(user: &str, parent: &str) -> Event {
    let mut e = exec("/usr/local/bin/ngrok", "ngrok http 8080");
    if let Event::Process(p) = &mut e {
        p.process.user = user.into();
        p.parent = process(10, &format!("/usr/bin/{parent}"), parent);
    }
    e
}

const SANCTIONED: &str = r#"
title: Our CI's ngrok
id: 7d0b0c1e-5c1f-4a57-9d3c-4b0f3c0f6a11
description: The CI runners expose preview builds through ngrok.
logsource:
  category: process_creation
  product: linux
filter:
  rules:
    - bc84d574-708c-467d-b78a-4c1e20171f97
    - Ngrok Agent Tunnel Commands Not Covered by the Seed Rules
  selection:
    User: ci-runner
    ParentImage|endswith: /jenkins
  condition: not selection
"#;

#[test]
fn an_exclusion_suppresses_only_what_it_describes() {
    let engine = engine_with(SANCTIONED);
    assert!(fired(&engine, &ngrok_by("ci-runner", "jenkins")).is_empty());
    assert!(fired(&engine, &ngrok_by("CI-RUNNER", "jenkins")).is_empty());
    assert_eq!(engine.filtered(), 2);
    assert_eq!(fired(&engine, &ngrok_by("ci-runner", "bash")), [LINUX]);
    assert_eq!(fired(&engine, &ngrok_by("alice", "jenkins")), [LINUX]);
    // A rule named by title is covered too.
    let mut tls = ngrok_by("ci-runner", "jenkins");
    if let Event::Process(p) = &mut tls {
        p.process.command_line = "ngrok tls 443".into();
    }
    assert!(fired(&engine, &tls).is_empty());
    // Rules it does not name are not: the renamed-ngrok rule still fires.
    let mut renamed = ngrok_by("ci-runner", "jenkins");
    if let Event::Process(p) = &mut renamed {
        p.process.name = "kworker".into();
        p.process.path = "/tmp/kworker".into();
        p.process.original_file_name = "ngrok".into();
    }
    assert_eq!(
        fired(&engine, &renamed),
        ["fe647c01-2e4b-4f5a-8611-6e0fab46fa0a"]
    );
    // Nor does it apply on Windows (its product) nor to DNS rules (its category).
    let mut win = on(Platform::Windows, ngrok_by("ci-runner", "jenkins"));
    if let Event::Process(p) = &mut win {
        p.process = process(1, r"C:\ci\ngrok.exe", "ngrok.exe http 80");
        p.process.user = "ci-runner".into();
    }
    assert_eq!(fired(&engine, &win), [WINDOWS]);
    assert_eq!(fired(&engine, &dns_query("a.ngrok.io")), [NETWORK]);
}

#[test]
fn any_covers_every_rule_of_the_category_and_dns_filters_cover_dns_rules() {
    let engine = engine_with(
        r#"
title: Sanctioned tunnel domain
logsource:
  category: dns_query
filter:
  rules: any
  sel_ours:
    QueryName|endswith: .sanctioned.ngrok-free.app
  sel_theirs:
    QueryName|endswith: .partner.trycloudflare.com
  condition: not 1 of sel_*
"#,
    );
    assert!(fired(&engine, &dns_query("x.sanctioned.ngrok-free.app")).is_empty());
    assert!(fired(&engine, &dns_query("x.partner.trycloudflare.com")).is_empty());
    assert_eq!(fired(&engine, &dns_query("x.ngrok-free.app")).len(), 1);
    assert_eq!(fired(&engine, &dns_query("x.ngrok.io")), [NETWORK]);
    // Process rules are another category.
    assert_eq!(fired(&engine, &ngrok_by("alice", "bash")), [LINUX]);
}

#[test]
fn a_positive_condition_keeps_only_what_it_selects() {
    // pySigma ANDs the filter's condition to the rule's: `condition: selection` restricts the
    // rule to the selection (here: alert only for production hosts).
    let engine = engine_with(
        "title: Production only\nlogsource:\n  category: process_creation\nfilter:\n  rules: []\n  selection:\n    dest|startswith: prod-\n  condition: selection\n",
    );
    assert!(fired(&engine, &ngrok_by("alice", "bash")).is_empty());
    let mut prod = ngrok_by("alice", "bash");
    if let Event::Process(p) = &mut prod {
        p.host = "prod-web1".into();
    }
    assert_eq!(fired(&engine, &prod), [LINUX]);
}

#[test]
fn filters_are_listed_and_unknown_references_noticed() {
    let mut sources: Vec<(&str, &str)> = builtin::SOURCES.to_vec();
    let f = SANCTIONED.replace(
        "    - bc84d574-708c-467d-b78a-4c1e20171f97\n",
        "    - bc84d574-708c-467d-b78a-4c1e20171f97\n    - no-such-rule\n",
    );
    sources.push(("filters/f.yml", &f));
    let loaded = RuleSet::from_sources(sources, LoadOptions::default()).unwrap();
    let filters = loaded.rules.filters();
    assert_eq!(filters.len(), 1);
    assert_eq!(filters[0].title, "Our CI's ngrok");
    assert_eq!(
        (filters[0].file.as_str(), filters[0].line),
        ("filters/f.yml", 2)
    );
    assert_eq!(filters[0].rules.len(), 3);
    assert!(filters[0].covers(loaded.rules.get(LINUX).unwrap()));
    assert!(!filters[0].covers(loaded.rules.get(NETWORK).unwrap()));
    assert_eq!(
        loaded
            .notices
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
        ["filters/f.yml:2: filter 'Our CI's ngrok' names rule 'no-such-rule', which is not loaded"]
    );
    // Filters are not rules.
    assert_eq!(loaded.rules.len(), builtin::SOURCES.len());
}

#[test]
fn filter_refusals_name_file_line_and_reason() {
    let cases: &[(&str, &str)] = &[
        (
            "title: F\nlogsource: {category: process_creation}\nfilter:\n  selection: {User: x}\n  condition: not selection\n",
            "f.yml:4: filter has no 'rules' (rule ids or titles, or 'any' for every rule)",
        ),
        (
            "title: F\nlogsource: {product: windows}\nfilter:\n  rules: any\n  selection: {User: x}\n  condition: not selection\n",
            "f.yml:2: logsource has no 'category' (supported: process_creation, dns_query, dns, network_connection)",
        ),
        (
            "title: F\nlogsource: {category: dns_query}\nfilter:\n  rules: any\n  selection: {User: x}\n",
            "f.yml:4: filter has no 'condition'",
        ),
        (
            "title: F\nlogsource: {category: dns_query}\nfilter:\n  rules: any\n  selection: {CommandLine: x}\n  condition: not selection\n",
            "f.yml:5: unknown field 'CommandLine' for logsource category 'dns_query'",
        ),
        (
            "title: F\nlogsource: {category: dns_query}\nfilter:\n  rules: any\n  condition: not selection\n",
            "f.yml:4: filter has no selection",
        ),
        (
            "title: F\nlogsource: {category: dns_query}\nfilter:\n  rules: {a: b}\n  s: {query: x}\n  condition: not s\n",
            "f.yml:4: filter.rules must be a list of rule ids or titles, or 'any'",
        ),
        (
            "title: F\nlogsource: {category: dns_query}\ndetection: {s: {query: x}, condition: s}\nfilter:\n  rules: any\n  s: {query: x}\n  condition: not s\n",
            "f.yml:3: a document with 'filter' is a Sigma filter and cannot have a 'detection'",
        ),
        (
            "title: F\ntaxonomy: ecs\nlogsource: {category: dns_query}\nfilter:\n  rules: any\n  s: {query: x}\n  condition: not s\n",
            "f.yml:2: taxonomy 'ecs' is not supported (only the default, sigma)",
        ),
        (
            "logsource: {category: dns_query}\nfilter:\n  rules: any\n  s: {query: x}\n  condition: not s\n",
            "f.yml:1: filter has no 'title'",
        ),
        (
            "title: F\nid: a\nlogsource: {category: dns_query}\nfilter: {rules: any, s: {query: x}, condition: not s}\n---\ntitle: G\nid: A\nlogsource: {category: dns_query}\nfilter: {rules: any, s: {query: x}, condition: not s}\n",
            "f.yml:6: duplicate filter id 'A' (first used in f.yml:1)",
        ),
    ];
    for (yaml, want) in cases {
        let err = RuleSet::from_str("f.yml", yaml).unwrap_err().to_string();
        assert_eq!(err, *want, "{yaml}");
    }
}

#[test]
fn a_filter_that_excludes_every_event_of_its_rules_is_a_notice() {
    let load = |text: &str| {
        let mut sources: Vec<(&str, &str)> = builtin::SOURCES.to_vec();
        sources.push(("filters/f.yml", text));
        RuleSet::from_sources(sources, LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
    };
    let filter = |selection: &str, condition: &str| {
        format!(
            "title: everything\nlogsource: {{category: process_creation}}\nfilter:\n  rules: any\n  selection:\n{selection}\n  condition: {condition}\n"
        )
    };
    let notices = |text: &str| -> Vec<String> {
        load(text)
            .notices
            .iter()
            .map(|n| n.to_string())
            .filter(|n| n.contains("excludes every event"))
            .collect()
    };
    for (selection, condition) in [
        ("    Image: '*'", "not selection"),
        ("    User|exists: true", "not selection"),
        ("    - Image: '*'\n    - User: root", "not selection"),
        (
            "    Image: '*'\n    User: '*'",
            "not selection and not other",
        ),
    ] {
        let text = filter(&format!("{selection}\n  other:\n    User: x"), condition);
        let got = notices(&text);
        assert_eq!(got.len(), 1, "{selection} / {condition}: {got:?}");
        assert!(
            got[0].starts_with("filters/f.yml:1: filter 'everything' excludes every event of the"),
            "{got:?}"
        );
    }
    // Conditions that depend on the event: no notice.
    for (selection, condition) in [
        ("    Image: '*'", "selection"),
        ("    Image: '*/ngrok'", "not selection"),
        ("    Image: '*'\n    User: ci", "not selection"),
        ("    Image: '*'", "not selection or other"),
    ] {
        let text = filter(&format!("{selection}\n  other:\n    User: x"), condition);
        assert!(notices(&text).is_empty(), "{selection} / {condition}");
    }
}
