//! The mapping from ETW fields to engine events, end to end through the enricher and the
//! pipeline: paths, users, parents, renamed images, the process table's life cycle, DNS
//! processes, allowlists, and the PE fixtures.

mod common;

use std::{fs, time::Duration};

use common::*;
use serde_json::Value;
use tunnelwatch_engine::{config::Config, event::Event};
use tunnelwatch_etw::{
    enrich::DNS_HOLD,
    fields::{Fields, RawEvent, Value as F},
    pe_version::{VersionCache, original_file_name, original_file_name_of_file},
    process_table::{EXITED_GRACE, PathSource},
};

fn process_events(host: TableHost, raws: &[RawEvent]) -> Vec<Event> {
    let mut e = enricher(host);
    let mut out = Vec::new();
    for r in rundown().iter().chain(raws) {
        e.handle(r, &mut out);
    }
    out
}

fn only_process(events: &[Event]) -> &tunnelwatch_engine::event::ProcessEvent {
    match events {
        [Event::Process(p)] => p,
        other => panic!("one process event expected: {other:?}"),
    }
}

#[test]
fn pe_fixtures_give_their_original_file_name() {
    assert_eq!(
        original_file_name_of_file(&fixture("with-version.exe")).as_deref(),
        Some("ngrok.exe")
    );
    assert_eq!(original_file_name_of_file(&fixture("no-version.exe")), None);
    // From memory too, and cut short: nothing, no panic.
    let bytes = fs::read(fixture("with-version.exe")).unwrap();
    assert_eq!(original_file_name(&bytes[..]).as_deref(), Some("ngrok.exe"));
    for cut in [0, 2, 64, 300, 1024, 4100, bytes.len() - 1] {
        let _ = original_file_name(&bytes[..cut]);
    }
    assert_eq!(original_file_name(&bytes[..1024]), None);
    assert_eq!(original_file_name_of_file(&fixture("missing.exe")), None);
}

#[test]
fn corrupt_images_never_panic() {
    // Every byte of the fixture, in turn, set to 0xFF and to 0x00: the parser answers
    // something or nothing, and returns.
    let bytes = fs::read(fixture("with-version.exe")).unwrap();
    let mut found = 0;
    for i in 0..bytes.len() {
        for v in [0xFF, 0x00] {
            let mut b = bytes.clone();
            b[i] = v;
            if original_file_name(&b[..]).as_deref() == Some("ngrok.exe") {
                found += 1;
            }
        }
    }
    // Most single-byte changes (padding, code, other strings) leave the answer intact.
    assert!(found > bytes.len(), "{found}");
}

#[test]
fn version_cache_reads_an_image_once_until_it_changes() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("etw-version-cache");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("tool.exe");
    fs::copy(fixture("with-version.exe"), &exe).unwrap();
    let mut cache = VersionCache::default();
    for _ in 0..3 {
        assert_eq!(cache.get(&exe).as_deref(), Some("ngrok.exe"));
    }
    assert_eq!(cache.reads(), 1);
    // Replaced in place by another image: read again.
    fs::copy(fixture("no-version.exe"), &exe).unwrap();
    let f = fs::File::options().write(true).open(&exe).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    assert_eq!(cache.get(&exe), None);
    assert_eq!(cache.reads(), 2);
    assert_eq!(cache.get(&dir), None, "a directory is no image");
    assert_eq!(cache.get(&dir.join("gone.exe")), None);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_renamed_ngrok_keeps_its_original_file_name() {
    // ngrok.exe copied to %TEMP%\svchost.exe: the name lies, the version resource does not.
    // (The Windows seed matches process_name only, so it does not fire; a rule on
    // original_file_name can: the line is an alert then, an event otherwise.)
    let mut p = pipeline(true);
    for e in rundown() {
        p.handle(&e).unwrap();
    }
    p.handle(&kernel_process_start(
        6000,
        4000,
        r"\Device\HarddiskVolume3\Users\a\AppData\Local\Temp\svchost.exe",
        T0,
    ))
    .unwrap();
    p.handle(&kernel_trace(
        1,
        6000,
        4000,
        USER_SID,
        "svchost.exe",
        "svchost.exe http 8080",
        T0,
    ))
    .unwrap();
    let lines = take_lines(&mut p);
    assert!(!lines.is_empty());
    let v: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_ne!(v["rule_id"], "e2549f2c-0aef-408a-b0c1-e0f270623436");
    assert_eq!(v["process_name"], "svchost.exe");
    assert_eq!(
        v["process_path"],
        r"C:\Users\a\AppData\Local\Temp\svchost.exe"
    );
    assert_eq!(v["original_file_name"], "ngrok.exe");
}

#[test]
fn the_path_falls_back_to_the_live_process_then_the_command_line() {
    // No Kernel-Process event, a relative command line: the live process names the image.
    let mut host = table_host();
    host.live
        .insert(5832, r"C:\Users\a\Downloads\ngrok.exe".into());
    let events = process_events(
        host,
        &[kernel_trace(
            1,
            5832,
            4000,
            USER_SID,
            "ngrok.exe",
            "ngrok http 8080",
            T0,
        )],
    );
    let p = only_process(&events);
    assert_eq!(&*p.process.path, r"C:\Users\a\Downloads\ngrok.exe");
    assert_eq!(&*p.process.name, "ngrok.exe");
    assert_eq!(&*p.process.original_file_name, "ngrok.exe");

    // The live pid now runs another image (it exited and the pid was reused): not used; the
    // command line's absolute path is.
    let mut host = table_host();
    host.live.insert(5832, r"C:\Windows\notepad.exe".into());
    let events = process_events(
        host,
        &[kernel_trace(
            1,
            5832,
            4000,
            USER_SID,
            "ngrok.exe",
            r#""D:\tools\ngrok.exe" tcp 22"#,
            T0,
        )],
    );
    assert_eq!(&*only_process(&events).process.path, r"D:\tools\ngrok.exe");

    // Nothing names the path: the name is the kernel's ImageFileName, the path unknown.
    let events = process_events(
        table_host(),
        &[kernel_trace(
            1,
            5832,
            4000,
            USER_SID,
            "ngrok.exe",
            "ngrok http 80",
            T0,
        )],
    );
    let p = only_process(&events);
    assert_eq!(
        (p.process.name.as_ref(), p.process.path.as_ref()),
        ("ngrok.exe", "")
    );
    assert_eq!(&*p.process.original_file_name, "");
}

#[test]
fn a_late_kernel_process_event_corrects_the_table() {
    let mut e = enricher(table_host());
    let mut out = Vec::new();
    e.handle(
        &kernel_trace(1, 7000, 4000, USER_SID, "ngrok.exe", "ngrok http 80", T0),
        &mut out,
    );
    assert_eq!(
        e.procs().get(7000).unwrap().path_source,
        PathSource::Unknown
    );
    e.handle(
        &kernel_process_start(7000, 4000, r"\Device\HarddiskVolume10\bin\ngrok.exe", at(0)),
        &mut out,
    );
    let p = e.procs().get(7000).unwrap();
    assert_eq!(&*p.process.path, r"D:\bin\ngrok.exe");
    assert_eq!(p.path_source, PathSource::Etw);
    assert_eq!(
        &*p.process.command_line, "ngrok http 80",
        "kernel data kept"
    );
    // A later DNS query names the corrected path.
    out.clear();
    e.handle(&dns_3006(7000, "a.ngrok.io", 1, at(1)), &mut out);
    let Event::Dns(d) = &out[0] else { panic!() };
    assert_eq!(&*d.process.as_ref().unwrap().path, r"D:\bin\ngrok.exe");
}

#[test]
fn unknown_devices_are_reported_as_they_are() {
    let events = process_events(
        table_host(),
        &[
            kernel_process_start(
                7100,
                4000,
                r"\Device\HarddiskVolumeShadowCopy2\x\ngrok.exe",
                T0,
            ),
            kernel_trace(1, 7100, 4000, USER_SID, "ngrok.exe", "ngrok http 80", T0),
        ],
    );
    assert_eq!(
        &*only_process(&events).process.path,
        r"\Device\HarddiskVolumeShadowCopy2\x\ngrok.exe"
    );
}

#[test]
fn users_come_from_the_sid_and_are_looked_up_once() {
    let mut e = enricher(table_host());
    let mut out = Vec::new();
    for (i, sid) in [
        USER_SID,
        USER_SID,
        SYSTEM_SID,
        USER_SID,
        "S-1-5-21-9-9-9-1500",
    ]
    .iter()
    .enumerate()
    {
        e.handle(
            &kernel_trace(1, 8000 + i as u32, 4, sid, "x.exe", "x.exe", at(i as i64)),
            &mut out,
        );
    }
    let users: Vec<(String, String)> = out
        .iter()
        .map(|ev| match ev {
            Event::Process(p) => (p.process.user.to_string(), p.process.user_id.to_string()),
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        users,
        [
            (r"CONTOSO\a".to_string(), USER_SID.to_string()),
            (r"CONTOSO\a".to_string(), USER_SID.to_string()),
            (r"NT AUTHORITY\SYSTEM".to_string(), SYSTEM_SID.to_string()),
            (r"CONTOSO\a".to_string(), USER_SID.to_string()),
            // A SID no account answers to (a deleted user): the SID alone.
            (String::new(), "S-1-5-21-9-9-9-1500".to_string()),
        ]
    );
    assert_eq!(e.host().account_lookups, 3);
}

#[test]
fn an_unknown_parent_is_named_by_its_pid_only() {
    let events = process_events(
        table_host(),
        &[kernel_trace(
            1,
            5832,
            9999,
            USER_SID,
            "ngrok.exe",
            "ngrok http 80",
            T0,
        )],
    );
    let p = only_process(&events);
    assert_eq!(p.parent.pid, 9999);
    assert_eq!((p.parent.name.as_ref(), p.parent.path.as_ref()), ("", ""));
    // Parent pid reused by a younger process: not the parent.
    let events = process_events(
        table_host(),
        &[
            kernel_trace(1, 300, 4, SYSTEM_SID, "late.exe", "late.exe", at(10)),
            kernel_trace(1, 5832, 300, USER_SID, "ngrok.exe", "ngrok http 80", T0),
        ],
    );
    match &events[1] {
        Event::Process(p) => assert_eq!((p.parent.pid, p.parent.name.as_ref()), (300, "")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dns_processes_come_from_the_table_or_the_live_process() {
    let mut host = table_host();
    host.live
        .insert(6100, r"C:\Program Files\x\agent.exe".into());
    let mut e = enricher(host);
    let mut out = Vec::new();
    for r in rundown() {
        e.handle(&r, &mut out);
    }
    assert!(out.is_empty(), "DCStart only fills the table");
    assert_eq!(e.procs().len(), 2);
    // cmd.exe, known from the rundown.
    e.handle(&dns_3006(4000, "x.ngrok.io", 1, T0), &mut out);
    // An unknown pid: it waits for its process's Start, which does not come; then it is
    // named from the live process.
    e.handle(&dns_3006(6100, "y.ngrok.io", 28, T0), &mut out);
    assert_eq!(e.held(), 1);
    // pid 0: nobody.
    e.handle(&dns_3006(0, "z.ngrok.io", 1, T0), &mut out);
    e.tick(T0 + DNS_HOLD - 1, &mut out);
    assert_eq!(out.len(), 2, "still waiting");
    e.tick(T0 + DNS_HOLD, &mut out);
    assert_eq!(e.held(), 0);
    assert_eq!((e.counters.dns_held, e.counters.dns_unmatched), (1, 1));
    let procs: Vec<_> = out
        .iter()
        .map(|ev| match ev {
            Event::Dns(d) => d.process.as_ref().map(|p| {
                (
                    p.pid,
                    p.name.to_string(),
                    p.command_line.to_string(),
                    p.user.to_string(),
                )
            }),
            _ => panic!(),
        })
        .collect();
    assert_eq!(
        procs,
        [
            Some((
                4000,
                "cmd.exe".into(),
                r#""C:\Windows\system32\cmd.exe""#.into(),
                r"CONTOSO\a".into()
            )),
            None,
            Some((6100, "agent.exe".into(), String::new(), String::new())),
        ]
    );
}

#[test]
fn exited_processes_name_late_dns_events_then_are_forgotten() {
    let mut e = enricher(table_host());
    let mut out = Vec::new();
    e.handle(
        &kernel_trace(
            1,
            5832,
            4000,
            USER_SID,
            "ngrok.exe",
            r"C:\t\ngrok.exe http 1",
            T0,
        ),
        &mut out,
    );
    e.handle(&kernel_process_stop(5832, at(1)), &mut out);
    // The kernel's End for the same process: no change.
    e.handle(
        &kernel_trace(2, 5832, 4000, USER_SID, "ngrok.exe", "", at(1)),
        &mut out,
    );
    assert_eq!(e.procs().get(5832).unwrap().exited, Some(at(1)));
    out.clear();
    e.handle(&dns_3008(5832, "x.ngrok.io", 1, 9003, "", at(2)), &mut out);
    let Event::Dns(d) = &out[0] else { panic!() };
    assert_eq!(&*d.process.as_ref().unwrap().name, "ngrok.exe");
    assert_eq!(d.reply_code, "NXDomain");
    e.tick(at(1) + EXITED_GRACE + 1, &mut out);
    assert!(e.procs().get(5832).is_none());
    assert!(e.procs().get(4000).is_none(), "cmd.exe never ran here");
}

#[test]
fn events_without_the_needed_properties_are_counted_not_mapped() {
    let mut e = enricher(table_host());
    let mut out = Vec::new();
    let mut bad = kernel_trace(1, 1, 0, USER_SID, "x.exe", "x", T0);
    bad.fields = Fields::new().with("ImageFileName", F::Str("x.exe".into()));
    e.handle(&bad, &mut out);
    let mut no_name = dns_3006(1, "x", 1, T0);
    no_name.fields = Fields::new().with("QueryType", F::U32(1));
    e.handle(&no_name, &mut out);
    // pid 1 is not known: the event waits for its process, then is found unmappable.
    assert_eq!(e.held(), 1);
    e.flush(&mut out);
    assert!(out.is_empty());
    assert_eq!(e.counters.unmapped, 2);
    assert_eq!(e.counters.records, 2);
}

#[test]
fn the_configured_allowlist_applies_on_windows_too() {
    let config = Config::from_str(
        "c.yml",
        "allowlist:\n  - rules: [e2549f2c-0aef-408a-b0c1-e0f270623436]\n    parent_process_name: [cmd.exe]\n",
    )
    .unwrap();
    let mut p = pipeline_with(table_host(), &config, false);
    for e in rundown() {
        p.handle(&e).unwrap();
    }
    p.handle(&kernel_trace(
        1,
        5832,
        4000,
        USER_SID,
        "ngrok.exe",
        r"C:\Users\a\Downloads\ngrok.exe http 8080",
        T0,
    ))
    .unwrap();
    let seed = r#""rule_id":"e2549f2c-0aef-408a-b0c1-e0f270623436""#;
    assert!(
        !take_lines(&mut p).iter().any(|l| l.contains(seed)),
        "allowlisted"
    );
    assert_eq!(p.engine().suppressed(), 1);
    // Another parent is not covered.
    p.handle(&kernel_trace(
        1,
        5900,
        4,
        SYSTEM_SID,
        "ngrok.exe",
        r"C:\Users\a\Downloads\ngrok.exe tcp 22",
        at(1),
    ))
    .unwrap();
    let lines: Vec<String> = take_lines(&mut p)
        .into_iter()
        .filter(|l| l.contains(seed))
        .collect();
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains(r#""user":"NT AUTHORITY\\SYSTEM""#),
        "{}",
        lines[0]
    );
}
