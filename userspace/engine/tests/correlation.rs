//! Sigma correlation rules: each type and condition, window edges, groups, aliases, chains,
//! `generate`, the limits and what they drop, refusals with file, line and reason, reloads,
//! and `replay` of a recording raising what the live step raised.

mod common;

use std::{sync::Arc, time::Duration};

use common::*;
use serde_json::Value;
use tunnelwatch_engine::{
    allowlist::{AllowEntry, Allowlist},
    correlation::Limits,
    engine::Engine,
    event::{Event, Process},
    replay::Replay,
    rule_tests::run_tests,
    ruleset::{LoadOptions, RuleSet},
    step::Step,
};

/// A process rule `name` matching command lines containing `word`.
fn base(name: &str, id: &str, word: &str) -> String {
    format!(
        "title: base {name}\nid: {id}\nname: {name}\nlogsource:\n  category: process_creation\n  product: linux\ndetection:\n  s:\n    CommandLine|contains: {word}\n  condition: s\n"
    )
}

const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const B: &str = "aaaaaaaa-0000-4000-8000-000000000002";
const C: &str = "aaaaaaaa-0000-4000-8000-000000000003";

/// A correlation over rules `rules` with the given `correlation:` body lines.
fn corr(title: &str, body: &str) -> String {
    let n: u32 = title.bytes().map(u32::from).sum();
    format!(
        "title: {title}\nid: cccccccc-0000-4000-8000-{n:012}\nlevel: high\ncorrelation:\n{body}"
    )
}

/// `command` run by `user` at `secs` seconds after t0 (microseconds allowed).
fn run_at(secs: f64, user: &str, command: &str) -> Event {
    let mut e = exec("/usr/bin/tool", command);
    if let Event::Process(p) = &mut e {
        p.time = t0() + Duration::from_secs_f64(secs);
        p.process.user = user.into();
    }
    e
}

fn set_of(sources: &[&str]) -> RuleSet {
    let named: Vec<(String, &str)> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("rules/{i}.yml"), *s))
        .collect();
    RuleSet::from_sources(
        named.iter().map(|(n, s)| (n.as_str(), *s)),
        LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .rules
}

/// The lines the step writes for `events` (all events when `all`), as JSON.
fn lines_of(engine: &Engine, events: &[Event], all: bool, limits: Limits) -> (Vec<Value>, String) {
    let mut step = Step::with_limits(Vec::new(), all, limits);
    for e in events {
        step.run(engine, e).unwrap();
    }
    let text = String::from_utf8(step.get_ref().clone()).unwrap();
    let json = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (json, text)
}

/// The correlation lines the step writes for `events`.
fn correlations(engine: &Engine, events: &[Event]) -> Vec<Value> {
    lines_of(engine, events, false, Limits::default())
        .0
        .into_iter()
        .filter(|l| l.get("correlation_type").is_some())
        .collect()
}

fn engine(sources: &[&str]) -> Engine {
    Engine::new(set_of(sources), Allowlist::default())
}

fn time(secs: f64) -> String {
    humantime::format_rfc3339_micros(t0() + Duration::from_secs_f64(secs)).to_string()
}

#[test]
fn event_count_fires_at_its_threshold_then_keeps_quiet_for_a_timespan() {
    let e = engine(&[&format!(
        "{}---\n{}",
        base("scan", A, "nmap"),
        corr(
            "many scans",
            "  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 10s\n  condition: {gte: 3}\n"
        )
    )]);
    let mut events: Vec<Event> = (0..7)
        .map(|i| run_at(f64::from(i), "alice", "nmap -sS 10.0.0.1"))
        .collect();
    let lines = correlations(&e, &events);
    // Events 0, 1, 2 fire; 3 to 6 are counted afresh, quietly, for a timespan.
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert_eq!(l["kind"], "alert");
    assert_eq!(l["rule_name"], "many scans");
    assert_eq!(l["severity"], "high");
    assert_eq!(l["correlation_type"], "event_count");
    assert_eq!(l["User"], "alice");
    assert_eq!(l["count"], 3);
    assert_eq!(l["firstTime"], time(0.0));
    assert_eq!(l["lastTime"], time(2.0));
    assert_eq!(l["time"], time(2.0));
    assert_eq!(l["host"], "web1");
    assert!(l.get("distinct_count").is_none() && l.get("datamodel").is_none());
    // Quiet until 12 s; at 13 s the window (3 s to 13 s) holds five events.
    events.push(run_at(12.0, "alice", "nmap"));
    assert_eq!(correlations(&e, &events).len(), 1);
    events.push(run_at(13.0, "alice", "nmap"));
    let lines = correlations(&e, &events);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["count"], 6);
    assert_eq!(lines[1]["firstTime"], time(3.0));
    // The base rule feeds the correlation and raises no alert of its own.
    let (all, _) = lines_of(&e, &events, false, Limits::default());
    assert_eq!(all.len(), 2);
}

#[test]
fn sliding_windows_include_their_edge_and_nothing_older() {
    let e = engine(&[&format!(
        "{}---\n{}",
        base("scan", A, "nmap"),
        corr(
            "two scans",
            "  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 10s\n  condition: {gte: 2}\n"
        )
    )]);
    // Exactly the timespan apart: in one window.
    let edge = [run_at(0.0, "a", "nmap"), run_at(10.0, "a", "nmap")];
    assert_eq!(correlations(&e, &edge).len(), 1);
    // A microsecond more: two windows of one event each.
    let past = [run_at(0.0, "a", "nmap"), run_at(10.000_001, "a", "nmap")];
    assert!(correlations(&e, &past).is_empty());
    // The old event slides out, later ones still pair.
    let slide = [
        run_at(0.0, "a", "nmap"),
        run_at(11.0, "a", "nmap"),
        run_at(12.0, "a", "nmap"),
    ];
    let lines = correlations(&e, &slide);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["firstTime"], time(11.0));
}

#[test]
fn groups_are_kept_apart_and_unknown_values_form_their_own() {
    let e = engine(&[&format!(
        "{}---\n{}",
        base("scan", A, "nmap"),
        corr(
            "two scans",
            "  type: event_count\n  rules: [scan]\n  group-by: User\n  timespan: 1m\n  condition: {gte: 2}\n"
        )
    )]);
    let events = [
        run_at(0.0, "alice", "nmap"),
        run_at(1.0, "bob", "nmap"),
        run_at(2.0, "", "nmap"),
        run_at(3.0, "", "nmap"),
        run_at(4.0, "bob", "nmap"),
    ];
    let lines = correlations(&e, &events);
    assert_eq!(lines.len(), 2);
    assert!(lines[0].get("User").is_none(), "unknown is left out");
    assert_eq!(lines[1]["User"], "bob");
    // Another host is another group.
    let mut other = run_at(0.5, "alice", "nmap");
    if let Event::Process(p) = &mut other {
        p.host = Arc::from("web2");
    }
    assert!(correlations(&e, &[run_at(0.0, "alice", "nmap"), other]).is_empty());
}

#[test]
fn value_count_counts_distinct_values() {
    let e = engine(&[&format!(
        "{}---\n{}",
        base("scan", A, "nmap"),
        corr(
            "many targets",
            "  type: value_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 1m\n  condition:\n    field: CommandLine\n    gte: 3\n"
        )
    )]);
    let events = [
        run_at(0.0, "a", "nmap 10.0.0.1"),
        run_at(1.0, "a", "nmap 10.0.0.1"),
        run_at(2.0, "a", "nmap 10.0.0.2"),
        run_at(3.0, "a", "nmap 10.0.0.2"),
        run_at(4.0, "a", "nmap 10.0.0.3"),
    ];
    let lines = correlations(&e, &events);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["distinct_count"], 3);
    assert_eq!(lines[0]["count"], 5);
    assert_eq!(
        lines[0]["values"],
        serde_json::json!(["nmap 10.0.0.1", "nmap 10.0.0.2", "nmap 10.0.0.3"])
    );
    assert!(correlations(&e, &events[..4]).is_empty());
}

#[test]
fn temporal_needs_every_rule_in_any_order_and_ordered_in_order() {
    let rules = format!(
        "{}---\n{}---\n{}",
        base("recon", A, "whoami"),
        base("fetch", B, "curl"),
        base("run", C, "chmod")
    );
    let any = engine(&[&format!(
        "{rules}---\n{}",
        corr(
            "chain",
            "  type: temporal\n  rules: [recon, fetch, run]\n  group-by: [User]\n  timespan: 1m\n"
        )
    )]);
    let ordered = engine(&[&format!(
        "{rules}---\n{}",
        corr(
            "chain in order",
            "  type: temporal_ordered\n  rules: [recon, fetch, run]\n  group-by: [User]\n  timespan: 1m\n"
        )
    )]);
    let in_order = [
        run_at(0.0, "a", "whoami"),
        run_at(1.0, "a", "curl x"),
        run_at(2.0, "a", "chmod +x x"),
    ];
    let shuffled = [
        run_at(0.0, "a", "chmod +x x"),
        run_at(1.0, "a", "whoami"),
        run_at(2.0, "a", "curl x"),
    ];
    assert_eq!(correlations(&any, &in_order).len(), 1);
    assert_eq!(correlations(&any, &shuffled).len(), 1);
    assert_eq!(correlations(&ordered, &in_order).len(), 1);
    assert!(correlations(&ordered, &shuffled).is_empty());
    // Out of order, then in order: the later sequence completes it.
    let mut late = shuffled.to_vec();
    late.push(run_at(3.0, "a", "chmod +x y"));
    let lines = correlations(&ordered, &late);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["count"], 4);
    assert_eq!(lines[0]["firstTime"], time(0.0));
    // One event matching two steps is one step.
    let both = [
        run_at(0.0, "a", "whoami; curl x"),
        run_at(1.0, "a", "chmod"),
    ];
    assert!(correlations(&ordered, &both).is_empty());
    assert_eq!(correlations(&any, &both).len(), 1);
    // Not all within the timespan.
    let slow = [
        run_at(0.0, "a", "whoami"),
        run_at(30.0, "a", "curl x"),
        run_at(61.0, "a", "chmod +x x"),
    ];
    assert!(correlations(&any, &slow).is_empty());
    // Different users are different groups.
    let two = [
        run_at(0.0, "a", "whoami"),
        run_at(1.0, "b", "curl x"),
        run_at(2.0, "a", "chmod +x x"),
    ];
    assert!(correlations(&any, &two).is_empty());
}

#[test]
fn bounded_conditions_are_decided_when_the_window_ends() {
    let rules = base("scan", A, "nmap");
    let with = |condition: &str| {
        engine(&[&format!(
            "{rules}---\n{}",
            corr(
                "bounded",
                &format!(
                    "  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 10s\n  condition: {condition}\n"
                )
            )
        )])
    };
    // Two events in the window, then time passes (an event of another group shows it).
    let events = [
        run_at(0.0, "a", "nmap"),
        run_at(5.0, "a", "nmap"),
        run_at(20.0, "b", "nmap"),
    ];
    for (condition, fires) in [
        ("{lt: 3}", true),
        ("{lt: 2}", false),
        ("{lte: 2}", true),
        ("{eq: 2}", true),
        ("{eq: 3}", false),
        ("{neq: 2}", false),
        ("{neq: 1}", true),
        ("{gt: 1, lte: 2}", true),
        ("{gt: 2, lte: 5}", false),
    ] {
        let lines = correlations(&with(condition), &events);
        let a: Vec<&Value> = lines.iter().filter(|l| l["User"] == "a").collect();
        assert_eq!(a.len(), usize::from(fires), "{condition}: {lines:?}");
        if fires {
            // Decided at the window's end, reported with it.
            assert_eq!(a[0]["time"], time(10.0), "{condition}");
            assert_eq!(a[0]["count"], 2);
            assert_eq!(a[0]["lastTime"], time(5.0));
        }
    }
    // Before time has passed, nothing is decided.
    assert!(correlations(&with("{lt: 3}"), &events[..2]).is_empty());
    // The same group's next event after the window closes it first.
    let next = [
        run_at(0.0, "a", "nmap"),
        run_at(11.0, "a", "nmap"),
        run_at(30.0, "z", "nmap"),
    ];
    let lines = correlations(&with("{eq: 1}"), &next);
    let a: Vec<&Value> = lines.iter().filter(|l| l["User"] == "a").collect();
    assert_eq!(a.len(), 2, "{lines:?}");
}

#[test]
fn a_correlation_of_correlations_as_the_specification_writes_it() {
    // The specification's example, on our fields: several failures, then a success, by one
    // user.
    let text = format!(
        "title: Many failures followed by a success\nid: b180ead8-d58f-40b2-ae54-c8940995b9b6\nlevel: high\ncorrelation:\n  type: temporal_ordered\n  rules:\n    - many_failures\n    - success\n  group-by:\n    - User\n  timespan: 10m\n---\ntitle: Many failures\nid: a8418a5a-5fc4-46b5-b23b-6c73beb19d41\nname: many_failures\ncorrelation:\n  type: event_count\n  rules:\n    - failure\n  group-by:\n    - User\n  timespan: 10m\n  condition:\n    gte: 3\n---\n{}---\n{}",
        base("failure", A, "sudo -k"),
        base("success", B, "sudo -s")
    );
    let e = engine(&[&text]);
    let mut events: Vec<Event> = (0..3)
        .map(|i| run_at(f64::from(i), "mallory", "sudo -k"))
        .collect();
    events.push(run_at(5.0, "mallory", "sudo -s"));
    let lines = correlations(&e, &events);
    // The inner correlation only feeds the outer one.
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["rule_name"], "Many failures followed by a success");
    assert_eq!(lines[0]["User"], "mallory");
    // A success first does not count.
    let mut wrong = vec![run_at(0.0, "mallory", "sudo -s")];
    wrong.extend((1..4).map(|i| run_at(f64::from(i), "mallory", "sudo -k")));
    assert!(correlations(&e, &wrong).is_empty());
}

#[test]
fn aliases_group_different_fields_together() {
    // The parent's name in one rule's events, the process's name in the other's.
    let text = format!(
        "{}---\n{}---\n{}",
        base("spawn", A, "spawn"),
        base("child", B, "child"),
        corr(
            "aliased",
            "  type: temporal\n  rules: [spawn, child]\n  group-by: [program]\n  timespan: 1m\n  aliases:\n    program:\n      spawn: process_name\n      child: parent_process_name\n"
        )
    );
    let e = engine(&[&text]);
    let mut child = run_at(1.0, "a", "child");
    if let Event::Process(p) = &mut child {
        p.parent = Process {
            name: "tool".into(),
            ..p.parent.clone()
        };
    }
    let lines = correlations(&e, &[run_at(0.0, "a", "spawn"), child]);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["program"], "tool");
}

#[test]
fn generate_keeps_the_rules_own_alerts() {
    let with = |generate: &str| {
        engine(&[&format!(
            "{}---\n{}{generate}",
            base("scan", A, "nmap"),
            corr(
                "scans",
                "  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 1m\n  condition: {gte: 2}\n"
            )
        )])
    };
    let events = [run_at(0.0, "a", "nmap"), run_at(1.0, "a", "nmap")];
    let own = |e: &Engine| {
        lines_of(e, &events, false, Limits::default())
            .0
            .iter()
            .filter(|l| l["rule_id"] == A)
            .count()
    };
    assert_eq!(own(&with("")), 0);
    assert_eq!(own(&with("generate: true\n")), 2);
    assert_eq!(own(&with("  generate: true\n")), 2);
    assert_eq!(correlations(&with("generate: true\n"), &events).len(), 1);
}

#[test]
fn correlations_refer_to_rules_in_other_files_by_id() {
    let e = engine(&[
        &base("scan", A, "nmap"),
        &corr(
            "by id",
            &format!(
                "  type: event_count\n  rules: [{}]\n  group-by: [User]\n  timespan: 1m\n  condition: {{gte: 2}}\n",
                A.to_uppercase()
            ),
        ),
    ]);
    let events = [run_at(0.0, "a", "nmap"), run_at(1.0, "a", "nmap")];
    assert_eq!(correlations(&e, &events).len(), 1);
}

#[test]
fn the_limits_drop_and_count() {
    let e = engine(&[&format!(
        "{}---\n{}",
        base("scan", A, "nmap"),
        corr(
            "scans",
            "  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 1m\n  condition: {gte: 100}\n"
        )
    )]);
    let limits = Limits {
        max_groups: 2,
        max_entries: 5,
    };
    let mut step = Step::with_limits(Vec::new(), false, limits);
    // Three users: the third finds no room.
    for (i, u) in ["a", "b", "c"].iter().enumerate() {
        step.run(&e, &run_at(i as f64 * 0.1, u, "nmap")).unwrap();
    }
    assert_eq!(step.counts().correlation_groups_dropped, 1);
    // Five events are remembered at most: two already, three more fit, then drops.
    for i in 0..6 {
        step.run(&e, &run_at(1.0 + f64::from(i) * 0.1, "a", "nmap"))
            .unwrap();
    }
    assert_eq!(step.counts().correlation_values_dropped, 3);
    // Once the windows run out, room comes back.
    step.run(&e, &run_at(200.0, "c", "nmap")).unwrap();
    assert_eq!(step.counts().correlation_groups_dropped, 1);
    step.run(&e, &run_at(201.0, "d", "nmap")).unwrap();
    assert_eq!(step.counts().correlation_groups_dropped, 1);
    // An event older than its window by the time it comes is late.
    step.run(&e, &run_at(100.0, "a", "nmap")).unwrap();
    assert_eq!(step.counts().correlation_late, 1);
}

#[test]
fn a_reload_keeps_the_windows_of_unchanged_correlations() {
    let text = format!(
        "{}---\n{}",
        base("scan", A, "nmap"),
        corr(
            "scans",
            "  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 1m\n  condition: {gte: 3}\n"
        )
    );
    let first = engine(&[&text]);
    let second = engine(&[&text]);
    let mut step = Step::new(Vec::new(), false);
    step.run(&first, &run_at(0.0, "a", "nmap")).unwrap();
    step.run(&first, &run_at(1.0, "a", "nmap")).unwrap();
    step.run(&second, &run_at(2.0, "a", "nmap")).unwrap();
    assert_eq!(step.counts().alerts, 1);
    // A changed definition starts afresh.
    let changed = engine(&[&text.replace("1m", "2m")]);
    step.run(&second, &run_at(3.0, "a", "nmap")).unwrap();
    step.run(&second, &run_at(4.0, "a", "nmap")).unwrap();
    step.run(&changed, &run_at(5.0, "a", "nmap")).unwrap();
    assert_eq!(step.counts().alerts, 1);
}

#[test]
fn an_allowlist_entry_naming_a_correlation_keeps_events_out_of_it() {
    let set = set_of(&[&format!(
        "{}---\n{}",
        base("scan", A, "nmap"),
        corr(
            "scans",
            "  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 1m\n  condition: {gte: 2}\n"
        )
    )]);
    let allow = Allowlist::new(vec![
        AllowEntry::new(&["scans"], &[("user", &["scanner"])]).unwrap(),
    ]);
    let e = Engine::new(set, allow);
    let kept = [
        run_at(0.0, "scanner", "nmap"),
        run_at(1.0, "scanner", "nmap"),
    ];
    assert!(correlations(&e, &kept).is_empty());
    let counted = [run_at(0.0, "eve", "nmap"), run_at(1.0, "eve", "nmap")];
    assert_eq!(correlations(&e, &counted).len(), 1);
}

#[test]
fn replay_of_a_recording_raises_what_the_live_step_raised() {
    let text = format!(
        "{}---\n{}---\n{}---\n{}",
        base("scan", A, "nmap"),
        base("fetch", B, "curl"),
        corr(
            "scans",
            "  type: value_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 10s\n  condition: {field: CommandLine, gte: 3}\n"
        ),
        corr(
            "quiet",
            "  type: event_count\n  rules: [fetch]\n  group-by: [User]\n  timespan: 5s\n  condition: {lt: 2}\n"
        )
    );
    let e = engine(&[&text]);
    let mut events = Vec::new();
    for i in 0..40 {
        let user = ["a", "b", "c"][i % 3];
        let cmd = match i % 4 {
            0 => format!("nmap 10.0.0.{}", i % 7),
            1 => "curl x".to_string(),
            2 => "ls".to_string(),
            _ => format!("nmap 10.0.1.{}", i % 5),
        };
        events.push(run_at(i as f64 * 0.7, user, &cmd));
    }
    let (live, live_text) = lines_of(&e, &events, true, Limits::default());
    let fired = live
        .iter()
        .filter(|l| l.get("correlation_type").is_some())
        .count();
    assert!(fired >= 4, "{live_text}");
    // The recording, replayed, gives the same lines, correlation lines included.
    let replayed: Vec<Event> = Replay::new(live_text.as_bytes())
        .map(Result::unwrap)
        .collect();
    assert_eq!(replayed.len(), events.len());
    let (_, again) = lines_of(&e, &replayed, true, Limits::default());
    assert_eq!(again, live_text);
}

/// Loads `text` as `rules/x.yml`, expecting it to be refused: the errors.
fn refused(text: &str) -> String {
    RuleSet::from_str("rules/x.yml", text)
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

#[test]
fn what_the_sensor_cannot_do_is_refused_with_file_line_and_reason() {
    let rule = base("scan", A, "nmap");
    let cases = [
        (
            "  type: event_count\n  rules: [nope]\n  group-by: [User]\n  timespan: 1m\n  condition: {gte: 2}\n",
            "rules/x.yml:12: correlation 'T': refers to 'nope', which names no loaded rule or correlation (by id or name)",
        ),
        (
            "  type: event_count\n  rules: [scan]\n  group-by: [TargetObject]\n  timespan: 1m\n  condition: {gte: 2}\n",
            "rules/x.yml:12: correlation 'T': group-by field 'TargetObject' is not a field of the process_creation events of rule 'scan'",
        ),
        (
            "  type: event_count\n  rules: [scan]\n  group-by: [Hashes]\n  timespan: 1m\n  condition: {gte: 2}\n",
            "rules/x.yml:12: correlation 'T': group-by field 'Hashes' of rule 'scan' is a field no sensor reports",
        ),
        (
            "  type: value_sum\n  rules: [scan]\n  group-by: [User]\n  timespan: 1m\n  condition: {field: ProcessId, gt: 2}\n",
            "rules/x.yml:15: correlation type 'value_sum' is not supported (event_count, value_count, temporal, temporal_ordered)",
        ),
        (
            "  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 5 minutes\n  condition: {gte: 2}\n",
            "rules/x.yml:18: timespan '5 minutes' is not a positive number followed by s, m, h, d, w, M or y (e.g. '5m')",
        ),
        (
            "  type: value_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 1m\n  condition: {gte: 2}\n",
            "rules/x.yml:19: a value_count correlation needs the 'field' whose values it counts in its condition",
        ),
        (
            "  type: temporal\n  rules: [scan]\n  group-by: [User]\n  timespan: 1m\n  condition: scan and not other\n",
            "rules/x.yml:19: extended correlation conditions (a boolean expression over rules) are not supported: write the rules under 'rules'",
        ),
        (
            "  type: event_count\n  rules: [scan]\n  group-by: [count]\n  timespan: 1m\n  condition: {gte: 2}\n",
            "rules/x.yml:17: group-by field 'count' takes the name of a key every alert line has itself",
        ),
        (
            "  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 1m\n  condition: {gte: 20000}\n",
            "rules/x.yml:19: condition 'gte' must be between 0 and 10000, not 20000",
        ),
        (
            "  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 1m\n",
            "rules/x.yml:15: correlation type 'event_count' needs a 'condition'",
        ),
    ];
    let got: Vec<String> = cases
        .iter()
        .map(|(body, _)| {
            refused(&format!(
                "{rule}---\ntitle: T\nlevel: high\ncorrelation:\n{body}"
            ))
        })
        .collect();
    let want: Vec<&str> = cases.iter().map(|(_, w)| *w).collect();
    assert_eq!(got, want);
    // A cycle.
    let cycle = "title: X\nname: x\ncorrelation:\n  type: temporal\n  rules: [y]\n  timespan: 1m\n---\ntitle: Y\nname: y\ncorrelation:\n  type: temporal\n  rules: [x]\n  timespan: 1m\n";
    let e = refused(cycle);
    assert!(
        e.contains("rules/x.yml:1: correlation 'X': refers to itself"),
        "{e}"
    );
    // Skipped with a warning under --skip-invalid, the rest kept.
    let loaded = RuleSet::from_sources(
        [(
            "rules/x.yml",
            format!("{rule}---\ntitle: T\ncorrelation:\n  type: event_count\n  rules: [nope]\n  timespan: 1m\n  condition: {{gte: 2}}\n").as_str(),
        )],
        LoadOptions { skip_invalid: true },
    )
    .unwrap();
    assert_eq!(loaded.rules.len(), 1);
    assert!(loaded.rules.correlations().is_empty());
    assert_eq!(loaded.warnings.len(), 1);
}

#[test]
fn correlation_test_cases_run() {
    let tests = r#"tunnelwatch:
  message: $User$ ran $count$ scans from $firstTime$
  tests:
    - name: three scans
      alert: true
      count: 3
      message: alice ran 3 scans from 2027-01-01T00:00:00.000000Z
      events:
        - repeat: 3
          event:
            process: nmap 10.0.0.{n}
            process_path: /usr/bin/nmap
            user: alice
    - name: too slow
      alert: false
      events:
        - repeat: 3
          every: 6s
          event:
            process: nmap
            process_path: /usr/bin/nmap
            user: alice
    - name: wrong
      alert: true
      events:
        - process: ls
          process_path: /usr/bin/ls
          user: alice
"#;
    let text = format!(
        "{}---\ntitle: many scans\nid: {C}\ncorrelation:\n  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 10s\n  condition: {{gte: 3}}\n{tests}",
        base("scan", A, "nmap")
    );
    let report = run_tests(&set_of(&[&text]));
    let failures: Vec<String> = report.failures().map(|f| f.to_string()).collect();
    assert_eq!(
        failures,
        ["rules/0.yml:42: test 'wrong': expected the correlation to fire, it did not (1 events)"]
    );
    assert_eq!(report.tests(), 3);
}

#[test]
fn sigma_time_is_the_events_own() {
    // Events an hour apart in the recording are an hour apart to the windows, however fast
    // they are handed in.
    let e = engine(&[&format!(
        "{}---\n{}",
        base("scan", A, "nmap"),
        corr(
            "scans",
            "  type: event_count\n  rules: [scan]\n  group-by: [User]\n  timespan: 30m\n  condition: {gte: 2}\n"
        )
    )]);
    let events = [run_at(0.0, "a", "nmap"), run_at(3600.0, "a", "nmap")];
    assert!(correlations(&e, &events).is_empty());
}
