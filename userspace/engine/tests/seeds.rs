//! The shipped rules against the seeds' intent: what must fire and what must not.

mod common;

use common::*;
use tunnelwatch_engine::event::Platform;

#[test]
fn linux_rule_fires_on_ngrok_tunnels() {
    let engine = builtin_engine();
    for (path, cmd) in [
        ("/usr/local/bin/ngrok", "/usr/local/bin/ngrok http 8080"),
        ("/usr/local/bin/ngrok", "ngrok tcp 22"),
        ("/usr/local/bin/ngrok", "ngrok start --all"),
        ("/usr/local/bin/ngrok", "ngrok config add-authtoken X"),
        ("/opt/ngrok", "ngrok --config /etc/ngrok.yml http 80"),
        ("/usr/local/bin/ngrok", "NGROK HTTP 8080"),
        ("/usr/local/bin/NGROK", "NGROK TCP 22"),
        // The SPL's `*start*` also matches inside words; kept on purpose.
        ("/usr/local/bin/ngrok", "ngrok service restart"),
    ] {
        assert_eq!(fired(&engine, &exec(path, cmd)), [LINUX], "{cmd}");
    }
}

#[test]
fn linux_rule_ignores_other_commands_and_processes() {
    let engine = builtin_engine();
    for (path, cmd) in [
        ("/usr/local/bin/ngrok", "ngrok version"),
        ("/usr/local/bin/ngrok", "ngrok update"),
        ("/usr/bin/ngrokker", "/usr/bin/ngrokker http"),
        ("/usr/bin/grep", "grep ngrok http.log"),
        (
            "/usr/bin/curl",
            "curl https://ngrok.com/download --config x",
        ),
        ("/usr/local/bin/ngrok.sh", "ngrok.sh http 80"),
    ] {
        assert!(fired(&engine, &exec(path, cmd)).is_empty(), "{path} {cmd}");
    }
}

#[test]
fn windows_rule_fires_on_windows_only() {
    let engine = builtin_engine();
    let win = exec_on(
        Platform::Windows,
        r"C:\Users\bob\Downloads\ngrok.exe",
        r"ngrok.exe http 3389",
    );
    assert_eq!(fired(&engine, &win), [WINDOWS]);
    let upper = exec_on(
        Platform::Windows,
        r"C:\Users\bob\Downloads\NGROK.EXE",
        r"NGROK.EXE TCP 3389",
    );
    assert_eq!(fired(&engine, &upper), [WINDOWS]);
    // Not `ngrok` (the Linux rule's name) on Windows, not `ngrok.exe` on Linux.
    let win_plain = exec_on(Platform::Windows, r"C:\tools\ngrok", "ngrok http 80");
    assert!(fired(&engine, &win_plain).is_empty());
    let linux_exe = exec("/tmp/ngrok.exe", "ngrok.exe http 80");
    assert!(fired(&engine, &linux_exe).is_empty());
    assert!(
        fired(
            &engine,
            &exec_on(Platform::Windows, r"C:\x\ngrok.exe", "ngrok.exe version")
        )
        .is_empty()
    );
}

#[test]
fn linux_rule_does_not_fire_on_windows_events() {
    let engine = builtin_engine();
    let e = on(
        Platform::Windows,
        exec("/usr/local/bin/ngrok", "ngrok http 8080"),
    );
    assert!(fired(&engine, &e).is_empty());
}

#[test]
fn network_rule_matches_the_spl_domains() {
    let engine = builtin_engine();
    for name in [
        "abc.ngrok.io",
        "ABC.NGROK.IO",
        "tunnel.us.ngrok.com",
        "ngrok.foo.tunnel.com",
        "korgn.x.lennut.com",
        "a.b.c.ngrok.io",
    ] {
        assert_eq!(fired(&engine, &dns_query(name)), [NETWORK], "{name}");
        // Any platform.
        assert_eq!(
            fired(&engine, &on(Platform::Windows, dns_query(name))),
            [NETWORK],
            "{name} on Windows"
        );
    }
}

#[test]
fn network_rule_keeps_the_spl_wildcard_semantics() {
    let engine = builtin_engine();
    // `*.ngrok.io` needs a label before `.ngrok.io`: the apex does not match, as in the SPL.
    for name in [
        "ngrok.io",
        "ngrok.com",
        "notngrok.io",
        "ngrok.io.evil.com",
        "ngrok.tunnel.com",
        "korgn.lennut.com",
        "example.com",
    ] {
        assert!(fired(&engine, &dns_query(name)).is_empty(), "{name}");
    }
}

#[test]
fn dns_responses_do_not_alert_again() {
    let engine = builtin_engine();
    assert_eq!(fired(&engine, &dns_query("abc.ngrok.io")), [NETWORK]);
    let resp = dns_response("abc.ngrok.io", &["3.134.125.175"], 0);
    assert!(fired(&engine, &resp).is_empty());
}

#[test]
fn process_rules_ignore_dns_events_and_back() {
    let engine = builtin_engine();
    // A DNS event whose process is ngrok does not trip the process rules.
    let mut e = dns_query("example.com");
    if let tunnelwatch_engine::event::Event::Dns(d) = &mut e {
        d.process = Some(process(1, "/usr/local/bin/ngrok", "ngrok http 80"));
    }
    assert!(fired(&engine, &e).is_empty());
}
