//! Rule test cases as data: their format and its refusals, what a failure reports, the
//! `rules check` and `rules list` APIs, and loading user rules on top of the shipped ones.

use tunnelwatch_engine::{
    builtin,
    event::{Event, Platform},
    rule::Level,
    rule_tests::{self, TestReport},
    ruleset::{LoadOptions, RuleSet},
};

const RULE: &str = r#"title: Tool
id: 11111111-0000-4000-8000-000000000001
level: high
logsource: {category: process_creation, product: windows}
detection:
  s: {process_name: tool.exe, CommandLine|contains: serve}
  condition: s
tunnelwatch:
  family: tool
  message: $process_name$ on $dest$
  tests:
    - name: a hit, with its message
      alert: true
      message: tool.exe on ws7
      event: {host: ws7, process_path: 'C:\x\tool.exe', process: tool.exe serve}
    - alert: false
      event: {process_path: 'C:\x\tool.exe', process: tool.exe help}
"#;

fn report_of(sources: &[(&str, &str)]) -> TestReport {
    let set = RuleSet::from_sources(sources.iter().copied(), LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .rules;
    rule_tests::run_tests(&set)
}

#[test]
fn test_cases_are_parsed_with_defaults() {
    let set = RuleSet::from_str("rules/tool.yml", RULE).unwrap();
    let rule = &set.rules()[0];
    assert_eq!(rule.family.as_deref(), Some("tool"));
    assert_eq!(rule.tests.len(), 2);
    let t = &rule.tests[0];
    assert_eq!(
        (&*t.name, t.line, t.alert),
        ("a hit, with its message", 12, true)
    );
    assert_eq!(t.message.as_deref(), Some("tool.exe on ws7"));
    // The platform comes from the rule's product, the name from the path.
    let Event::Process(p) = &t.event else {
        panic!("not a process event")
    };
    assert_eq!(p.platform, Platform::Windows);
    assert_eq!(&*p.process.name, "tool.exe");
    assert_eq!(&*p.host, "ws7");
    assert_eq!(&*rule.tests[1].name, "test 2");
    let report = report_of(&[("rules/tool.yml", RULE)]);
    assert!(report.passed(), "{report}");
    assert_eq!(report.tests(), 2);
    assert_eq!(
        report.to_string(),
        "ok   rules/tool.yml:1 11111111-0000-4000-8000-000000000001 Tool (2 tests)\n1 rules, 2 tests, 0 failed"
    );
}

#[test]
fn failures_name_the_test_line_and_what_went_wrong() {
    let wrong = RULE
        .replace("message: tool.exe on ws7", "message: tool.exe on ws8")
        .replace("process: tool.exe help", "process: tool.exe serve help")
        .replace(
            "id: 11111111-0000-4000-8000-000000000001",
            "id: 11111111-0000-4000-8000-000000000002",
        );
    let other_platform = RULE
        .replace(
            "      event: {process_path: 'C:\\x\\tool.exe', process: tool.exe help}",
            "      event: {platform: linux, process_path: /x/tool.exe, process: tool.exe serve}",
        )
        .replace("alert: false", "alert: true");
    let report = report_of(&[("rules/wrong.yml", &wrong)]);
    let failures: Vec<String> = report.failures().map(|f| f.to_string()).collect();
    assert_eq!(
        failures,
        [
            "rules/wrong.yml:12: test 'a hit, with its message': message is \"tool.exe on ws7\", expected \"tool.exe on ws8\"",
            "rules/wrong.yml:16: test 'test 2': expected no alert, the rule fired",
        ]
    );
    assert!(
        report.to_string().starts_with("FAIL rules/wrong.yml:1 "),
        "{report}"
    );
    let report = report_of(&[("rules/p.yml", &other_platform)]);
    assert_eq!(
        report
            .failures()
            .map(|f| f.reason.clone())
            .collect::<Vec<_>>(),
        [
            "expected an alert, but the rule does not apply to this event (Endpoint.Processes on linux)"
        ]
    );
}

#[test]
fn two_alerts_of_one_family_fail_the_test() {
    let twin = RULE
        .replace(
            "id: 11111111-0000-4000-8000-000000000001",
            "id: 11111111-0000-4000-8000-000000000009",
        )
        .replace("title: Tool", "title: Tool twin");
    let report = report_of(&[("rules/a.yml", RULE), ("rules/b.yml", &twin)]);
    let reasons: Vec<String> = report.failures().map(|f| f.reason.clone()).collect();
    assert_eq!(reasons.len(), 2, "{report}");
    assert_eq!(
        reasons[0],
        "the event raised 2 alerts of family 'tool': 11111111-0000-4000-8000-000000000001 (rules/a.yml:1), 11111111-0000-4000-8000-000000000009 (rules/b.yml:1)"
    );
    // Another family is fine.
    let other = twin.replace("family: tool", "family: other");
    assert!(report_of(&[("rules/a.yml", RULE), ("rules/b.yml", &other)]).passed());
}

#[test]
fn test_case_refusals_name_file_line_and_reason() {
    let head = "title: T\nlogsource: {category: dns_query}\ndetection: {s: {query: x}, condition: s}\ntunnelwatch:\n  tests:\n";
    let cases: &[(&str, &str)] = &[
        (
            "    - event: {query: x}\n",
            "t.yml:6: a test case needs 'alert: true' or 'alert: false'",
        ),
        (
            "    - alert: true\n",
            "t.yml:6: a test case needs an 'event'",
        ),
        (
            "    - alert: yes\n      event: {query: x}\n",
            "t.yml:6: a test's 'alert' must be true or false",
        ),
        (
            "    - alert: true\n      event: {query: x, frobnicate: 1}\n",
            "t.yml:7: bad test event: unknown field 'frobnicate' for a DNS event (one of query, query_type, message_type, transaction_id, reply_code, reply_code_id, answer, answer_count, src, src_port, dest, dest_port, transport, process_id, process_name, process_path, process, user, user_id, parent_process_id, parent_process_name, parent_process_path, inferred_from_response, container_id, container_runtime, container_name, container_image, pod_uid, pod_name, pod_namespace, pid_ns, mnt_ns, net_ns)",
        ),
        (
            "    - alert: true\n      event: {datamodel: Endpoint.Processes, process: x}\n",
            "t.yml:7: bad test event: a process event (Endpoint.Processes), but the rule reads DNS events (Network_Resolution)",
        ),
        (
            "    - alert: false\n      message: m\n      event: {query: x}\n",
            "t.yml:6: a test case with 'alert: false' cannot expect a message",
        ),
        (
            "    - alert: true\n      expect: 1\n      event: {query: x}\n",
            "t.yml:7: unknown key 'expect' in a test case (name, alert, message, event)",
        ),
        (
            "    - alert: true\n      event: {query: {a: b}}\n",
            "t.yml:7: test event values must be scalars, not a mapping",
        ),
        (
            "    - alert: true\n      event: {query: x, src: nope}\n",
            "t.yml:7: bad test event: 'src' must be an IP address, not 'nope'",
        ),
        (
            "    - alert: true\n      event: {query: x, platform: macos}\n",
            "t.yml:7: bad test event: unknown platform 'macos' (linux or windows)",
        ),
    ];
    for (tests, want) in cases {
        let err = RuleSet::from_str("t.yml", &format!("{head}{tests}"))
            .unwrap_err()
            .to_string();
        assert_eq!(err, *want, "{tests}");
    }
    assert_eq!(
        RuleSet::from_str("t.yml", &format!("{head}    x\n"))
            .unwrap_err()
            .to_string(),
        "t.yml:6: tunnelwatch.tests must be a list of test cases"
    );
}

#[test]
fn check_loads_a_directory_and_runs_its_tests() {
    let dir = std::env::temp_dir().join(format!("tw-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tool.yml"), RULE).unwrap();
    let (loaded, report) = rule_tests::check(&[&dir], LoadOptions::default()).unwrap();
    assert_eq!(loaded.rules.len(), 1);
    assert!(report.passed());
    std::fs::write(
        dir.join("bad.yml"),
        "title: B\nlogsource: {category: nope}\n",
    )
    .unwrap();
    let err = rule_tests::check(&[&dir], LoadOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("bad.yml:2: logsource category 'nope' is not supported"),
        "{err}"
    );
    let (loaded, report) = rule_tests::check(&[&dir], LoadOptions { skip_invalid: true }).unwrap();
    assert_eq!((loaded.rules.len(), loaded.warnings.len()), (1, 1));
    assert!(report.passed());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn list_shows_what_is_loaded() {
    let set = builtin::rules().unwrap();
    let list = set.list();
    // The rules, then the correlations.
    assert_eq!(list.len(), set.len() + set.correlations().len());
    assert!(set.correlations().len() >= 2);
    let last = list.last().unwrap();
    assert_eq!(last.category, "correlation");
    let seed = &list[0];
    assert_eq!(
        seed.id.as_deref(),
        Some("bc84d574-708c-467d-b78a-4c1e20171f97")
    );
    assert_eq!(seed.title, "Linux Ngrok Reverse Proxy Usage");
    assert_eq!(seed.level, Some(Level::Medium));
    assert_eq!(
        (seed.category.as_str(), seed.product.as_deref()),
        ("process_creation", Some("linux"))
    );
    assert_eq!(seed.family.as_deref(), Some("ngrok"));
    assert_eq!(
        (seed.file.as_str(), seed.line),
        ("rules/linux_ngrok_reverse_proxy_usage.yml", 4)
    );
    assert!(seed.tests > 0);
    assert!(
        list.iter()
            .any(|s| s.category == "dns_query" && s.product.is_none())
    );
}

#[test]
fn user_rules_replace_shipped_ones_and_must_not_clash() {
    let dir = std::env::temp_dir().join(format!("tw-user-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("b")).unwrap();
    // A stricter version of the Linux seed.
    let mine = "title: My ngrok rule\nid: BC84D574-708C-467D-B78A-4C1E20171F97\nlogsource: {category: process_creation, product: linux}\ndetection: {s: {process_name: ngrok, CommandLine|contains: ' tcp 22'}, condition: s}\n";
    std::fs::write(dir.join("a.yml"), mine).unwrap();
    std::fs::write(dir.join("b/new.yml"), RULE).unwrap();
    let loaded = builtin::load_with(&[&dir], LoadOptions::default()).unwrap();
    assert_eq!(loaded.rules.len(), builtin::SOURCES.len() + 1);
    // In the shipped rule's place.
    assert_eq!(loaded.rules.rules()[0].title, "My ngrok rule");
    assert_eq!(
        loaded
            .notices
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>(),
        [format!(
            "{}:1: rule id 'BC84D574-708C-467D-B78A-4C1E20171F97' replaces the shipped rule 'Linux Ngrok Reverse Proxy Usage' (rules/linux_ngrok_reverse_proxy_usage.yml:4)",
            dir.join("a.yml").display()
        )]
    );
    // Two user rules with one id: an error naming both.
    std::fs::write(dir.join("b/again.yml"), mine).unwrap();
    let err = builtin::load_with(&[&dir], LoadOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:1: duplicate rule id 'BC84D574-708C-467D-B78A-4C1E20171F97' (first used in {}:1)",
            // Joined part by part: on Windows the loader's paths use backslashes throughout.
            dir.join("b").join("again.yml").display(),
            dir.join("a.yml").display()
        )
    );
    // The same directory twice is the same clash, not a silent double load.
    std::fs::remove_file(dir.join("b/again.yml")).unwrap();
    assert!(builtin::load_with(&[&dir, &dir], LoadOptions::default()).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
