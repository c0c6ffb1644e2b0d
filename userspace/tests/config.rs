//! The configuration file as the binary reads it (the shared keys and the Linux sensor's):
//! values, defaults, and refusals with their lines.

use std::time::Duration;

use tunnelwatch::linux::settings::LinuxSettings;
use tunnelwatch_engine::config::Config as EngineConfig;

type Config = EngineConfig<LinuxSettings>;

const EXAMPLE: &str = r#"dns_ports: [53, 5353]        # ports treated as DNS (max 8)
ring_buffer_size: 16MiB
stats_interval: 60s
allowlist:
  - rules: ["bc84d574-708c-467d-b78a-4c1e20171f97"]
    user: [ci-runner]
    parent_process_name: [jenkins]
  - query: ["*.sanctioned.ngrok.io"]
"#;

fn err(text: &str) -> String {
    Config::from_str("tw.yml", text).unwrap_err().to_string()
}

#[test]
fn the_documented_example_parses() {
    let c = Config::from_str("tw.yml", EXAMPLE).unwrap();
    assert_eq!(c.sensor.dns_ports, [53, 5353]);
    assert_eq!(c.sensor.ring_buffer_size, 16 * 1024 * 1024);
    assert_eq!(c.stats_interval, Duration::from_secs(60));
    assert_eq!(c.stats_interval(), Some(Duration::from_secs(60)));
    assert_eq!(c.allowlist.entries().len(), 2);
    assert_eq!(c.allowlist.entries()[0].line, 5);
    assert_eq!(c.allowlist.entries()[1].line, 8);
    assert_eq!(c.allowlist.entries()[1].file, "tw.yml");
}

#[test]
fn empty_file_and_missing_keys_are_defaults() {
    for text in ["", "# only a comment\n", "dns_ports: [53]\n"] {
        let c = Config::from_str("tw.yml", text).unwrap();
        assert_eq!(c.sensor.dns_ports, [53]);
        assert_eq!(c.sensor.ring_buffer_size, 8 << 20);
        assert_eq!(c.stats_interval, Duration::from_secs(60));
        assert!(c.allowlist.is_empty());
    }
}

#[test]
fn sizes_and_intervals_in_every_form() {
    let c = Config::from_str(
        "tw.yml",
        "ring_buffer_size: 65536\nstats_interval: 0\ndns_ports: 5353\n",
    )
    .unwrap();
    assert_eq!(c.sensor.ring_buffer_size, 65536);
    assert_eq!(c.stats_interval(), None);
    assert_eq!(c.sensor.dns_ports, [5353]);
    let c = Config::from_str("tw.yml", "ring_buffer_size: 1 GiB\nstats_interval: 5m\n").unwrap();
    assert_eq!(c.sensor.ring_buffer_size, 1 << 30);
    assert_eq!(c.stats_interval, Duration::from_secs(300));
    let c = Config::from_str(
        "tw.yml",
        "ring_buffer_size: 256KiB\nstats_interval: '1h 30m'\n",
    )
    .unwrap();
    assert_eq!(c.sensor.ring_buffer_size, 256 << 10);
    assert_eq!(c.stats_interval, Duration::from_secs(5400));
    // One size parser for the file and `--ring-buffer-size`.
    let c = Config::from_str("tw.yml", "ring_buffer_size: 16M\n").unwrap();
    assert_eq!(c.sensor.ring_buffer_size, 16 << 20);
}

#[test]
fn refusals_name_file_line_and_reason() {
    let size_help = "ring_buffer_size must be a number of bytes or a size such as 16MiB (units B, KiB, MiB, GiB)";
    let cases: Vec<(&str, String)> = vec![
        (
            "dns_ports: [53]\nbuffer: 1\n",
            "tw.yml:2: unknown key 'buffer' in configuration (dns_ports, ring_buffer_size, docker_sockets, podman_sockets, cri_sockets, stats_interval, fold_window, allowlist)".into(),
        ),
        ("dns_ports: [53, 0]\n", "tw.yml:1: each DNS port must be between 1 and 65535, not 0".into()),
        (
            "dns_ports:\n  - 53\n  - 70000\n",
            "tw.yml:3: each DNS port must be between 1 and 65535, not 70000".into(),
        ),
        (
            "dns_ports: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n",
            "tw.yml:1: dns_ports lists 9 ports, at most 8 are allowed".into(),
        ),
        ("dns_ports: []\n", "tw.yml:1: dns_ports is empty".into()),
        ("dns_ports: [53, 53]\n", "tw.yml:1: DNS port 53 is listed twice".into()),
        ("dns_ports: [dns]\n", "tw.yml:1: each DNS port must be an integer".into()),
        ("\nring_buffer_size: 16 furlongs\n", format!("tw.yml:2: {size_help}")),
        ("ring_buffer_size: lots\n", format!("tw.yml:1: {size_help}")),
        ("ring_buffer_size: -1\n", format!("tw.yml:1: {size_help}")),
        ("ring_buffer_size: 0\n", "tw.yml:1: ring_buffer_size must not be zero".into()),
        (
            "dns_ports: [53]\nring_buffer_size: 3MiB\n",
            "tw.yml:2: ring buffer size 3145728 must be a power of two between 64KiB and 1GiB".into(),
        ),
        (
            "ring_buffer_size: 4096\n",
            "tw.yml:1: ring buffer size 4096 must be a power of two between 64KiB and 1GiB".into(),
        ),
        (
            "ring_buffer_size: 99999999999999GiB\n",
            format!("tw.yml:1: {size_help}"),
        ),
        (
            "stats_interval: -5\n",
            "tw.yml:1: stats_interval must not be negative".into(),
        ),
        (
            "stats_interval: [1]\n",
            "tw.yml:1: stats_interval must be a number of seconds or a duration such as 60s".into(),
        ),
        (
            "allowlist:\n  - user: [x]\n    usr: [y]\n",
            "tw.yml:3: unknown key 'usr' in allowlist entry (rules, user, user_id, process_name, process_path, parent_process_name, parent_process_path, query, host, container_id, container_name, container_image, pod_name, pod_namespace)".into(),
        ),
        (
            "allowlist:\n  - rules: [x]\n",
            "tw.yml:2: allowlist entry lists no field to match (one of user, user_id, process_name, process_path, parent_process_name, parent_process_path, query, host, container_id, container_name, container_image, pod_name, pod_namespace); it would silence every alert".into(),
        ),
        (
            "allowlist:\n  - user: []\n",
            "tw.yml:2: allowlist 'user' is an empty list".into(),
        ),
        (
            "allowlist:\n  - user: [1]\n",
            "tw.yml:2: allowlist 'user' must be a string".into(),
        ),
        (
            "allowlist: {user: x}\n",
            "tw.yml:1: allowlist must be a list of entries".into(),
        ),
        ("a: [\n", "tw.yml:2: YAML syntax error: while parsing a node, did not find expected node content".into()),
        ("dns_ports: [53]\n---\ndns_ports: [54]\n", "tw.yml:3: a configuration file holds one YAML document".into()),
        ("- 53\n", "tw.yml:1: the configuration must be a mapping".into()),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), want, "{text}");
    }
    assert!(
        err("stats_interval: soon\n")
            .starts_with("tw.yml:1: stats_interval 'soon' is not a duration such as 60s or 5m: ")
    );
}

#[test]
fn load_reads_a_file() {
    let path = std::env::temp_dir().join(format!("tw-config-{}.yml", std::process::id()));
    std::fs::write(&path, EXAMPLE).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.sensor.dns_ports, [53, 5353]);
    assert_eq!(c.allowlist.entries()[0].file, path.display().to_string());
    std::fs::remove_file(&path).unwrap();
    let e = Config::load(&path).unwrap_err();
    assert_eq!(e.line, 0);
    assert!(e.reason.starts_with("cannot read: "), "{e}");
}
