//! The configuration file (YAML): what every sensor shares (the stats interval and the
//! allowlist) and, through [`SensorSettings`], the keys of one sensor (the Linux sensor's DNS
//! ports and ring buffer size: `userspace/src/linux/settings.rs`), read from the same file.
//! Unknown keys and bad values are refused with `file:line: reason`; a sensor's settings are
//! checked where they are read, with their line.
//!
//! ```yaml
//! stats_interval: 60s          # seconds, or a duration such as 60s, 5m; 0 disables
//! fold_window: 60s             # repeats of an alert within it are folded; 0 disables
//! allowlist:
//!   - rules: ["bc84d574-708c-467d-b78a-4c1e20171f97"]
//!     user: [ci-runner]
//!     parent_process_name: [jenkins]
//!   - query: ["*.sanctioned.ngrok.io"]
//! ```
//!
//! Floor 6 (rule sets, filters, allowlists, configuration): may use `allowlist`, `yaml` and
//! `error`.

use std::{path::Path, time::Duration};

use saphyr::YamlData;

use crate::{
    allowlist::Allowlist,
    error::SourceError,
    yaml::{self, Node, Reader},
};

/// The configuration: the keys every sensor shares, and the sensor's own (`S`).
#[derive(Clone, Debug)]
pub struct Config<S = ()> {
    /// How often to log statistics; zero disables them.
    pub stats_interval: Duration,
    /// Repeats of an alert within this window are folded into one summary line (`fold.rs`);
    /// zero prints every alert.
    pub fold_window: Duration,
    /// Alerts to suppress.
    pub allowlist: Allowlist,
    /// The sensor's own settings.
    pub sensor: S,
}

/// The settings one sensor reads from the configuration file besides the shared ones.
pub trait SensorSettings: Default {
    /// Its keys, in the order messages list them (before the shared ones).
    const KEYS: &'static [&'static str];
    /// Reads the value of `key`, one of [`Self::KEYS`], refusing it with its line.
    fn set(&mut self, key: &str, value: Setting<'_>) -> Result<(), SourceError>;
}

/// No settings of a sensor's own (`replay`, the tests).
impl SensorSettings for () {
    const KEYS: &'static [&'static str] = &[];
    fn set(&mut self, key: &str, value: Setting<'_>) -> Result<(), SourceError> {
        Err(value.err(format!("unknown key '{key}'")))
    }
}

/// A value of the configuration file, for a sensor's settings to read: each reader fails
/// with `file:line: reason`.
#[derive(Clone, Copy)]
pub struct Setting<'a> {
    r: Reader<'a>,
    node: &'a Node<'a>,
}

/// A scalar value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar<'a> {
    Int(i64),
    Str(&'a str),
    /// Anything else (a list, a mapping, a float, a boolean, null).
    Other,
}

impl<'a> Setting<'a> {
    /// An error at the value's line.
    pub fn err(&self, reason: impl Into<String>) -> SourceError {
        self.r.err(self.node, reason)
    }

    /// The value as an integer within `min..=max` (`what` names it in the error).
    pub fn int(&self, what: &str, min: i64, max: i64) -> Result<i64, SourceError> {
        self.r.int(self.node, what, min, max)
    }

    /// The value as a scalar.
    pub fn scalar(&self) -> Result<Scalar<'a>, SourceError> {
        Ok(match &self.r.untagged(self.node)?.data {
            YamlData::Value(saphyr::Scalar::Integer(n)) => Scalar::Int(*n),
            YamlData::Value(saphyr::Scalar::String(s)) => Scalar::Str(s),
            _ => Scalar::Other,
        })
    }

    /// The items of a list; a single value is a list of one.
    pub fn items(&self) -> Result<Vec<Setting<'a>>, SourceError> {
        Ok(match &self.r.untagged(self.node)?.data {
            YamlData::Sequence(items) => items
                .iter()
                .map(|node| Setting { r: self.r, node })
                .collect(),
            _ => vec![*self],
        })
    }
}

impl<S: Default> Default for Config<S> {
    /// Statistics every 60 s, no allowlist, the sensor's defaults.
    fn default() -> Self {
        Config {
            stats_interval: Duration::from_secs(60),
            fold_window: DEFAULT_FOLD_WINDOW,
            allowlist: Allowlist::default(),
            sensor: S::default(),
        }
    }
}

/// The fold window when neither flag nor file sets one: a minute.
pub const DEFAULT_FOLD_WINDOW: Duration = Duration::from_secs(60);

/// The keys every sensor reads.
const SHARED_KEYS: &[&str] = &["stats_interval", "fold_window", "allowlist"];

impl<S: SensorSettings> Config<S> {
    /// Reads and parses the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config<S>, SourceError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SourceError::new(&name, 0, format!("cannot read: {e}")))?;
        Config::from_str(&name, &text)
    }

    /// Parses `text`; `name` is used in error messages. An empty text is the default
    /// configuration; keys left out keep their defaults.
    pub fn from_str(name: &str, text: &str) -> Result<Config<S>, SourceError> {
        let docs = yaml::parse(name, text)?;
        let r = Reader::new(name);
        if let Some(extra) = docs.get(1) {
            return Err(r.err(extra, "a configuration file holds one YAML document"));
        }
        let mut cfg = Config::default();
        let Some(doc) = docs.first().filter(|d| !yaml::is_null(d)) else {
            return Ok(cfg);
        };
        for (k, v) in r.map(doc, "the configuration")? {
            match r.key(k)? {
                "stats_interval" => cfg.stats_interval = parse_interval(&r, v, "stats_interval")?,
                "fold_window" => cfg.fold_window = parse_interval(&r, v, "fold_window")?,
                "allowlist" => cfg.allowlist = Allowlist::parse(&r, v)?,
                key if S::KEYS.contains(&key) => {
                    cfg.sensor.set(key, Setting { r, node: v })?;
                }
                other => {
                    let keys: Vec<&str> = S::KEYS.iter().chain(SHARED_KEYS).copied().collect();
                    return Err(r.err(
                        k,
                        format!(
                            "unknown key '{other}' in configuration ({})",
                            keys.join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(cfg)
    }

    /// The statistics interval, or `None` when statistics are off.
    pub fn stats_interval(&self) -> Option<Duration> {
        (!self.stats_interval.is_zero()).then_some(self.stats_interval)
    }
}

/// A duration: a number of seconds, or text such as `60s` or `5m`; `key` names it in errors.
fn parse_interval(r: &Reader<'_>, node: &Node<'_>, key: &str) -> Result<Duration, SourceError> {
    match &r.untagged(node)?.data {
        YamlData::Value(saphyr::Scalar::Integer(n)) => u64::try_from(*n)
            .map(Duration::from_secs)
            .map_err(|_| r.err(node, format!("{key} must not be negative"))),
        YamlData::Value(saphyr::Scalar::String(s)) => {
            humantime::parse_duration(s.trim()).map_err(|e| {
                r.err(
                    node,
                    format!("{key} '{s}' is not a duration such as 60s or 5m: {e}"),
                )
            })
        }
        _ => Err(r.err(
            node,
            format!("{key} must be a number of seconds or a duration such as 60s"),
        )),
    }
}
