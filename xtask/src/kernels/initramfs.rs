//! The matrix's initramfs, one per architecture: a "newc" cpio archive, gzipped, with busybox
//! (static), the stripped release sensor and the shared libraries it needs, a program that
//! exits named `ngrok`, `update-helper` (a static program that exits, carrying Go 1.16 build
//! information naming ngrok), a ClientHello (`hello.bin`, for the connection check),
//! /etc/passwd and the guest's init script.
//!
//! - x86_64: the machine's busybox-static, a copy of its `true` (and its libraries), and an
//!   `update-helper` built whole by tunnelwatch-identify's test builder in the Go 1.16 layout.
//! - arm64: Debian's busybox-static of arm64 (downloaded once into
//!   `target/kernels/busybox-arm64/`), a static program that exits built with the cross
//!   compiler as `ngrok`, and the same program with a `.go.buildinfo` section (Go 1.22's
//!   inline layout) added by the cross objcopy as `update-helper`.
//!
//! May use: shell, arch, kernels/apt (the arm64 busybox), kernels/guest (the init script),
//! tunnelwatch-identify (its test builder).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};

use super::{apt, guest};
use crate::{
    arch::Arch,
    shell::{output, path_str, sh},
};

/// Builds `dir/initrd.gz` for `arch`: busybox, the stripped release sensor and its libraries,
/// `ngrok`, `update-helper` (a renamed Go-built ngrok), /etc/passwd and the init script.
pub fn build(arch: Arch, dir: &Path) -> Result<PathBuf> {
    let mut cpio = Cpio::default();
    for d in ["dev", "proc", "sys", "tmp", "root", "etc"] {
        cpio.dir(d);
    }
    cpio.char_dev("dev/console", 5, 1);
    cpio.char_dev("dev/null", 1, 3);

    let stripped = dir.join("tunnelwatch.stripped");
    arch.strip(&arch.release_binary(), &stripped)?;
    cpio.file("usr/bin/tunnelwatch", 0o755, fs::read(&stripped)?);
    cpio.file("hello.bin", 0o644, super::guest::CLIENT_HELLO.to_vec());
    for (at, from) in arch.runtime_files(&stripped)? {
        cpio.file(&at, 0o755, fs::read(&from)?);
    }
    match arch {
        Arch::X86_64 => {
            let busybox = Path::new("/bin/busybox");
            if output("ldd", &[path_str(busybox)?]).is_some_and(|o| !o.contains("not a dynamic")) {
                bail!("/bin/busybox is not static: install busybox-static");
            }
            cpio.file("bin/busybox", 0o755, fs::read(busybox)?);
            let true_path = Path::new("/bin/true");
            cpio.file("ngrok", 0o755, fs::read(true_path)?);
            for lib in shared_libraries(true_path)? {
                let data = fs::read(&lib).with_context(|| format!("cannot read {lib}"))?;
                cpio.file(lib.trim_start_matches('/'), 0o755, data);
            }
            let renamed =
                tunnelwatch_identify::testing::GoFile::new("go1.16.15", "go.ngrok.com/cmd/ngrok");
            cpio.file("update-helper", 0o755, renamed.elf());
        }
        Arch::Aarch64 => {
            let busybox = apt::fetch_file(
                "busybox-static",
                "usr/bin/busybox",
                arch.debian(),
                &[("debian", "trixie")],
                Path::new("target/kernels/busybox-arm64"),
            )?;
            cpio.file("bin/busybox", 0o755, fs::read(busybox)?);
            let (exit0, renamed) = arm64_programs(dir)?;
            cpio.file("ngrok", 0o755, fs::read(exit0)?);
            cpio.file("update-helper", 0o755, fs::read(renamed)?);
        }
    }

    cpio.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n".to_vec(),
    );
    cpio.file("etc/group", 0o644, b"root:x:0:\n".to_vec());
    cpio.file("init", 0o755, guest::init_script().into_bytes());

    let raw = dir.join("initrd");
    fs::write(&raw, cpio.finish())?;
    sh("gzip", &["-f", "-n", "-6", path_str(&raw)?])?;
    Ok(dir.join("initrd.gz"))
}

/// For the arm64 guest: a static program that exits 0, and a copy of it carrying Go build
/// information that names ngrok, built in `dir` with the cross compiler and objcopy.
fn arm64_programs(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let source = dir.join("exit0.c");
    fs::write(&source, "int main(void) { return 0; }\n")?;
    let exit0 = dir.join("exit0");
    sh(
        "aarch64-linux-gnu-gcc",
        &[
            "-static",
            "-O2",
            "-o",
            path_str(&exit0)?,
            path_str(&source)?,
        ],
    )?;
    let blob = dir.join("buildinfo");
    fs::write(
        &blob,
        tunnelwatch_identify::testing::inline_blob(
            "go1.22.4",
            &tunnelwatch_identify::testing::modinfo("go.ngrok.com/cmd/ngrok", "go.ngrok.com"),
        ),
    )?;
    let renamed = dir.join("update-helper");
    sh(
        "aarch64-linux-gnu-objcopy",
        &[
            "--add-section",
            &format!(".go.buildinfo={}", path_str(&blob)?),
            path_str(&exit0)?,
            path_str(&renamed)?,
        ],
    )?;
    Ok((exit0, renamed))
}

/// The shared libraries (and the dynamic loader) that `ldd` lists for `program`.
fn shared_libraries(program: &Path) -> Result<Vec<String>> {
    let text = output("ldd", &[path_str(program)?])
        .with_context(|| format!("ldd {} failed", program.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_string())
        })
        .collect())
}

/// A cpio archive in the "newc" format that the kernel unpacks as its initramfs.
#[derive(Default)]
struct Cpio {
    /// Paths (no leading `/`) in order: a directory sorts before what it holds.
    entries: BTreeMap<String, Entry>,
}

enum Entry {
    Dir,
    File { mode: u32, data: Vec<u8> },
    CharDev { major: u32, minor: u32 },
}

impl Cpio {
    /// Adds a directory and its parents.
    fn dir(&mut self, path: &str) {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            self.entries.insert(path[..at + i].to_string(), Entry::Dir);
            at += i + 1;
        }
        self.entries.insert(path.to_string(), Entry::Dir);
    }

    fn parents(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) {
        self.parents(path);
        self.entries
            .insert(path.to_string(), Entry::File { mode, data });
    }

    fn char_dev(&mut self, path: &str, major: u32, minor: u32) {
        self.parents(path);
        self.entries
            .insert(path.to_string(), Entry::CharDev { major, minor });
    }

    /// The archive's bytes, trailer included.
    fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (name, entry)) in (1..).zip(&self.entries) {
            let (mode, nlink, rdev, data): (u32, u32, (u32, u32), &[u8]) = match entry {
                Entry::Dir => (0o040_755, 2, (0, 0), &[]),
                Entry::File { mode, data } => (0o100_000 | mode, 1, (0, 0), data),
                Entry::CharDev { major, minor } => (0o020_600, 1, (*major, *minor), &[]),
            };
            Self::record(&mut out, ino, mode, nlink, rdev, name, data);
        }
        Self::record(&mut out, 0, 0, 1, (0, 0), "TRAILER!!!", &[]);
        out
    }

    fn record(
        out: &mut Vec<u8>,
        ino: u32,
        mode: u32,
        nlink: u32,
        rdev: (u32, u32),
        name: &str,
        data: &[u8],
    ) {
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        pad4(out);
        out.extend_from_slice(data);
        pad4(out);
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}
