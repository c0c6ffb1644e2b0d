//! The configuration file (YAML): DNS ports, ring buffer size, stats interval and allowlist.
//! Unknown keys and bad values are refused with `file:line: reason`. Values are only parsed
//! here; the sensor checks what its platform needs (e.g. a power-of-two ring buffer).
//!
//! ```yaml
//! dns_ports: [53, 5353]        # ports treated as DNS (at most 8)
//! ring_buffer_size: 16MiB      # bytes, or a number with B, KiB, MiB or GiB
//! stats_interval: 60s          # seconds, or a duration such as 60s, 5m; 0 disables
//! allowlist:
//!   - rules: ["bc84d574-708c-467d-b78a-4c1e20171f97"]
//!     user: [ci-runner]
//!     parent_process_name: [jenkins]
//!   - query: ["*.sanctioned.ngrok.io"]
//! ```

use std::{path::Path, time::Duration};

use saphyr::{Scalar, YamlData};

use crate::{
    allowlist::Allowlist,
    error::SourceError,
    yaml::{self, Node, Reader},
};

/// At most this many DNS ports.
pub const MAX_DNS_PORTS: usize = 8;

/// The sensor's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// UDP/TCP ports whose traffic is decoded as DNS.
    pub dns_ports: Vec<u16>,
    /// Ring buffer size in bytes.
    pub ring_buffer_size: u64,
    /// How often to log statistics; zero disables them.
    pub stats_interval: Duration,
    /// Alerts to suppress.
    pub allowlist: Allowlist,
}

impl Default for Config {
    /// Port 53, an 8 MiB ring buffer (16 MiB of resident memory: the kernel maps its data pages twice), statistics every 60 s, no allowlist.
    fn default() -> Self {
        Config {
            dns_ports: vec![53],
            ring_buffer_size: 8 << 20,
            stats_interval: Duration::from_secs(60),
            allowlist: Allowlist::default(),
        }
    }
}

const KEYS: &str = "dns_ports, ring_buffer_size, stats_interval, allowlist";

impl Config {
    /// Reads and parses the file at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, SourceError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SourceError::new(&name, 0, format!("cannot read: {e}")))?;
        Config::from_str(&name, &text)
    }

    /// Parses `text`; `name` is used in error messages. An empty text is the default
    /// configuration; keys left out keep their defaults.
    pub fn from_str(name: &str, text: &str) -> Result<Config, SourceError> {
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
                "dns_ports" => cfg.dns_ports = parse_ports(&r, v)?,
                "ring_buffer_size" => cfg.ring_buffer_size = parse_size(&r, v)?,
                "stats_interval" => cfg.stats_interval = parse_interval(&r, v)?,
                "allowlist" => cfg.allowlist = Allowlist::parse(&r, v)?,
                other => {
                    return Err(r.err(
                        k,
                        format!("unknown key '{other}' in configuration ({KEYS})"),
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

fn parse_ports(r: &Reader<'_>, node: &Node<'_>) -> Result<Vec<u16>, SourceError> {
    let items: Vec<&Node<'_>> = match &r.untagged(node)?.data {
        YamlData::Sequence(items) => items.iter().collect(),
        _ => vec![node],
    };
    if items.is_empty() {
        return Err(r.err(node, "dns_ports is empty"));
    }
    if items.len() > MAX_DNS_PORTS {
        return Err(r.err(
            node,
            format!(
                "dns_ports lists {} ports, at most {MAX_DNS_PORTS} are allowed",
                items.len()
            ),
        ));
    }
    let mut ports = Vec::with_capacity(items.len());
    for item in items {
        let port = r.int(item, "each DNS port", 1, 65535)? as u16;
        if ports.contains(&port) {
            return Err(r.err(item, format!("DNS port {port} is listed twice")));
        }
        ports.push(port);
    }
    Ok(ports)
}

fn parse_size(r: &Reader<'_>, node: &Node<'_>) -> Result<u64, SourceError> {
    let bad = || {
        r.err(
            node,
            "ring_buffer_size must be a number of bytes or a size such as 16MiB (units B, KiB, MiB, GiB)",
        )
    };
    let size = match &r.untagged(node)?.data {
        YamlData::Value(Scalar::Integer(n)) => u64::try_from(*n).map_err(|_| bad())?,
        YamlData::Value(Scalar::String(s)) => {
            let s = s.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let num: u64 = num.parse().map_err(|_| bad())?;
            let shift = match unit.trim_start() {
                "" | "B" => 0,
                "KiB" => 10,
                "MiB" => 20,
                "GiB" => 30,
                _ => return Err(bad()),
            };
            num.checked_mul(1 << shift).ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    if size == 0 {
        return Err(r.err(node, "ring_buffer_size must not be zero"));
    }
    Ok(size)
}

fn parse_interval(r: &Reader<'_>, node: &Node<'_>) -> Result<Duration, SourceError> {
    match &r.untagged(node)?.data {
        YamlData::Value(Scalar::Integer(n)) => u64::try_from(*n)
            .map(Duration::from_secs)
            .map_err(|_| r.err(node, "stats_interval must not be negative")),
        YamlData::Value(Scalar::String(s)) => humantime::parse_duration(s.trim()).map_err(|e| {
            r.err(
                node,
                format!("stats_interval '{s}' is not a duration such as 60s or 5m: {e}"),
            )
        }),
        _ => Err(r.err(
            node,
            "stats_interval must be a number of seconds or a duration such as 60s",
        )),
    }
}
