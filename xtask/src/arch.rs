//! The CPU architectures the sensor is built, packaged and tested for (x86_64 and aarch64):
//! their names in Rust, Debian and OCI, where their release binary is, the Debian packages and
//! programs that cross-build for them, and the files a binary of theirs needs to run in an
//! otherwise empty root (its dynamic loader and shared libraries, found from its own ELF
//! headers, so that this works for a foreign architecture too).
//!
//! May use: shell.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::shell::{capture, cargo, path_str};

/// An architecture of the packages and the kernel matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "aarch64")]
    Aarch64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The name in file names and the kernel matrix (`x86_64`, `aarch64`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Rust's target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// Debian's architecture name (`amd64`, `arm64`), also the OCI image's.
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// Whether this is the machine's own architecture (built without `--target`).
    pub fn is_host(self) -> bool {
        std::env::consts::ARCH == self.name()
    }

    /// `cargo build --release` of the sensor for this architecture.
    pub fn build_release(self) -> Result<()> {
        if self.is_host() {
            cargo(["build", "--release", "-p", "tunnelwatch"])
        } else {
            cargo([
                "build",
                "--release",
                "-p",
                "tunnelwatch",
                "--target",
                self.triple(),
            ])
        }
    }

    /// Where [`Arch::build_release`] puts the binary.
    pub fn release_binary(self) -> PathBuf {
        if self.is_host() {
            PathBuf::from("target/release/tunnelwatch")
        } else {
            PathBuf::from(format!("target/{}/release/tunnelwatch", self.triple()))
        }
    }

    /// The binutils prefix for this architecture's files (`strip` and `readelf` of the host
    /// handle its own only).
    fn binutils(self, tool: &str) -> String {
        if self.is_host() {
            tool.to_string()
        } else {
            format!("{}-linux-gnu-{tool}", self.name())
        }
    }

    /// Writes `binary` without its debug information and the symbols it does not need to
    /// run to `out` (as Debian strips its packages' binaries).
    pub fn strip(self, binary: &Path, out: &Path) -> Result<()> {
        capture(
            &self.binutils("strip"),
            &[
                "--strip-unneeded",
                "--remove-section=.comment",
                "--remove-section=.note",
                "-o",
                path_str(out)?,
                path_str(binary)?,
            ],
        )
        .map(drop)
    }

    /// Where this architecture's shared libraries are on this machine: the system's own for
    /// the host, Debian's cross packages (libc6-arm64-cross) for the other.
    fn library_dirs(self) -> Vec<PathBuf> {
        if self.is_host() {
            let multiarch = format!("{}-linux-gnu", self.name());
            vec![
                Path::new("/lib").join(&multiarch),
                Path::new("/usr/lib").join(&multiarch),
                "/lib64".into(),
                "/lib".into(),
            ]
        } else {
            vec![format!("/usr/{}-linux-gnu/lib", self.name()).into()]
        }
    }

    /// The files `binary` needs to run: (path in the target root, file here) for its dynamic
    /// loader (at the path its `PT_INTERP` names) and every shared library it needs, directly
    /// or through another (in `/lib/MULTIARCH/`, where Debian's loader looks).
    pub fn runtime_files(self, binary: &Path) -> Result<Vec<(String, PathBuf)>> {
        let readelf = self.binutils("readelf");
        let headers = capture(&readelf, &["-lW", path_str(binary)?])?;
        let interpreter = headers
            .lines()
            .find_map(|l| {
                l.split_once("Requesting program interpreter: ")
                    .map(|(_, r)| r.trim_end_matches(']').trim().to_string())
            })
            .with_context(|| format!("{} is not dynamically linked", binary.display()))?;
        let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        let mut files = vec![(
            interpreter.trim_start_matches('/').to_string(),
            self.find_library(&name(&interpreter))?,
        )];
        let mut pending = vec![binary.to_path_buf()];
        let mut seen = vec![name(&interpreter)];
        while let Some(file) = pending.pop() {
            for needed in needed_libraries(&capture(&readelf, &["-dW", path_str(&file)?])?) {
                if seen.contains(&needed) {
                    continue;
                }
                let found = self.find_library(&needed)?;
                files.push((
                    format!("lib/{}-linux-gnu/{needed}", self.name()),
                    found.clone(),
                ));
                pending.push(found);
                seen.push(needed);
            }
        }
        Ok(files)
    }

    /// The file of library `name` for this architecture, links resolved.
    fn find_library(self, name: &str) -> Result<PathBuf> {
        for dir in self.library_dirs() {
            let path = dir.join(name);
            if path.exists() {
                return Ok(path.canonicalize()?);
            }
        }
        bail!(
            "{name} ({}) is not on this machine: `cargo xtask setup` installs the cross \
             libraries (libc6-dev-arm64-cross)",
            self.name()
        )
    }
}

/// The `NEEDED` entries of `readelf -d` output.
fn needed_libraries(dynamic: &str) -> Vec<String> {
    dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| {
            let at = l.find("Shared library: [")? + "Shared library: [".len();
            Some(l[at..].split(']').next()?.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_entries_are_read_from_readelf() {
        let text = " 0x0000000000000001 (NEEDED)             Shared library: [libgcc_s.so.1]\n \
                    0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]\n \
                    0x000000000000000c (INIT)               0x4000\n";
        assert_eq!(needed_libraries(text), ["libgcc_s.so.1", "libc.so.6"]);
    }

    #[test]
    fn the_hosts_own_binaries_find_their_libraries() {
        let host = Arch::ALL
            .into_iter()
            .find(|a| a.is_host())
            .expect("a known host");
        let files = host.runtime_files(Path::new("/bin/ls")).unwrap();
        assert!(
            files.iter().any(|(at, _)| at.ends_with("/libc.so.6")),
            "{files:?}"
        );
        assert!(files[0].0.contains("ld-linux"), "{files:?}");
        assert!(files.iter().all(|(_, from)| from.is_file()), "{files:?}");
    }
}
