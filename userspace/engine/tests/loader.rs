//! Sigma loading: every supported modifier and condition form, DNS phases, and each refusal
//! with its exact `file:line: reason`.

mod common;

use common::*;
use tunnelwatch_engine::{
    event::{Event, Platform},
    rule::{DnsPhase, Level},
    ruleset::{LoadOptions, RuleSet},
};

/// Five lines; the detection's content starts on line 6.
fn proc_rule(detection: &str) -> String {
    format!(
        "title: T\nid: 11111111-1111-1111-1111-111111111111\nlogsource:\n  category: process_creation\ndetection:\n{detection}"
    )
}

/// Same for a DNS rule.
fn dns_rule(detection: &str) -> String {
    format!(
        "title: T\nid: 11111111-1111-1111-1111-111111111111\nlogsource:\n  category: dns_query\ndetection:\n{detection}"
    )
}

fn load_err(yaml: &str) -> String {
    RuleSet::from_str("rules/x.yml", yaml)
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

/// Whether a process rule with `detection` fires on `event`.
fn hits(detection: &str, event: &Event) -> bool {
    !fired(&engine_of(&proc_rule(detection)), event).is_empty()
}

fn cmd(command_line: &str) -> Event {
    exec("/usr/bin/tool", command_line)
}

#[test]
fn metadata_is_read() {
    let yaml = r#"title: Full
id: 22222222-2222-2222-2222-222222222222
status: experimental
description: d
references: [https://a, https://b]
author: me
date: '2024-01-02'
modified: '2024-02-03'
tags: [attack.command-and-control, attack.t1572, attack.t1059.001]
logsource: {product: linux, category: process_creation, service: auditd}
detection:
  sel: {process_name: x}
  condition: sel
falsepositives: [admins]
level: high
fields: [user]
related:
  - id: 33333333-3333-3333-3333-333333333333
    type: derived
license: MIT
custom_key: {anything: [goes]}
tunnelwatch:
  type: TTP
  impact: 80
  confidence: 50
"#;
    let set = RuleSet::from_str("rules/full.yml", yaml).unwrap();
    let r = &set.rules()[0];
    assert_eq!(r.title, "Full");
    assert_eq!(
        r.id.as_deref(),
        Some("22222222-2222-2222-2222-222222222222")
    );
    assert_eq!(r.status.as_deref(), Some("experimental"));
    assert_eq!(r.references, ["https://a", "https://b"]);
    assert_eq!(r.modified.as_deref(), Some("2024-02-03"));
    assert_eq!(r.logsource.service.as_deref(), Some("auditd"));
    assert_eq!(r.level, Some(Level::High));
    assert_eq!(r.related[0].kind, "derived");
    assert_eq!(r.mitre_technique_ids, ["T1572", "T1059.001"]);
    assert_eq!(r.analytic_type.as_deref(), Some("TTP"));
    // impact × confidence / 100.
    assert_eq!(r.risk_score, Some(40));
    // No message: the title.
    assert_eq!(r.message, "Full");
    assert_eq!(r.platforms, [Platform::Linux]);
    assert_eq!((r.file.as_str(), r.line), ("rules/full.yml", 1));
}

#[test]
fn risk_score_falls_back_to_the_level() {
    let set = RuleSet::from_str(
        "r.yml",
        &format!(
            "{}level: critical\n",
            proc_rule("  s: {User: x}\n  condition: s\n")
        ),
    )
    .unwrap();
    assert_eq!(set.rules()[0].risk_score, Some(100));
    let set = RuleSet::from_str("r.yml", &proc_rule("  s: {User: x}\n  condition: s\n")).unwrap();
    assert_eq!(set.rules()[0].risk_score, None);
}

#[test]
fn plain_values_are_case_insensitive_exact_matches_with_wildcards() {
    let d = "  s:\n    CommandLine: 'ngrok http *'\n  condition: s\n";
    assert!(hits(d, &cmd("ngrok http 80")));
    assert!(hits(d, &cmd("NGROK HTTP 80")));
    assert!(!hits(d, &cmd("x ngrok http 80")));
    let d = "  s:\n    CommandLine: 'a?c'\n  condition: s\n";
    assert!(hits(d, &cmd("abc")) && !hits(d, &cmd("abbc")));
    let d = "  s:\n    CommandLine: 'a\\*c'\n  condition: s\n";
    assert!(hits(d, &cmd("a*c")) && !hits(d, &cmd("abc")));
}

#[test]
fn contains_startswith_endswith() {
    let d = "  s:\n    CommandLine|contains: HTTP\n  condition: s\n";
    assert!(hits(d, &cmd("ngrok http 80")) && !hits(d, &cmd("ngrok tcp")));
    let d = "  s:\n    CommandLine|startswith: ngrok\n  condition: s\n";
    assert!(hits(d, &cmd("ngrok http")) && !hits(d, &cmd("/bin/ngrok http")));
    let d = "  s:\n    CommandLine|endswith: '8080'\n  condition: s\n";
    assert!(hits(d, &cmd("ngrok http 8080")) && !hits(d, &cmd("ngrok http 8080 x")));
    // Wildcards stay active under contains.
    let d = "  s:\n    CommandLine|contains: 'http*80'\n  condition: s\n";
    assert!(hits(d, &cmd("x http 8080")) && !hits(d, &cmd("x 80 http")));
}

#[test]
fn lists_are_or_and_all_makes_them_and() {
    let d = "  s:\n    CommandLine|contains: [http, tcp]\n  condition: s\n";
    assert!(hits(d, &cmd("ngrok tcp 22")) && !hits(d, &cmd("ngrok version")));
    let d = "  s:\n    CommandLine|contains|all: [http, '8080']\n  condition: s\n";
    assert!(hits(d, &cmd("ngrok http 8080")));
    assert!(!hits(d, &cmd("ngrok http 80")));
}

#[test]
fn re_is_case_sensitive_unless_i() {
    let d = "  s:\n    CommandLine|re: '^ngrok\\s+(http|tcp)\\b'\n  condition: s\n";
    assert!(hits(d, &cmd("ngrok  tcp 22")));
    assert!(!hits(d, &cmd("NGROK tcp 22")));
    let d = "  s:\n    CommandLine|re|i: '^ngrok\\s+(http|tcp)\\b'\n  condition: s\n";
    assert!(hits(d, &cmd("NGROK tcp 22")));
    let d = "  s:\n    CommandLine|re: '(?i)^ngrok'\n  condition: s\n";
    assert!(hits(d, &cmd("NGROK tcp 22")));
    let d = "  s:\n    CommandLine|re|all: ['http', '\\d{4}']\n  condition: s\n";
    assert!(hits(d, &cmd("http 8080")) && !hits(d, &cmd("http 80")));
}

#[test]
fn cased_is_case_sensitive() {
    let d = "  s:\n    CommandLine|cased|contains: Http\n  condition: s\n";
    assert!(hits(d, &cmd("x Http y")));
    assert!(!hits(d, &cmd("x http y")));
}

#[test]
fn exists_and_null() {
    let mut e = cmd("x");
    assert!(hits(
        "  s:\n    OriginalFileName|exists: false\n  condition: s\n",
        &e
    ));
    assert!(!hits(
        "  s:\n    OriginalFileName|exists: true\n  condition: s\n",
        &e
    ));
    assert!(hits(
        "  s:\n    OriginalFileName: null\n  condition: s\n",
        &e
    ));
    assert!(hits("  s:\n    OriginalFileName: ''\n  condition: s\n", &e));
    assert!(hits("  s:\n    User|exists: true\n  condition: s\n", &e));
    if let Event::Process(p) = &mut e {
        p.process.original_file_name = "ngrok.exe".into();
    }
    assert!(!hits(
        "  s:\n    OriginalFileName: null\n  condition: s\n",
        &e
    ));
    assert!(hits(
        "  s:\n    OriginalFileName: [null, ngrok.exe]\n  condition: s\n",
        &e
    ));
    // A missing field never matches a pattern, not even '*'.
    assert!(!hits(
        "  s:\n    ParentCommandLine|contains: x\n  condition: s\n",
        &cmd("x")
    ));
    let mut e = cmd("x");
    if let Event::Process(p) = &mut e {
        p.parent = Default::default();
    }
    assert!(!hits("  s:\n    ParentImage: '*'\n  condition: s\n", &e));
    assert!(hits("  s:\n    ParentImage: null\n  condition: s\n", &e));
}

#[test]
fn windash_accepts_every_dash() {
    let d = "  s:\n    CommandLine|windash|contains: ' -config '\n  condition: s\n";
    for c in [
        "x -config y",
        "x /config y",
        "x \u{2013}config y",
        "x \u{2014}config y",
        "x \u{2015}config y",
        "X /CONFIG Y",
    ] {
        assert!(hits(d, &cmd(c)), "{c}");
    }
    assert!(!hits(d, &cmd("x config y")));
    assert!(!hits(d, &cmd("x _config y")));
}

#[test]
fn numbers_and_booleans() {
    // Process ids are numbers; values may be integers or strings, wildcards allowed.
    assert!(hits(
        "  s:\n    ProcessId: 4242\n  condition: s\n",
        &cmd("x")
    ));
    assert!(hits(
        "  s:\n    process_id: '42*'\n  condition: s\n",
        &cmd("x")
    ));
    assert!(!hits(
        "  s:\n    ProcessId: 42\n  condition: s\n",
        &cmd("x")
    ));
    assert!(hits(
        "  s:\n    ParentProcessId: 4000\n  condition: s\n",
        &cmd("x")
    ));
    // An integer against a string field compares its text.
    assert!(hits("  s:\n    user_id: 1000\n  condition: s\n", &cmd("x")));
    assert!(hits(
        "  s:\n    CommandLine: true\n  condition: s\n",
        &cmd("TRUE")
    ));
}

#[test]
fn non_ascii_values_fold_case() {
    let d = "  s:\n    CommandLine|contains: 'ÄRGER'\n  condition: s\n";
    assert!(hits(d, &cmd("x ärger y")));
    assert!(!hits(d, &cmd("x arger y")));
    let d = "  s:\n    CommandLine|endswith: 'übel.exe'\n  condition: s\n";
    assert!(hits(d, &cmd("C:\\ÜBEL.EXE")));
}

#[test]
fn selections_as_lists_are_or() {
    let d = "  s:\n    - CommandLine|contains: http\n      User: alice\n    - CommandLine|contains: tcp\n  condition: s\n";
    assert!(hits(d, &cmd("ngrok http")));
    assert!(hits(d, &cmd("ngrok tcp")));
    assert!(!hits(d, &cmd("ngrok version")));
    let mut e = cmd("ngrok http");
    if let Event::Process(p) = &mut e {
        p.process.user = "bob".into();
    }
    assert!(!hits(d, &e));
}

#[test]
fn every_condition_form() {
    let sels = "  sel_a:\n    CommandLine|contains: aaa\n  sel_b:\n    CommandLine|contains: bbb\n  filter:\n    CommandLine|contains: zzz\n";
    let check = |cond: &str, cases: &[(&str, bool)]| {
        let engine = engine_of(&proc_rule(&format!("{sels}  condition: {cond}\n")));
        for &(c, want) in cases {
            assert_eq!(!fired(&engine, &cmd(c)).is_empty(), want, "{cond} on {c:?}");
        }
    };
    check("sel_a", &[("aaa", true), ("bbb", false)]);
    check("sel_a and sel_b", &[("aaa bbb", true), ("aaa", false)]);
    check(
        "sel_a or sel_b",
        &[("aaa", true), ("bbb", true), ("ccc", false)],
    );
    check("sel_a and not filter", &[("aaa", true), ("aaa zzz", false)]);
    check(
        "sel_a or sel_b and not filter",
        &[("aaa zzz", true), ("bbb zzz", false), ("bbb", true)],
    );
    check(
        "(sel_a or sel_b) and not filter",
        &[("aaa zzz", false), ("bbb", true)],
    );
    check(
        "1 of sel_*",
        &[("aaa", true), ("bbb", true), ("zzz", false)],
    );
    check("all of sel_*", &[("aaa bbb", true), ("aaa", false)]);
    check("1 of them", &[("zzz", true), ("ccc", false)]);
    check("all of them", &[("aaa bbb zzz", true), ("aaa bbb", false)]);
    check(
        "all of sel_* and not 1 of filter*",
        &[("aaa bbb", true), ("aaa bbb zzz", false)],
    );
    check("not sel_a", &[("bbb", true), ("aaa", false)]);
}

#[test]
fn them_skips_underscore_selections() {
    let d = "  sel:\n    CommandLine|contains: aaa\n  _helper:\n    CommandLine|contains: zzz\n  condition: all of them\n";
    assert!(hits(d, &cmd("aaa")));
}

#[test]
fn condition_lists_are_or() {
    let d = "  a:\n    CommandLine: x\n  b:\n    CommandLine: y\n  condition:\n    - a\n    - b\n";
    assert!(hits(d, &cmd("x")) && hits(d, &cmd("y")) && !hits(d, &cmd("z")));
}

#[test]
fn dns_phase_follows_the_fields() {
    let rule = |det: &str| {
        let set = RuleSet::from_str("r.yml", &dns_rule(det)).unwrap();
        let r = set.rules()[0].clone();
        (r.dns_phase, engine_of(&dns_rule(det)))
    };
    let query = dns_query("x.example.com");
    let resp = dns_response("x.example.com", &["1.2.3.4", "5.6.7.8"], 0);

    let (phase, e) = rule("  s:\n    query|endswith: example.com\n  condition: s\n");
    assert_eq!(phase, DnsPhase::Query);
    assert!(!fired(&e, &query).is_empty() && fired(&e, &resp).is_empty());

    let (phase, e) = rule("  s:\n    answer: 5.6.7.8\n  condition: s\n");
    assert_eq!(phase, DnsPhase::Response);
    assert!(fired(&e, &query).is_empty() && !fired(&e, &resp).is_empty());

    let (_, e) = rule("  s:\n    QueryResults|all: ['1.2.3.*', '5.6.*']\n  condition: s\n");
    assert!(!fired(&e, &resp).is_empty());
    let (_, e) = rule("  s:\n    answer|all: ['1.2.3.*', '9.*']\n  condition: s\n");
    assert!(fired(&e, &resp).is_empty());

    let (phase, e) = rule("  s:\n    message_type: Response\n  condition: s\n");
    assert_eq!(phase, DnsPhase::Both);
    assert!(fired(&e, &query).is_empty() && !fired(&e, &resp).is_empty());

    let nx = dns_response("x.example.com", &[], 3);
    let (_, e) = rule("  s:\n    QueryStatus: 9003\n  condition: s\n");
    assert!(!fired(&e, &nx).is_empty() && fired(&e, &resp).is_empty());
    let (_, e) = rule("  s:\n    reply_code: nxdomain\n  condition: s\n");
    assert!(!fired(&e, &nx).is_empty());
    let (_, e) = rule("  s:\n    reply_code_id: 3\n  condition: s\n");
    assert!(!fired(&e, &nx).is_empty());

    // Addresses, process fields, transport, record type.
    let (_, e) = rule(
        "  s:\n    src: '10.0.0.*'\n    dest: 10.0.0.1\n    transport: udp\n    record_type: a\n    Image|endswith: /curl\n    parent_process_name: bash\n  condition: s\n",
    );
    assert!(!fired(&e, &query).is_empty());
}

#[test]
fn product_restricts_the_platform() {
    let win = "title: T\nlogsource:\n  product: windows\n  category: process_creation\ndetection:\n  s:\n    CommandLine: x\n  condition: s\n";
    let e = engine_of(win);
    assert!(fired(&e, &exec("/bin/x", "x")).is_empty());
    assert!(!fired(&e, &exec_on(Platform::Windows, "C:\\x.exe", "x")).is_empty());
    let any = proc_rule("  s:\n    CommandLine: x\n  condition: s\n");
    let e = engine_of(&any);
    assert!(!fired(&e, &exec("/bin/x", "x")).is_empty());
    assert!(!fired(&e, &exec_on(Platform::Windows, "C:\\x.exe", "x")).is_empty());
}

#[test]
fn several_documents_per_file() {
    let yaml = format!(
        "{}---\ntitle: U\nid: 44444444-4444-4444-4444-444444444444\nlogsource:\n  category: dns\ndetection:\n  s:\n    query: x\n  condition: s\n",
        proc_rule("  s:\n    CommandLine: x\n  condition: s\n")
    );
    let set = RuleSet::from_str("rules/multi.yml", &yaml).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(set.rules()[1].title, "U");
    // Eight lines of the first rule, `---`, then the second rule's first key.
    assert_eq!(set.rules()[1].line, 10);
}

/// `(detection body starting on line 6, expected error)`.
const DETECTION_REFUSALS: &[(&str, &str)] = &[
    (
        "  s:\n    CommandLine|base65: x\n  condition: s\n",
        "rules/x.yml:7: unknown modifier 'base65' on field 'CommandLine'",
    ),
    (
        "  s:\n    CommandLine|expand: '%admins%'\n  condition: s\n",
        "rules/x.yml:7: modifier 'expand' on field 'CommandLine' is not supported",
    ),
    (
        "  s:\n    CommandLine|cidr: 10.0.0.256/8\n  condition: s\n",
        "rules/x.yml:7: bad value for field 'CommandLine': '10.0.0.256/8' is not a network for 'cidr' (like 10.0.0.0/8 or 2001:db8::/32)",
    ),
    (
        "  s:\n    CommandLine|cidr|contains: 10.0.0.0/8\n  condition: s\n",
        "rules/x.yml:7: modifier 'cidr' on field 'CommandLine' cannot be combined with 'contains'",
    ),
    (
        "  s:\n    ProcessId|gt: five\n  condition: s\n",
        "rules/x.yml:7: a numeric comparison on field 'ProcessId' needs a number",
    ),
    (
        "  s:\n    Commandline: x\n  condition: s\n",
        "rules/x.yml:7: unknown field 'Commandline' for logsource category 'process_creation'",
    ),
    (
        "  s:\n    QueryName: x\n  condition: s\n",
        "rules/x.yml:7: unknown field 'QueryName' for logsource category 'process_creation'",
    ),
    (
        "  s:\n    - ngrok\n    - http\n  condition: s\n",
        "rules/x.yml:7: selection 's': keyword selections are not supported",
    ),
    (
        "  s: ngrok\n  condition: s\n",
        "rules/x.yml:6: selection 's': keyword selections are not supported",
    ),
    (
        "  s:\n    '|all': [a, b]\n  condition: s\n",
        "rules/x.yml:7: selection 's': keyword selections are not supported",
    ),
    (
        "  s:\n    CommandLine: x\n  condition: s and t\n",
        "rules/x.yml:8: the condition names an undefined selection 't'",
    ),
    (
        "  s:\n    CommandLine: x\n  condition: s or\n",
        "rules/x.yml:8: the condition ends too early",
    ),
    (
        "  s:\n    CommandLine: x\n  condition: (s\n",
        "rules/x.yml:8: missing ')' in condition",
    ),
    (
        "  s:\n    CommandLine: x\n  condition: s | count() > 3\n",
        "rules/x.yml:8: aggregations ('|' in a condition) are not supported",
    ),
    (
        "  s:\n    CommandLine: x\n  condition: 1 of t*\n",
        "rules/x.yml:8: '1 of t*' matches no selection",
    ),
    (
        "  s:\n    CommandLine: x\n  condition: 2 of s*\n",
        "rules/x.yml:8: only '1 of' and 'all of' are supported, not '2 of'",
    ),
    (
        "  s:\n    CommandLine: x\n",
        "rules/x.yml:6: detection has no 'condition'",
    ),
    (
        "  condition: s\n",
        "rules/x.yml:6: detection has no selection",
    ),
    (
        "  s:\n    CommandLine: 1.5\n  condition: s\n",
        "rules/x.yml:7: bad value for field 'CommandLine': floating-point numbers are only supported by 'gt', 'gte', 'lt' and 'lte'",
    ),
    (
        "  s:\n    CommandLine:\n      a: b\n  condition: s\n",
        "rules/x.yml:8: bad value for field 'CommandLine': a mapping",
    ),
    (
        "  s:\n    CommandLine:\n      - x\n      - [y]\n  condition: s\n",
        "rules/x.yml:9: bad value for field 'CommandLine': a list inside a list",
    ),
    (
        "  s:\n    CommandLine: []\n  condition: s\n",
        "rules/x.yml:7: empty value list for field 'CommandLine'",
    ),
    (
        "  s:\n    CommandLine|contains: null\n  condition: s\n",
        "rules/x.yml:7: a null value for field 'CommandLine' cannot take modifier 'contains'",
    ),
    (
        "  s:\n    CommandLine|exists: yes\n  condition: s\n",
        "rules/x.yml:7: modifier 'exists' on field 'CommandLine' needs true or false, not a string",
    ),
    (
        "  s:\n    CommandLine|exists|contains: true\n  condition: s\n",
        "rules/x.yml:7: modifier 'exists' on field 'CommandLine' cannot be combined with 'contains'",
    ),
    (
        "  s:\n    CommandLine|re|contains: x\n  condition: s\n",
        "rules/x.yml:7: modifier 're' on field 'CommandLine' cannot be combined with 'contains'",
    ),
    (
        "  s:\n    CommandLine|contains|endswith: x\n  condition: s\n",
        "rules/x.yml:7: modifiers 'contains' and 'endswith' on field 'CommandLine' conflict",
    ),
    (
        "  s:\n    CommandLine|contains|contains: x\n  condition: s\n",
        "rules/x.yml:7: duplicate modifier 'contains' on field 'CommandLine'",
    ),
    (
        "  s:\n    CommandLine|i: x\n  condition: s\n",
        "rules/x.yml:7: modifier 'i' on field 'CommandLine' is only valid after 're'",
    ),
    (
        "  s:\n    CommandLine|re: '(unclosed'\n  condition: s\n",
        "rules/x.yml:7: bad value for field 'CommandLine': invalid regular expression: unclosed group",
    ),
    (
        "  s:\n    CommandLine|windash: '-a -b -c -d -e'\n  condition: s\n",
        "rules/x.yml:7: 'windash' expands at most 4 dashes in one value, this one has 5",
    ),
    (
        "  s:\n  condition: s\n",
        "rules/x.yml:6: selection 's' is empty",
    ),
    (
        "  s: {}\n  condition: s\n",
        "rules/x.yml:6: selection 's' is empty",
    ),
    (
        "  s:\n    CommandLine: x\n  timeframe: 5m\n  condition: s\n",
        "rules/x.yml:8: 'timeframe' (Sigma 1 aggregations) is not supported: write a Sigma correlation rule",
    ),
    (
        "  s:\n    CommandLine: x\n  condition: 5\n",
        "rules/x.yml:8: condition must be a string",
    ),
];

#[test]
fn detection_refusals_name_file_line_and_reason() {
    for (detection, want) in DETECTION_REFUSALS {
        assert_eq!(load_err(&proc_rule(detection)), *want, "{detection}");
    }
}

#[test]
fn rule_refusals_name_file_line_and_reason() {
    let det = "detection:\n  s:\n    CommandLine: x\n  condition: s\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("id: x\nlogsource:\n  category: process_creation\n{det}"),
            "rules/x.yml:1: rule has no 'title'",
        ),
        (
            format!("title: T\n{det}"),
            "rules/x.yml:1: rule has no 'logsource'",
        ),
        (
            "title: T\nlogsource:\n  category: process_creation\n".to_string(),
            "rules/x.yml:1: rule has no 'detection'",
        ),
        (
            "title: T\nlogsource:\n  category: network_connection\ndetection:\n  s:\n    DestinationPortName: https\n  condition: s\n".to_string(),
            "rules/x.yml:6: field 'DestinationPortName' of logsource category 'network_connection' is not available: tunnelwatch reports ports by number, not by service name",
        ),
        (
            format!("title: T\nlogsource:\n  category: file_event\n{det}"),
            "rules/x.yml:3: logsource category 'file_event' is not supported (supported: process_creation, dns_query, dns, network_connection)",
        ),
        (
            format!("title: T\nlogsource:\n  product: windows\n  service: security\n{det}"),
            "rules/x.yml:2: logsource has no 'category' (supported: process_creation, dns_query, dns, network_connection)",
        ),
        (
            format!("title: T\nlogsource:\n  product: macos\n  category: process_creation\n{det}"),
            "rules/x.yml:3: logsource product 'macos' is not supported (linux, windows or none)",
        ),
        (
            format!("title: T\nlogsource:\n  category: process_creation\n  vendor: x\n{det}"),
            "rules/x.yml:4: unknown key 'vendor' in logsource (product, category, service, definition)",
        ),
        (
            format!("title: T\nlevel: severe\nlogsource:\n  category: process_creation\n{det}"),
            "rules/x.yml:2: unknown level 'severe' (informational, low, medium, high or critical)",
        ),
        (
            format!(
                "title: T\nstatus: production\nlogsource:\n  category: process_creation\n{det}"
            ),
            "rules/x.yml:2: unknown status 'production' (one of stable, test, experimental, deprecated, unsupported)",
        ),
        (
            format!("title: [T]\nlogsource:\n  category: process_creation\n{det}"),
            "rules/x.yml:1: title must be a string",
        ),
        (
            format!(
                "title: T\nlogsource:\n  category: process_creation\n{det}tunnelwatch:\n  impact: 150\n"
            ),
            "rules/x.yml:9: tunnelwatch.impact must be between 0 and 100, not 150",
        ),
        (
            format!(
                "title: T\nlogsource:\n  category: process_creation\n{det}tunnelwatch:\n  severity: 3\n"
            ),
            "rules/x.yml:9: unknown key 'severity' in 'tunnelwatch' (type, impact, confidence, risk_score, message, family, tests)",
        ),
        (
            format!(
                "title: T\nlogsource:\n  category: process_creation\n{det}tunnelwatch:\n  message: 'beacon from $src$'\n"
            ),
            "rules/x.yml:9: message names unknown field '$src$' (not an output field of Endpoint.Processes events)",
        ),
        (
            "title: T\ncorrelation:\n  type: event_count\n".to_string(),
            "rules/x.yml:3: correlation has no 'rules'",
        ),
        (
            format!("title: T\ntitle: U\nlogsource:\n  category: process_creation\n{det}"),
            "rules/x.yml:2: YAML syntax error: duplicated key in mapping",
        ),
        (
            "title: T\nlogsource: [\n".to_string(),
            "rules/x.yml:3: YAML syntax error: while parsing a node, did not find expected node content",
        ),
        (
            format!(
                "title: T\nlogsource:\n  category: process_creation\n  product: !!binary eA==\n{det}"
            ),
            "rules/x.yml:4: product must be a string",
        ),
        (
            "# nothing\n".to_string(),
            "rules/x.yml: the file holds no rule",
        ),
        (
            format!(
                "title: T\nlogsource:\n  category: process_creation\n{det}related:\n  - id: x\n"
            ),
            "rules/x.yml:9: each related entry needs 'id' and 'type'",
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(load_err(&yaml), want, "{yaml}");
    }
}

#[test]
fn one_bad_rule_fails_the_whole_set_unless_skipped() {
    let good = proc_rule("  s:\n    CommandLine: x\n  condition: s\n");
    let bad = proc_rule("  s:\n    CommandLine|base65: x\n  condition: s\n")
        .replace("1111-111111111111", "1111-222222222222");
    let sources = [
        ("rules/good.yml", good.as_str()),
        ("rules/bad.yml", bad.as_str()),
    ];
    let err = RuleSet::from_sources(sources, LoadOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "rules/bad.yml:7: unknown modifier 'base65' on field 'CommandLine'"
    );
    let loaded = RuleSet::from_sources(sources, LoadOptions { skip_invalid: true }).unwrap();
    assert_eq!(loaded.rules.len(), 1);
    assert_eq!(loaded.warnings.len(), 1);
    assert_eq!(loaded.warnings[0].file, "rules/bad.yml");
    assert_eq!(loaded.warnings[0].line, 7);
}

#[test]
fn every_error_is_reported_and_duplicate_ids_are_refused() {
    let good = proc_rule("  s:\n    CommandLine: x\n  condition: s\n");
    let bad = proc_rule("  s:\n    Nope: x\n  condition: s\n");
    let err = RuleSet::from_sources(
        [
            ("a.yml", good.as_str()),
            ("b.yml", good.as_str()),
            ("c.yml", bad.as_str()),
        ],
        LoadOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "b.yml:1: duplicate rule id '11111111-1111-1111-1111-111111111111' (first used in a.yml:1)\n\
         c.yml:7: unknown field 'Nope' for logsource category 'process_creation'"
    );
}

#[test]
fn load_reads_files_and_directories() {
    let dir = std::env::temp_dir().join(format!("tw-rules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(
        dir.join("a.yml"),
        proc_rule("  s:\n    CommandLine: a\n  condition: s\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("sub/b.yaml"),
        dns_rule("  s:\n    query: b\n  condition: s\n")
            .replace("1111-111111111111", "1111-bbbbbbbbbbbb"),
    )
    .unwrap();
    std::fs::write(dir.join("notes.txt"), "not a rule").unwrap();
    let loaded = RuleSet::load(&[&dir], LoadOptions::default()).unwrap();
    assert_eq!(loaded.rules.len(), 2);
    assert!(loaded.rules.rules()[1].file.ends_with("b.yaml"));
    let missing = dir.join("missing.yml");
    let err = RuleSet::load(&[&missing], LoadOptions::default()).unwrap_err();
    assert!(err.errors[0].reason.starts_with("cannot read:"), "{err}");
    assert_eq!(err.errors[0].line, 0);
    std::fs::remove_dir_all(&dir).unwrap();
}
