//! The configuration file's shared keys, and a sensor's own keys read through
//! `SensorSettings` from the same file (the Linux sensor's are tested in
//! `userspace/tests/config.rs`).

use std::time::Duration;

use tunnelwatch_engine::{
    config::{Config, Scalar, SensorSettings, Setting},
    error::SourceError,
};

/// A sensor with one setting of its own: a list of names.
#[derive(Debug, Default)]
struct Names(Vec<String>);

impl SensorSettings for Names {
    const KEYS: &'static [&'static str] = &["names"];

    fn set(&mut self, _key: &str, value: Setting<'_>) -> Result<(), SourceError> {
        for item in value.items()? {
            match item.scalar()? {
                Scalar::Str(s) if !s.is_empty() => self.0.push(s.to_owned()),
                _ => return Err(item.err("each name must be a non-empty string")),
            }
        }
        Ok(())
    }
}

#[test]
fn shared_keys_alone() {
    let c: Config = Config::from_str(
        "tw.yml",
        "stats_interval: 5m\nallowlist:\n  - user: [ci-runner]\n",
    )
    .unwrap();
    assert_eq!(c.stats_interval, Duration::from_secs(300));
    assert_eq!(c.allowlist.entries()[0].line, 3);
    let e = Config::<()>::from_str("tw.yml", "stats_interval: 1\ndns_ports: [53]\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        "tw.yml:2: unknown key 'dns_ports' in configuration (stats_interval, fold_window, allowlist)"
    );
    let c: Config = Config::from_str("tw.yml", "").unwrap();
    assert_eq!(c.stats_interval(), Some(Duration::from_secs(60)));
    assert_eq!(c.fold_window, Duration::from_secs(60));
    let c: Config = Config::from_str("tw.yml", "fold_window: 5m\n").unwrap();
    assert_eq!(c.fold_window, Duration::from_secs(300));
    let c: Config = Config::from_str("tw.yml", "fold_window: 0\n").unwrap();
    assert_eq!(c.fold_window, Duration::ZERO);
    let e = Config::<()>::from_str("tw.yml", "fold_window: -1\n").unwrap_err();
    assert_eq!(e.to_string(), "tw.yml:1: fold_window must not be negative");
}

#[test]
fn a_sensors_keys_come_from_the_same_file_with_their_lines() {
    let c = Config::<Names>::from_str("tw.yml", "names: [a, b]\nstats_interval: 0\n").unwrap();
    assert_eq!(c.sensor.0, ["a", "b"]);
    assert_eq!(c.stats_interval(), None);
    let c = Config::<Names>::from_str("tw.yml", "names: a\n").unwrap();
    assert_eq!(c.sensor.0, ["a"]);
    let err = |text: &str| {
        Config::<Names>::from_str("tw.yml", text)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        err("names:\n  - a\n  - 3\n"),
        "tw.yml:3: each name must be a non-empty string"
    );
    assert_eq!(
        err("stats_interval: 1\nnamez: [a]\n"),
        "tw.yml:2: unknown key 'namez' in configuration (names, stats_interval, fold_window, allowlist)"
    );
}
