//! Allowlists suppress alerts for the rules they cover when every listed field matches.

mod common;

use common::*;
use tunnelwatch_engine::{
    allowlist::{AllowEntry, Allowlist},
    builtin,
    config::Config,
    engine::Engine,
    event::{Event, Platform},
};

fn engine_with(config: &str) -> Engine {
    let config: Config = Config::from_str("tw.yml", config).unwrap();
    Engine::new(builtin::rules().unwrap(), config.allowlist)
}

/// An ngrok tunnel started by `user` from `parent` (a name under /usr/bin).
fn ngrok_by(user: &str, parent: &str) -> Event {
    let mut e = exec("/usr/local/bin/ngrok", "ngrok http 8080");
    if let Event::Process(p) = &mut e {
        p.process.user = user.into();
        p.parent = process(10, &format!("/usr/bin/{parent}"), parent);
    }
    e
}

const CONFIG: &str = r#"allowlist:
  - rules: ["bc84d574-708c-467d-b78a-4c1e20171f97"]
    user: [ci-runner]
    parent_process_name: [jenkins]
  - query: ["*.sanctioned.ngrok.io"]
"#;

#[test]
fn every_listed_field_must_match() {
    let engine = engine_with(CONFIG);
    assert!(fired(&engine, &ngrok_by("ci-runner", "jenkins")).is_empty());
    assert!(fired(&engine, &ngrok_by("CI-Runner", "JENKINS")).is_empty());
    assert_eq!(fired(&engine, &ngrok_by("ci-runner", "bash")), [LINUX]);
    assert_eq!(fired(&engine, &ngrok_by("alice", "jenkins")), [LINUX]);
}

#[test]
fn entries_only_cover_their_rules() {
    let engine = engine_with(CONFIG);
    let mut win = on(Platform::Windows, ngrok_by("ci-runner", "jenkins"));
    if let Event::Process(p) = &mut win {
        p.process = process(4242, r"C:\ci\ngrok.exe", "ngrok.exe http 80");
        p.process.user = "ci-runner".into();
    }
    assert_eq!(fired(&engine, &win), [WINDOWS]);
}

#[test]
fn query_entries_apply_to_dns_alerts_only() {
    let engine = engine_with(CONFIG);
    assert!(fired(&engine, &dns_query("a.sanctioned.ngrok.io")).is_empty());
    assert!(fired(&engine, &dns_query("A.SANCTIONED.NGROK.IO")).is_empty());
    assert_eq!(fired(&engine, &dns_query("a.ngrok.io")), [NETWORK]);
    // A process event has no query: the entry never matches it.
    assert_eq!(fired(&engine, &ngrok_by("bob", "bash")), [LINUX]);
}

#[test]
fn rules_by_title_glob_host_and_lists() {
    let engine = engine_with(
        "allowlist:\n  - rules: ['*ngrok reverse proxy usage']\n    host: [web*, db1]\n    process_path: ['/usr/local/bin/*']\n",
    );
    assert!(fired(&engine, &ngrok_by("bob", "bash")).is_empty());
    let mut other = ngrok_by("bob", "bash");
    if let Event::Process(p) = &mut other {
        p.host = "mail1".into();
    }
    assert_eq!(fired(&engine, &other), [LINUX]);
    // The DNS rule's title does not match the glob.
    assert_eq!(fired(&engine, &dns_query("a.ngrok.io")), [NETWORK]);
}

#[test]
fn dns_process_fields_come_from_the_querying_process() {
    let engine = engine_with("allowlist:\n  - process_name: [curl]\n    user_id: ['1000']\n");
    assert!(fired(&engine, &dns_query("a.ngrok.io")).is_empty());
    let mut e = dns_query("a.ngrok.io");
    if let Event::Dns(d) = &mut e {
        d.process = None;
    }
    assert_eq!(fired(&engine, &e), [NETWORK]);
}

#[test]
fn built_in_code_and_warnings_for_unknown_rules() {
    let entry = AllowEntry::new(&["no-such-rule"], &[("user", &["x"])]).unwrap();
    let list = Allowlist::new(vec![entry]);
    let warnings = list.unmatched_rule_refs(&builtin::rules().unwrap());
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        warnings[0].reason,
        "allowlist rule 'no-such-rule' matches no loaded rule id or title"
    );
    assert!(
        AllowEntry::new(&[], &[])
            .unwrap_err()
            .contains("lists no field")
    );
    assert!(
        AllowEntry::new(&[], &[("uid", &["0"])])
            .unwrap_err()
            .contains("unknown key 'uid'")
    );
    let all = Allowlist::new(vec![AllowEntry::new(&[], &[("user", &["alice"])]).unwrap()]);
    let engine = Engine::new(builtin::rules().unwrap(), all);
    assert!(fired(&engine, &exec("/usr/local/bin/ngrok", "ngrok http 80")).is_empty());
    assert!(fired(&engine, &dns_query("a.ngrok.io")).is_empty());
}

#[test]
fn an_entry_that_matches_every_event_of_its_rules_is_warned_about() {
    // Issue 12: a non-root user wrote `allowlist: [{process_name: ["*"]}]` and silenced every
    // alert without a word.
    let rules = builtin::rules().unwrap();
    let config: Config = Config::from_str(
        "tw.yml",
        "allowlist:\n  - process_name: ['*']\n  - rules: [bc84d574-708c-467d-b78a-4c1e20171f97]\n    user: [ci]\n    process_name: ['*', ngrok]\n  - user: ['*']\n    process_name: ['*']\n",
    )
    .unwrap();
    let warnings = config.allowlist.match_everything(&rules);
    let all = rules.rules().len();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert_eq!((warnings[0].line, warnings[1].line), (2, 6));
    assert_eq!(
        warnings[0].reason,
        format!(
            "allowlist entry matches every event of the {all} rule(s) it covers (process_name = '*'): it silences them all"
        )
    );
    assert!(warnings[1].reason.contains("(user, process_name = '*')"));
    // A glob that matches much but not everything is the user's business.
    let config: Config = Config::from_str(
        "tw.yml",
        "allowlist:\n  - process_name: ['*ngrok*', '?*']\n",
    )
    .unwrap();
    assert!(config.allowlist.match_everything(&rules).is_empty());
}
