//! Debian packages on this machine: which of a list are missing, and installing those with
//! apt-get (through sudo when not root). Nothing happens when all are there, so every command
//! can call it on every run.
//!
//! May use: shell.

use std::process::Command;

use anyhow::Result;

use crate::shell::{self, output};

/// Those of `packages` that dpkg does not list as installed.
pub fn missing<'a>(packages: &[&'a str]) -> Vec<&'a str> {
    packages
        .iter()
        .copied()
        .filter(|p| {
            output("dpkg-query", &["-W", "-f=${db:Status-Abbrev}", p])
                .is_none_or(|s| !s.starts_with("ii"))
        })
        .collect()
}

/// Installs those of `packages` this machine lacks (`apt-get update`, then `apt-get install
/// --no-install-recommends`); nothing when all are there.
pub fn install(packages: &[&str]) -> Result<()> {
    let missing = missing(packages);
    if missing.is_empty() {
        return Ok(());
    }
    let apt_get = || {
        let mut c = if shell::is_root() {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    shell::run(apt_get().args(["update", "-q"]))?;
    shell::run(
        apt_get()
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing),
    )
}
