//! Folded repeats: the first alert of a rule for a process and key prints at once, the
//! repeats within the window are one summary line with `count`, `firstTime` and `lastTime`;
//! nothing is dropped, `--all-events` is not folded, `replay` folds as the live step did.

mod common;

use std::time::Duration;

use common::*;
use tunnelwatch_engine::{
    event::Event,
    fold::MAX_WINDOWS,
    replay::{LineKind, Replay},
    step::{Counts, Step},
};

const MINUTE: Duration = Duration::from_secs(60);

fn at(e: Event, secs: u64) -> Event {
    let mut e = e;
    let t = t0() + Duration::from_secs(secs);
    match &mut e {
        Event::Process(p) => p.time = t,
        Event::Dns(d) => d.time = t,
        Event::Connection(c) => c.time = t,
    }
    e
}

/// A query for `name` from the ngrok agent, pid `pid`, at `secs` after t0.
fn agent_query(name: &str, pid: u32, secs: u64) -> Event {
    let mut e = at(dns_query(name), secs);
    let p = e.process_mut();
    p.pid = pid;
    p.path = "/usr/local/bin/ngrok".into();
    p.name = "ngrok".into();
    e
}

fn lines(step: &Step<Vec<u8>>) -> Vec<serde_json::Value> {
    String::from_utf8(step.get_ref().clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The time of a line, `secs` after t0.
fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_micros(t0() + Duration::from_secs(secs)).to_string()
}

#[test]
fn a_reconnect_storm_is_one_alert_and_one_summary_with_the_count() {
    let engine = builtin_engine();
    let mut step = Step::new(Vec::new(), false).with_fold_window(MINUTE);
    // The v2 agent's start: four queries; then it reconnects (new pid) twice.
    let storm = [
        agent_query("tunnel.us.ngrok.com", 100, 0),
        agent_query("tunnel.us.ngrok.com", 100, 0),
        agent_query("tunnel.eu.ngrok.com", 100, 1),
        agent_query("update.ngrok.com", 100, 2),
        agent_query("tunnel.us.ngrok.com", 200, 20),
        agent_query("tunnel.us.ngrok.com", 300, 45),
    ];
    for e in &storm {
        step.run(&engine, e).unwrap();
    }
    assert_eq!(lines(&step).len(), 1, "only the first alert so far");
    // The window ends a minute after the first alert: the next event's time closes it
    // (before its own lines), or the clock, or the end.
    step.tick(t0() + Duration::from_secs(59)).unwrap();
    assert_eq!(lines(&step).len(), 1);
    step.tick(t0() + MINUTE).unwrap();
    let out = lines(&step);
    assert_eq!(out.len(), 2);
    let (first, summary) = (&out[0], &out[1]);
    assert_eq!(first["kind"], "alert");
    assert_eq!(first["rule_id"], NETWORK);
    assert_eq!(summary["kind"], "summary");
    assert_eq!(summary["rule_id"], NETWORK);
    assert_eq!(summary["fold_key"], "ngrok.com");
    assert_eq!(summary["count"], 5);
    assert_eq!(summary["firstTime"], rfc3339(0));
    assert_eq!(summary["lastTime"], rfc3339(45));
    assert_eq!(summary["time"], rfc3339(45));
    // The summary repeats the first alert's fields.
    assert_eq!(summary["message"], first["message"]);
    assert_eq!(summary["query"], "tunnel.us.ngrok.com");
    assert_eq!(summary["process_id"], 100);
    // The count adds up: one printed, five folded, six raised.
    assert_eq!(
        step.counts(),
        Counts {
            lines: 2,
            alerts: 1,
            summaries: 1,
            folded: 5,
            ..Counts::default()
        }
    );
}

#[test]
fn keys_apart_are_not_folded_together_and_a_window_reopens() {
    let engine = builtin_engine();
    let mut step = Step::new(Vec::new(), false).with_fold_window(MINUTE);
    let ngrok = |cmd: &str, secs| at(exec("/usr/local/bin/ngrok", cmd), secs);
    step.run(&engine, &ngrok("ngrok http 8080", 0)).unwrap();
    step.run(&engine, &ngrok("ngrok http 8080", 10)).unwrap();
    // Another command line, another user, another domain: their own first alerts.
    step.run(&engine, &ngrok("ngrok http 9090", 11)).unwrap();
    let mut other_user = ngrok("ngrok http 8080", 12);
    other_user.process_mut().user_id = "0".into();
    step.run(&engine, &other_user).unwrap();
    step.run(&engine, &agent_query("x.ngrok.io", 5, 13))
        .unwrap();
    step.run(&engine, &agent_query("x.ngrok.app", 5, 14))
        .unwrap();
    assert_eq!(lines(&step).len(), 5);
    // Past the first window: its summary, then the event's own alert opens a new window.
    step.run(&engine, &ngrok("ngrok http 8080", 61)).unwrap();
    let out = lines(&step);
    let kinds: Vec<&str> = out.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "alert", "alert", "alert", "alert", "alert", "summary", "alert"
        ]
    );
    assert_eq!(out[5]["count"], 1);
    assert_eq!(out[5]["fold_key"], "ngrok http 8080");
    assert_eq!(out[6]["time"], rfc3339(61));
    // The end closes every window; those without repeats write nothing.
    step.finish().unwrap();
    assert_eq!(lines(&step).len(), 7);
}

#[test]
fn all_events_and_a_zero_window_fold_nothing() {
    let engine = builtin_engine();
    for mut step in [
        Step::new(Vec::new(), true).with_fold_window(MINUTE),
        Step::new(Vec::new(), false).with_fold_window(Duration::ZERO),
        Step::new(Vec::new(), false),
    ] {
        for secs in 0..5 {
            step.run(&engine, &agent_query("tunnel.us.ngrok.com", 7, secs))
                .unwrap();
        }
        step.finish().unwrap();
        let out = lines(&step);
        assert_eq!(out.len(), 5);
        assert!(out.iter().all(|l| l["kind"] == "alert"));
        assert_eq!(step.counts().folded, 0);
    }
}

#[test]
fn windows_are_bounded_and_what_does_not_fit_prints() {
    let engine = builtin_engine();
    let mut step = Step::new(Vec::new(), false).with_fold_window(MINUTE);
    let n = MAX_WINDOWS + 10;
    for i in 0..n {
        let e = at(exec("/usr/local/bin/ngrok", &format!("ngrok http {i}")), 0);
        step.run(&engine, &e).unwrap();
        step.run(&engine, &e).unwrap();
    }
    step.finish().unwrap();
    let c = step.counts();
    // Every alert is a line or part of a count.
    assert_eq!(c.alerts + c.folded, 2 * n as u64);
    assert_eq!(c.fold_untracked, 20);
    assert_eq!(c.summaries, MAX_WINDOWS as u64);
    assert_eq!(c.alerts, (MAX_WINDOWS + 20) as u64);
}

#[test]
fn replay_reads_summary_lines_back_and_folds_them_again() {
    let engine = builtin_engine();
    let mut live = Step::new(Vec::new(), false).with_fold_window(MINUTE);
    for (i, secs) in [0, 5, 9, 30, 70, 71].into_iter().enumerate() {
        live.run(
            &engine,
            &agent_query("tunnel.us.ngrok.com", 100 + i as u32, secs),
        )
        .unwrap();
    }
    live.finish().unwrap();
    let recorded = live.get_ref().clone();
    let text = String::from_utf8(recorded.clone()).unwrap();
    assert_eq!(text.lines().count(), 4, "{text}");

    // As recorded lines: two summaries, standing for 3 and 1 alerts.
    let mut replay = Replay::new(&recorded[..]);
    let mut kinds = Vec::new();
    while let Some(rec) = replay.next_recorded() {
        kinds.push(match rec.unwrap().kind {
            LineKind::Summary { count, .. } => format!("summary {count}"),
            LineKind::Alert { .. } => "alert".into(),
            LineKind::Event => "event".into(),
            LineKind::Correlation { .. } => "correlation".into(),
        });
    }
    assert_eq!(kinds, ["alert", "summary 3", "alert", "summary 1"]);
    // As events: the summaries are skipped and counted.
    let mut events = Replay::new(&recorded[..]);
    assert_eq!(events.by_ref().count(), 2);
    assert_eq!(events.summaries(), (2, 4));

    // Through the step again: the same lines, byte for byte.
    let mut again = Step::new(Vec::new(), false).with_fold_window(MINUTE);
    let mut replay = Replay::new(&recorded[..]);
    while let Some(rec) = replay.next_recorded() {
        let rec = rec.unwrap();
        let event = rec
            .event
            .expect("every line of this recording carries its event");
        match rec.kind {
            LineKind::Summary {
                count, first, last, ..
            } => again
                .run_summary(&engine, &event, count, (first, last))
                .unwrap(),
            _ => again.run(&engine, &event).unwrap(),
        }
    }
    again.finish().unwrap();
    assert_eq!(String::from_utf8(again.get_ref().clone()).unwrap(), text);
}
