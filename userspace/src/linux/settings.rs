//! The Linux sensor's own settings: the ports treated as DNS, the kernel-to-user ring
//! buffer's size and the container runtimes' API sockets (`docker_sockets`, `podman_sockets`,
//! `cri_sockets`: absolute paths of unix sockets, each key replacing its defaults), from the configuration file (`dns_ports`, `ring_buffer_size`, read through
//! the engine's `SensorSettings`, refused with `file:line: reason`) and from the command line
//! (`--dns-port`, `--ring-buffer-size`), which wins. One size parser serves both.
//!
//! Pure parsing, compiled on every platform: one configuration file serves both sensors, and
//! the Windows sensor refuses a bad Linux setting as Linux would (then ignores it).
//!
//! Uses: the engine's configuration (`SensorSettings`) and the kernel-user ABI's limits.

use tunnelwatch_common::limits::DNS_PORTS_MAX;
use tunnelwatch_engine::{
    config::{Scalar, SensorSettings, Setting},
    error::SourceError,
};

/// At most this many DNS ports (the kernel side's table).
pub const MAX_DNS_PORTS: usize = DNS_PORTS_MAX;

/// The smallest and largest ring buffer, in bytes (a power of two between them).
pub const RING_BUFFER_MIN: u64 = 64 << 10;
pub const RING_BUFFER_MAX: u64 = 1 << 30;

/// The Linux sensor's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxSettings {
    /// UDP/TCP ports whose traffic is decoded as DNS.
    pub dns_ports: Vec<u16>,
    /// Ring buffer size in bytes: a power of two from 64 KiB to 1 GiB.
    pub ring_buffer_size: u32,
    /// API sockets asked for container names (Docker Engine API of Docker, of Podman's
    /// service; CRI); `None`: the runtimes' defaults.
    pub docker_sockets: Option<Vec<String>>,
    pub podman_sockets: Option<Vec<String>>,
    pub cri_sockets: Option<Vec<String>>,
}

impl Default for LinuxSettings {
    /// Port 53; an 8 MiB ring buffer (16 MiB of resident memory: the kernel maps its data
    /// pages twice).
    fn default() -> Self {
        LinuxSettings {
            dns_ports: vec![53],
            ring_buffer_size: 8 << 20,
            docker_sockets: None,
            podman_sockets: None,
            cri_sockets: None,
        }
    }
}

impl SensorSettings for LinuxSettings {
    const KEYS: &'static [&'static str] = &[
        "dns_ports",
        "ring_buffer_size",
        "docker_sockets",
        "podman_sockets",
        "cri_sockets",
    ];

    fn set(&mut self, key: &str, value: Setting<'_>) -> Result<(), SourceError> {
        match key {
            "dns_ports" => self.dns_ports = parse_ports(value)?,
            "docker_sockets" => self.docker_sockets = Some(parse_sockets(key, value)?),
            "podman_sockets" => self.podman_sockets = Some(parse_sockets(key, value)?),
            "cri_sockets" => self.cri_sockets = Some(parse_sockets(key, value)?),
            _ => self.ring_buffer_size = parse_ring_buffer_size(value)?,
        }
        Ok(())
    }
}

impl LinuxSettings {
    /// These settings with the command line's on top: `--ring-buffer-size` (when given) and
    /// `--dns-port` (when any).
    pub fn with_flags(
        &self,
        ring_buffer_size: Option<&str>,
        dns_ports: &[u16],
    ) -> Result<LinuxSettings, String> {
        let mut s = self.clone();
        if let Some(text) = ring_buffer_size {
            let size = parse_size(text).map_err(|e| match e {
                SizeError::Number => format!("bad size {text:?}: expected a number like 8MiB"),
                SizeError::Unit => format!("bad size unit in {text:?}: use KiB, MiB or GiB"),
                SizeError::TooLarge => format!("size {text:?} is too large"),
            })?;
            s.ring_buffer_size = ring_buffer_bytes(size)?;
        }
        if !dns_ports.is_empty() {
            if dns_ports.len() > MAX_DNS_PORTS || dns_ports.contains(&0) {
                return Err(format!(
                    "between 1 and {MAX_DNS_PORTS} DNS ports (1-65535) can be watched"
                ));
            }
            s.dns_ports = dns_ports.to_vec();
        }
        Ok(s)
    }
}

fn parse_ports(value: Setting<'_>) -> Result<Vec<u16>, SourceError> {
    let items = value.items()?;
    if items.is_empty() {
        return Err(value.err("dns_ports is empty"));
    }
    if items.len() > MAX_DNS_PORTS {
        return Err(value.err(format!(
            "dns_ports lists {} ports, at most {MAX_DNS_PORTS} are allowed",
            items.len()
        )));
    }
    let mut ports = Vec::with_capacity(items.len());
    for item in items {
        let port = item.int("each DNS port", 1, 65535)? as u16;
        if ports.contains(&port) {
            return Err(item.err(format!("DNS port {port} is listed twice")));
        }
        ports.push(port);
    }
    Ok(ports)
}

/// A list of absolute socket paths (one path is a list of one; an empty list asks none).
fn parse_sockets(key: &str, value: Setting<'_>) -> Result<Vec<String>, SourceError> {
    let mut out = Vec::new();
    for item in value.items()? {
        match item.scalar()? {
            Scalar::Str(p) if p.starts_with('/') => out.push(p.to_owned()),
            _ => return Err(item.err(format!("{key} lists absolute paths of unix sockets"))),
        }
    }
    Ok(out)
}

fn parse_ring_buffer_size(value: Setting<'_>) -> Result<u32, SourceError> {
    let bad = || {
        value.err(
            "ring_buffer_size must be a number of bytes or a size such as 16MiB (units B, KiB, MiB, GiB)",
        )
    };
    let size = match value.scalar()? {
        Scalar::Int(n) => u64::try_from(n).map_err(|_| bad())?,
        Scalar::Str(s) => parse_size(s).map_err(|_| bad())?,
        Scalar::Other => return Err(bad()),
    };
    if size == 0 {
        return Err(value.err("ring_buffer_size must not be zero"));
    }
    ring_buffer_bytes(size).map_err(|e| value.err(e))
}

/// Why a size does not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeError {
    /// No number where it should start.
    Number,
    /// A unit that is not B, K, KiB, KB, M, MiB, MB, G, GiB or GB.
    Unit,
    /// More bytes than 64 bits hold.
    TooLarge,
}

/// A size in bytes: a number, then optionally a unit, binary multiples whatever the spelling
/// (`4096`, `64KiB`, `8MiB`, `16M`, `1 GiB`; case does not matter).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| SizeError::Number)?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        _ => return Err(SizeError::Unit),
    };
    n.checked_mul(mult).ok_or(SizeError::TooLarge)
}

/// `size` as a ring buffer size: a power of two from 64 KiB to 1 GiB.
fn ring_buffer_bytes(size: u64) -> Result<u32, String> {
    if !size.is_power_of_two() || !(RING_BUFFER_MIN..=RING_BUFFER_MAX).contains(&size) {
        return Err(format!(
            "ring buffer size {size} must be a power of two between 64KiB and 1GiB"
        ));
    }
    Ok(size as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_every_spelling() {
        for (text, want) in [
            ("4096", 4096),
            ("64KiB", 64 << 10),
            ("8MiB", 8 << 20),
            ("16M", 16 << 20),
            ("16mb", 16 << 20),
            ("1 GiB", 1 << 30),
            (" 2g ", 2 << 30),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        assert_eq!(parse_size("MiB"), Err(SizeError::Number));
        assert_eq!(parse_size("8 furlongs"), Err(SizeError::Unit));
        assert_eq!(parse_size("99999999999999GiB"), Err(SizeError::TooLarge));
    }

    #[test]
    fn flags_win_and_are_checked() {
        let config = LinuxSettings::default();
        let s = config.with_flags(Some("16M"), &[5353]).unwrap();
        assert_eq!((s.ring_buffer_size, s.dns_ports), (16 << 20, vec![5353]));
        assert_eq!(config.with_flags(None, &[]).unwrap(), config);
        assert_eq!(
            config.with_flags(Some("3MiB"), &[]).unwrap_err(),
            "ring buffer size 3145728 must be a power of two between 64KiB and 1GiB"
        );
        assert_eq!(
            config.with_flags(Some("lots"), &[]).unwrap_err(),
            "bad size \"lots\": expected a number like 8MiB"
        );
        assert_eq!(
            config.with_flags(None, &[53, 0]).unwrap_err(),
            "between 1 and 8 DNS ports (1-65535) can be watched"
        );
    }
}
