//! The compiled matcher (literal prefilter, then the candidates' conditions) raises exactly the
//! alerts of rule-by-rule evaluation, on many generated events, for the shipped pack and for a
//! rule set that uses every modifier and condition form.

mod common;

use common::*;
use tunnelwatch_engine::{
    alert::Alert,
    allowlist::Allowlist,
    builtin,
    engine::Engine,
    event::{Event, Platform},
    ruleset::RuleSet,
};

/// Rules over every construct the prefilter must get right (more than four per bucket, so
/// that the prefilter is used).
const RULES: &str = r#"
title: exact and prefix
logsource: {category: process_creation}
detection:
  s: {process_name: [Tool, 'pre*']}
  condition: s
---
title: contains and endswith, and
logsource: {category: process_creation}
detection:
  a: {CommandLine|contains: ' serve '}
  b: {Image|endswith: [/agent, \agent.exe]}
  condition: a and b
---
title: or of selections, one with a regex
logsource: {category: process_creation}
detection:
  a: {CommandLine|contains: 'ÄRGER'}
  b: {CommandLine|re: '(?i)zz+top'}
  condition: a or b
---
title: negation only
logsource: {category: process_creation}
detection:
  f: {process_name: [bash, sh, ls, git]}
  condition: not f
---
title: all and cased
logsource: {category: process_creation}
detection:
  s: {CommandLine|cased|contains|all: [Upper, lower]}
  condition: s
---
title: glob with wildcards
logsource: {category: process_creation}
detection:
  s: {CommandLine: '*tool?x*y*'}
  condition: s
---
title: windash
logsource: {category: process_creation, product: windows}
detection:
  s: {CommandLine|windash|contains: ' -enc '}
  condition: s
---
title: base64offset
logsource: {category: process_creation}
detection:
  s: {CommandLine|base64offset|contains: 'tunnel'}
  condition: s
---
title: null and exists
logsource: {category: process_creation}
detection:
  a: {OriginalFileName: null}
  b: {CommandLine|contains: renamed}
  c: {User|exists: true}
  condition: a and b and c
---
title: list of maps
logsource: {category: process_creation}
detection:
  s:
    - {process_name: tool, CommandLine|contains: share}
    - {OriginalFileName: tool}
  condition: s
---
title: numbers
logsource: {category: process_creation}
detection:
  s: {ProcessId: 4242, CommandLine|contains: pid}
  condition: s
---
title: overlapping literals
logsource: {category: dns_query}
detection:
  a: {QueryName|endswith: [.tool.io, .ol.io, l.io]}
  condition: a
---
title: prefix literals, short
logsource: {category: dns_query}
detection:
  a: {QueryName|contains: tun}
  condition: a
---
title: prefix literals, long
logsource: {category: dns_query}
detection:
  a: {QueryName|contains: [tunnels.example, tunnel]}
  condition: a
---
title: response answers
logsource: {category: dns}
detection:
  a: {answer|contains|all: ['10.', '.7']}
  condition: a
---
title: network connection
logsource: {category: network_connection}
detection:
  a: {DestinationHostname|endswith: .tool.io, Initiated: 'true'}
  condition: a
---
title: dns with process
logsource: {category: dns_query}
detection:
  a: {Image|endswith: /tool}
  condition: a
---
title: dns exact
logsource: {category: dns_query}
detection:
  a: {query: TOOL.IO}
  condition: a
"#;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next() % items.len()]
    }
}

/// Fragments that hit and miss the rules' literals, in various cases and scripts.
const WORDS: &[&str] = &[
    "tool",
    "TOOL",
    "Tool",
    "pre",
    "prefix",
    " serve ",
    "serve",
    "ärger",
    "ÄRGER",
    "zzztop",
    "ZZTOP",
    "Upper",
    "upper",
    "lower",
    "LOWER",
    "toolyxy",
    "tool-x-y",
    " -enc ",
    " /enc ",
    " \u{2013}enc ",
    "dHVubmVs",
    "R1bm5lb",
    "0dW5uZW",
    "renamed",
    "share",
    "pid",
    "http",
    "tcp",
    "ngrok",
    "cloudflared",
    "tunnel",
    "--url",
    "--port",
    " -R ",
    "serveo.net",
    "bore.pub",
    " local ",
    "frpc.toml",
    " client ",
    " R:socks",
    "x",
    " ",
    "/",
    "\\",
    "K",
    "İ",
];

fn phrase(rng: &mut Rng, max: usize) -> String {
    let n = rng.next() % max;
    (0..n).map(|_| rng.pick(WORDS)).collect()
}

fn random_event(rng: &mut Rng) -> Event {
    let names = [
        "tool",
        "TOOL.EXE",
        "prefab",
        "agent",
        "ngrok",
        "cloudflared",
        "ssh",
        "bash",
        "node",
        "frpc",
        "chisel",
        "ärger",
    ];
    let name = rng.pick(&names);
    let platform = if rng.next().is_multiple_of(3) {
        Platform::Windows
    } else {
        Platform::Linux
    };
    match rng.next() % 4 {
        0 | 1 => {
            let dir = if platform == Platform::Windows {
                r"C:\x\"
            } else {
                "/usr/bin/"
            };
            let mut cmd = format!("{name} {}", phrase(rng, 8));
            if rng.next().is_multiple_of(10) {
                // Longer than the prefilter's stack buffer.
                cmd.push_str(&phrase(rng, 200));
            }
            let mut e = exec_on(platform, &format!("{dir}{name}"), &cmd);
            if let Event::Process(p) = &mut e {
                if rng.next().is_multiple_of(4) {
                    p.process.original_file_name = rng.pick(&names).into();
                }
                if rng.next().is_multiple_of(5) {
                    p.process.user = Default::default();
                }
                if rng.next().is_multiple_of(5) {
                    p.process.pid = 4242;
                }
            }
            e
        }
        2 => {
            let q = format!(
                "{}{}",
                phrase(rng, 3),
                rng.pick(&[
                    ".tool.io",
                    ".ol.io",
                    "l.io",
                    "TOOL.IO",
                    ".example.com",
                    "tunnels.example",
                    ".ngrok-free.app",
                    ".loca.lt"
                ])
            );
            let mut e = on(platform, dns_query(q.trim_start_matches('.')));
            if let Event::Dns(d) = &mut e
                && rng.next().is_multiple_of(3)
                && let Some(p) = &mut d.process
            {
                p.path = format!("/opt/{name}").into();
            }
            e
        }
        _ => {
            let answers = ["10.0.0.7", "10.1.2.3", "192.168.0.7", "", "cname.tool.io"];
            let a: Vec<&str> = (0..rng.next() % 4).map(|_| rng.pick(&answers)).collect();
            on(platform, dns_response("x.tool.io", &a, 0))
        }
    }
}

fn check(engine: &Engine, seed: u64, n: usize) -> usize {
    let mut rng = Rng(seed);
    let mut fired = 0;
    for i in 0..n {
        let e = random_event(&mut rng);
        let mut fast: Vec<Alert<'_>> = Vec::new();
        let mut slow: Vec<Alert<'_>> = Vec::new();
        engine.evaluate(&e, &mut fast);
        engine.evaluate_rule_by_rule(&e, &mut slow);
        let ids = |v: &[Alert<'_>]| v.iter().map(|a| a.rule.title.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&fast), ids(&slow), "event {i}: {e:?}");
        fired += fast.len();
    }
    fired
}

#[test]
fn the_prefilter_never_changes_the_alerts() {
    let set = RuleSet::from_str("rules/eq.yml", RULES).unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::new(set, Allowlist::default());
    let (gated, total) = engine.gated_rules();
    assert!(gated > 0 && gated < total, "{gated}/{total}");
    let fired = check(&engine, 0x1234_5678_9ABC_DEF1, 20_000);
    // The events do hit the rules, and not all of them.
    assert!(fired > 2_000 && fired < 200_000, "{fired}");
}

#[test]
fn the_shipped_pack_agrees_with_rule_by_rule_evaluation() {
    let engine = Engine::new(builtin::rules().unwrap(), Allowlist::default());
    let fired = check(&engine, 0xFEED_FACE_CAFE_BEEF, 20_000);
    assert!(fired > 100, "{fired}");
}
