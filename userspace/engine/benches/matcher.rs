//! Matcher throughput: events per second on one core for the compiled matcher (the literal
//! prefilter, then only the candidate rules' conditions) and, side by side in the same run,
//! rule-by-rule evaluation (every rule that applies to the event evaluated in turn, the same
//! condition code without the prefilter: `Engine::evaluate_rule_by_rule`), over the same event
//! mix, for the shipped pack and for synthetic rule sets of 3, 50 and 500 rules.
//!
//! `cargo bench -p tunnelwatch-engine --bench matcher` (plain std timing, no harness). Options
//! after `--`: `--quick` (shorter runs, for a smoke test), `--markdown` (the table only),
//! `--profile [N]` (only the compiled matcher on process events, with the shipped pack or N
//! synthetic rules, for a profiler), `--rules DIR` (one more row: the rules of DIR that load,
//! e.g. a SigmaHQ checkout's process_creation, dns_query and network_connection rules).

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant, UNIX_EPOCH},
};

use tunnelwatch_engine::{
    alert::Alert,
    allowlist::Allowlist,
    builtin,
    engine::Engine,
    event::{DnsEvent, DnsMessageType, Event, Platform, Process, ProcessEvent},
    ruleset::RuleSet,
};

/// A small deterministic generator (xorshift64*), so every run sees the same events and rules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Benign Linux command lines as a busy server or a developer box runs them.
const LINUX_COMMANDS: &[(&str, &str)] = &[
    (
        "/usr/bin/bash",
        "bash -c 'cd /srv/app && git pull --ff-only origin main'",
    ),
    (
        "/usr/bin/git",
        "git -c core.quotepath=false status --porcelain=v2 --branch",
    ),
    (
        "/usr/bin/python3.12",
        "/usr/bin/python3 -m pip install --upgrade requests==2.32.3",
    ),
    (
        "/usr/bin/node",
        "node /srv/api/dist/server.js --port 3000 --log-level info",
    ),
    ("/usr/bin/ls", "ls -la --color=auto /var/log/nginx"),
    (
        "/usr/bin/grep",
        "grep -rn --include=*.py TODO /home/alice/src/project",
    ),
    (
        "/usr/bin/curl",
        "curl -fsSL https://api.github.com/repos/rust-lang/rust/releases/latest",
    ),
    (
        "/usr/bin/ssh",
        "ssh -o BatchMode=yes deploy@build-01.internal.example.com uptime",
    ),
    ("/usr/sbin/nginx", "nginx: worker process"),
    (
        "/usr/bin/docker",
        "docker run --rm -v /srv/data:/data postgres:16 pg_dump -U app app",
    ),
    (
        "/usr/bin/cargo",
        "cargo build --release --target x86_64-unknown-linux-gnu",
    ),
    (
        "/usr/lib/systemd/systemd-journald",
        "/usr/lib/systemd/systemd-journald",
    ),
    ("/usr/bin/sleep", "sleep 30"),
    ("/usr/bin/cat", "cat /proc/meminfo"),
    ("/usr/bin/awk", "awk -F: '{print $1}' /etc/passwd"),
    (
        "/usr/bin/tar",
        "tar -czf /backup/www-2026-11-23.tar.gz /var/www/html",
    ),
    (
        "/usr/bin/rsync",
        "rsync -az --delete /srv/app/ backup@10.0.0.20:/backups/app/",
    ),
    ("/usr/bin/vim", "vim /etc/nginx/sites-available/default"),
    ("/usr/bin/make", "make -j8 all"),
    (
        "/usr/bin/gcc",
        "gcc -O2 -Wall -c src/main.c -o build/main.o",
    ),
    (
        "/usr/bin/kubectl",
        "kubectl get pods -n production -o wide --watch=false",
    ),
    (
        "/usr/bin/java",
        "java -Xmx2g -jar /opt/app/service.jar --server.port=8080 --spring.profiles.active=prod",
    ),
    ("/usr/bin/ps", "ps -eo pid,ppid,user,cmd --sort=-%cpu"),
    ("/usr/bin/find", "find /tmp -type f -mtime +7 -delete"),
    (
        "/usr/bin/systemctl",
        "systemctl status nginx.service --no-pager",
    ),
    (
        "/usr/bin/openssl",
        "openssl s_client -connect example.com:443 -servername example.com",
    ),
    ("/usr/bin/sed", "sed -i s/DEBUG/INFO/g /etc/app/config.ini"),
    ("/usr/bin/npm", "npm ci --no-audit --prefer-offline"),
    ("/usr/bin/go", "go test ./... -run TestServer -count=1"),
    (
        "/usr/bin/journalctl",
        "journalctl -u sshd --since -1h --no-pager",
    ),
];

/// Benign Windows command lines.
const WINDOWS_COMMANDS: &[(&str, &str)] = &[
    (
        r"C:\Windows\System32\svchost.exe",
        r"C:\Windows\system32\svchost.exe -k netsvcs -p -s Schedule",
    ),
    (
        r"C:\Program Files\Google\Chrome\Application\chrome.exe",
        r#""C:\Program Files\Google\Chrome\Application\chrome.exe" --type=renderer --lang=en-US --num-raster-threads=4"#,
    ),
    (
        r"C:\Windows\System32\cmd.exe",
        r#"C:\Windows\system32\cmd.exe /c "dir C:\Users\bob\Documents""#,
    ),
    (
        r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        r"powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\scripts\inventory.ps1",
    ),
    (
        r"C:\Windows\System32\conhost.exe",
        r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1",
    ),
    (
        r"C:\Program Files\Microsoft VS Code\Code.exe",
        r#""C:\Program Files\Microsoft VS Code\Code.exe" --type=utility --utility-sub-type=node.mojom.NodeService"#,
    ),
];

/// Benign DNS names.
const DOMAINS: &[&str] = &[
    "www.google.com",
    "api.github.com",
    "registry.npmjs.org",
    "pypi.org",
    "static.crates.io",
    "login.microsoftonline.com",
    "outlook.office365.com",
    "time.cloudflare.com",
    "deb.debian.org",
    "s3.eu-west-1.amazonaws.com",
    "slack.com",
    "updates.example-corp.internal",
];

/// Events that tunnel rules match (about 1% of the mix).
const HOSTILE: &[(&str, &str)] = &[
    ("/usr/local/bin/ngrok", "ngrok http 8080"),
    (
        "/usr/local/bin/cloudflared",
        "cloudflared tunnel --url http://localhost:22",
    ),
    ("/tmp/chisel", "./chisel client 203.0.113.5:8080 R:socks"),
    ("/usr/bin/ssh", "ssh -R 80:localhost:3000 serveo.net"),
];
const HOSTILE_DOMAINS: &[&str] = &["abc.ngrok-free.app", "api.trycloudflare.com", "x.loca.lt"];

fn process(pid: u32, path: &str, command_line: &str, user: &str) -> Process {
    Process {
        pid,
        name: path.rsplit(['/', '\\']).next().unwrap_or(path).into(),
        path: path.into(),
        command_line: command_line.into(),
        user: user.into(),
        user_id: "1000".into(),
        original_file_name: Default::default(),
    }
}

fn exec(platform: Platform, path: &str, command_line: &str, pid: u32) -> Event {
    let parent = match platform {
        Platform::Linux => process(pid - 1, "/usr/bin/bash", "-bash", "alice"),
        Platform::Windows => process(
            pid - 1,
            r"C:\Windows\explorer.exe",
            r"C:\Windows\Explorer.EXE",
            "bob",
        ),
    };
    Event::Process(ProcessEvent {
        time: UNIX_EPOCH + Duration::from_secs(1_795_395_723),
        host: Arc::from("web1"),
        platform,
        process: process(pid, path, command_line, "alice"),
        parent,
        args_truncated: false,
        fileless: "".into(),
        loader: "".into(),
    })
}

fn dns(query: &str, pid: u32) -> Event {
    Event::Dns(DnsEvent {
        time: UNIX_EPOCH + Duration::from_secs(1_795_395_723),
        host: Arc::from("web1"),
        platform: Platform::Linux,
        message_type: DnsMessageType::Query,
        query: query.to_owned(),
        query_type: "A".to_owned(),
        transaction_id: pid as u16,
        reply_code: String::new(),
        reply_code_id: None,
        answers: Vec::new(),
        src: Some("10.0.0.5:41000".parse().unwrap()),
        dest: Some("10.0.0.1:53".parse().unwrap()),
        transport: "udp",
        process: Some(process(
            pid,
            "/usr/bin/curl",
            "curl https://example.com/",
            "alice",
        )),
        parent: None,
        inferred_from_response: false,
    })
}

/// The mix: 76% Linux and 9% Windows process starts, 13% DNS queries, 2% hostile events.
fn event_mix(n: usize) -> Vec<Event> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|i| {
            let pid = 2000 + i as u32;
            match rng.below(100) {
                0 => {
                    let (p, c) = rng.pick(HOSTILE);
                    exec(Platform::Linux, p, c, pid)
                }
                1 => dns(rng.pick(HOSTILE_DOMAINS), pid),
                2..=77 => {
                    let (p, c) = rng.pick(LINUX_COMMANDS);
                    exec(Platform::Linux, p, c, pid)
                }
                78..=86 => {
                    let (p, c) = rng.pick(WINDOWS_COMMANDS);
                    exec(Platform::Windows, p, c, pid)
                }
                _ => dns(rng.pick(DOMAINS), pid),
            }
        })
        .collect()
}

/// Tunnel-like syllables for tool names and domains.
const SYLLABLES: &[&str] = &[
    "rok", "tun", "relay", "pipe", "bore", "gate", "link", "hole", "port", "nat", "expo", "lift",
    "zap", "mole", "warp", "flux", "beam", "jet", "hop", "dig",
];

/// `n` synthetic rules, each with its own literals: process rules on a tool name and its
/// arguments, on an image path suffix and flags, on a renamed binary, on an SSH forward to a
/// service domain, and DNS rules on service domains.
fn synthetic_rules(n: usize) -> String {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut out = String::new();
    for i in 0..n {
        let a = rng.pick(SYLLABLES);
        let b = rng.pick(SYLLABLES);
        let tool = format!("{a}{b}{i}");
        let domain = format!("{b}{a}-{i}.example-tunnel.net");
        let (category, detection) = match i % 5 {
            0 => (
                "process_creation",
                format!(
                    "  sel_name:\n    process_name: [{tool}, {tool}.exe]\n  sel_args:\n    CommandLine|contains: [' expose ', ' share ', '--relay-{i}']\n  condition: all of sel_*\n"
                ),
            ),
            1 => (
                "process_creation",
                format!(
                    "  sel:\n    Image|endswith: ['/{tool}-agent', '\\{tool}-agent.exe']\n    CommandLine|contains|all: [' connect ', '--key']\n  condition: sel\n"
                ),
            ),
            2 => (
                "process_creation",
                format!(
                    "  sel:\n    OriginalFileName: [{tool}, {tool}.exe]\n  filter:\n    process_name: [{tool}, {tool}.exe]\n  condition: sel and not filter\n"
                ),
            ),
            3 => (
                "process_creation",
                format!(
                    "  sel:\n    process_name: [ssh, ssh.exe, autossh]\n    CommandLine|contains|all: ['-R', '{domain}']\n  condition: sel\n"
                ),
            ),
            _ => (
                "dns_query",
                format!(
                    "  sel:\n    - QueryName: '{domain}'\n    - QueryName|endswith: ['.{domain}', '.{tool}.io']\n  condition: sel\n"
                ),
            ),
        };
        out.push_str(&format!(
            "title: Synthetic {i}\nid: 00000000-0000-4000-8000-{i:012}\nlevel: medium\nlogsource:\n  category: {category}\ndetection:\n{detection}---\n"
        ));
    }
    out
}

/// Events per second over `events` for at least `min`, and the alerts raised per pass.
fn throughput(events: &[Event], min: Duration, mut f: impl FnMut(&Event) -> usize) -> (f64, usize) {
    let start = Instant::now();
    let mut n = 0usize;
    let mut fired = 0usize;
    while start.elapsed() < min {
        for e in events {
            fired += f(black_box(e));
        }
        n += events.len();
    }
    (
        n as f64 / start.elapsed().as_secs_f64(),
        fired * events.len() / n.max(1),
    )
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2} M", r / 1e6)
    } else {
        format!("{:.0} k", r / 1e3)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let (rounds, min) = if quick {
        (1, Duration::from_millis(100))
    } else {
        (8, Duration::from_millis(400))
    };
    let events = event_mix(20_000);
    let process_events: Vec<Event> = events
        .iter()
        .filter(|e| matches!(e, Event::Process(_)))
        .cloned()
        .collect();

    if let Some(at) = args.iter().position(|a| a == "--profile") {
        let arg = args.get(at + 1);
        let rules = match (arg, arg.and_then(|n| n.parse::<usize>().ok())) {
            (_, Some(n)) => RuleSet::from_str("synthetic.yml", &synthetic_rules(n))
                .expect("synthetic rules load"),
            (Some(dir), None) if std::path::Path::new(dir).is_dir() => {
                RuleSet::load(
                    &[dir],
                    tunnelwatch_engine::ruleset::LoadOptions { skip_invalid: true },
                )
                .expect("skip_invalid never fails")
                .rules
            }
            _ => builtin::rules().expect("the shipped rules load"),
        };
        let engine = Engine::new(rules, Allowlist::default());
        let mut out: Vec<Alert<'_>> = Vec::with_capacity(8);
        let start = Instant::now();
        let passes = if arg.is_some_and(|a| std::path::Path::new(a).is_dir()) {
            40
        } else {
            200
        };
        for _ in 0..passes {
            for e in &process_events {
                out.clear();
                engine.evaluate(black_box(e), &mut out);
            }
        }
        let n = passes * process_events.len();
        println!(
            "{n} process events, {} process events/s (wall clock)",
            fmt_rate(n as f64 / start.elapsed().as_secs_f64())
        );
        return;
    }

    let mut sets: Vec<(String, RuleSet)> = vec![
        (
            "shipped pack".into(),
            builtin::rules().expect("the shipped rules load"),
        ),
        (
            "3 Splunk seeds".into(),
            RuleSet::from_sources(builtin::SOURCES.iter().take(3).copied(), Default::default())
                .expect("the seeds load")
                .rules,
        ),
    ];
    for n in [3, 50, 500] {
        let text = synthetic_rules(n);
        let set = RuleSet::from_str("synthetic.yml", &text).expect("synthetic rules load");
        sets.push((format!("{n} synthetic"), set));
    }
    if let Some(dir) = args
        .iter()
        .position(|a| a == "--rules")
        .and_then(|i| args.get(i + 1))
    {
        let loaded = RuleSet::load(
            &[dir],
            tunnelwatch_engine::ruleset::LoadOptions { skip_invalid: true },
        )
        .expect("skip_invalid never fails");
        sets.push((format!("rules of {dir}"), loaded.rules));
    }

    println!(
        "| rule set | rules | gated | compiled, all events/s | rule-by-rule, all events/s | ratio | compiled, process events/s | rule-by-rule, process events/s | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, set) in sets {
        let rules = set.len();
        let engine = Engine::new(set, Allowlist::default());
        let (gated, total) = engine.gated_rules();
        let mut out: Vec<Alert<'_>> = Vec::with_capacity(8);
        let mut run = |evs: &[Event], naive: bool| {
            throughput(evs, min, |e| {
                out.clear();
                if naive {
                    engine.evaluate_rule_by_rule(e, &mut out);
                } else {
                    engine.evaluate(e, &mut out);
                }
                out.len()
            })
        };
        // The four measurements take turns, round after round, and each keeps its best: a
        // load that comes and goes on the machine hits them alike.
        let mut best = [0.0f64; 4];
        let mut alerts = [0usize; 2];
        for _ in 0..rounds {
            for (k, (evs, naive)) in [
                (&events, false),
                (&events, true),
                (&process_events, false),
                (&process_events, true),
            ]
            .into_iter()
            .enumerate()
            {
                let (rate, fired) = run(evs, naive);
                best[k] = best[k].max(rate);
                if k < 2 {
                    alerts[k] = fired;
                }
            }
        }
        assert_eq!(
            alerts[0], alerts[1],
            "{name}: both paths raise the same alerts"
        );
        let [fast_all, slow_all, fast_proc, slow_proc] = best;
        println!(
            "| {name} | {rules} | {gated}/{total} | {} | {} | {:.1}x | {} | {} | {:.1}x |",
            fmt_rate(fast_all),
            fmt_rate(slow_all),
            fast_all / slow_all,
            fmt_rate(fast_proc),
            fmt_rate(slow_proc),
            fast_proc / slow_proc,
        );
    }
    if !args.iter().any(|a| a == "--markdown") {
        println!(
            "\n{} events ({} process starts); each figure is the best of {rounds} runs of {:?}, the four of a row taking turns; one thread.",
            events.len(),
            process_events.len(),
            min
        );
    }
}
