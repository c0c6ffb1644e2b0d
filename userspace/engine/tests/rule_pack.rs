//! The shipped rule pack: every rule loads, has test cases, and they all pass (events in,
//! alert or no alert out, at most one alert per tunnel family); metadata every pack rule must
//! carry. A rule that only feeds a correlation raises no alert of its own: the correlation
//! carries the metadata and the test cases.

use tunnelwatch_engine::{
    allowlist::Allowlist, builtin, correlation::Source, engine::Engine, rule_tests,
    ruleset::RuleSet,
};

/// Whether rule `i` of `rules` only feeds correlations.
fn feeds_only(rules: &RuleSet, i: usize) -> bool {
    let referred = rules
        .resolved()
        .iter()
        .any(|r| r.sources.contains(&Source::Rule(i)));
    let engine = Engine::new(rules.clone(), Allowlist::default());
    referred && engine.rule_is_silent(i)
}

#[test]
fn every_shipped_test_case_passes() {
    let rules = builtin::rules().unwrap_or_else(|e| panic!("{e}"));
    let report = rule_tests::run_tests(&rules);
    assert!(report.passed(), "{report}");
    // Every rule has a positive and a negative case.
    for (i, (rule, result)) in rules.rules().iter().zip(&report.rules).enumerate() {
        if feeds_only(&rules, i) {
            continue;
        }
        assert!(
            rule.tests.iter().any(|t| t.alert) && rule.tests.iter().any(|t| !t.alert),
            "{}:{}: {} needs a positive and a negative test case",
            rule.file,
            rule.line,
            rule.title
        );
        assert_eq!(result.tests, rule.tests.len());
    }
    // So does every correlation.
    for c in rules.correlations() {
        assert!(
            c.tests.iter().any(|t| t.alert) && c.tests.iter().any(|t| !t.alert),
            "{}:{}: {} needs a positive and a negative test case",
            c.file,
            c.line,
            c.meta.title
        );
    }
    assert!(report.tests() >= 3 * rules.len(), "{}", report.tests());
}

#[test]
fn every_shipped_rule_carries_its_metadata() {
    let rules = builtin::rules().unwrap();
    let mut ids = std::collections::HashSet::new();
    for (i, r) in rules.rules().iter().enumerate() {
        let at = format!("{}:{}", r.file, r.line);
        let id = r.id.as_deref().unwrap_or_else(|| panic!("{at}: no id"));
        assert!(ids.insert(id.to_ascii_lowercase()), "{at}: id {id} twice");
        if feeds_only(&rules, i) {
            assert!(
                r.name.is_some(),
                "{at}: a rule a correlation names needs a name"
            );
            continue;
        }
        assert!(!r.references.is_empty(), "{at}: no references");
        assert!(r.level.is_some(), "{at}: no level");
        assert!(!r.falsepositives.is_empty(), "{at}: no falsepositives");
        assert!(r.family.is_some(), "{at}: no tunnelwatch.family");
        assert!(r.analytic_type.is_some(), "{at}: no tunnelwatch.type");
        assert!(r.risk_score.is_some(), "{at}: no risk score");
        assert!(r.message != r.title, "{at}: no tunnelwatch.message");
        assert!(
            r.mitre_technique_ids
                .iter()
                .any(|t| ["T1572", "T1090", "T1102"].contains(&t.as_str())),
            "{at}: no T1572/T1090/T1102 tag"
        );
        assert!(r.unreported_fields.is_empty(), "{at}: unreported fields");
    }
    for c in rules.correlations() {
        let at = format!("{}:{}", c.file, c.line);
        let id = c
            .meta
            .id
            .as_deref()
            .unwrap_or_else(|| panic!("{at}: no id"));
        assert!(ids.insert(id.to_ascii_lowercase()), "{at}: id {id} twice");
        assert!(!c.meta.references.is_empty(), "{at}: no references");
        assert!(c.meta.level.is_some(), "{at}: no level");
        assert!(!c.meta.falsepositives.is_empty(), "{at}: no falsepositives");
        assert!(c.family.is_some(), "{at}: no tunnelwatch.family");
        assert!(c.analytic_type.is_some(), "{at}: no tunnelwatch.type");
        assert!(c.risk_score.is_some(), "{at}: no risk score");
        assert!(c.message != c.meta.title, "{at}: no tunnelwatch.message");
        assert!(
            c.meta.mitre_technique_ids.iter().any(|t| t == "T1572"),
            "{at}: no T1572 tag"
        );
    }
    assert!(rules.len() >= 40, "{}", rules.len());
}

#[test]
fn the_pack_covers_every_family_of_the_issue() {
    let rules = builtin::rules().unwrap();
    let families: std::collections::BTreeSet<&str> = rules
        .rules()
        .iter()
        .filter_map(|r| r.family.as_deref())
        .collect();
    for f in [
        "ngrok",
        "cloudflared",
        "localtunnel",
        "serveo",
        "localhost-run",
        "pinggy",
        "bore",
        "frp",
        "chisel",
        "devtunnels",
        "localxpose",
        "playit",
        "zrok",
        "tailscale-funnel",
    ] {
        assert!(families.contains(f), "no rule of family {f}: {families:?}");
    }
}
