//! The Debian package: a staged tree (the binary, the unit, the conffile, the copyright and
//! changelog, the maintainer scripts of `deploy/debian/`) built with `dpkg-deb`; and its check:
//! the package's fields and files, an install into a throwaway root with dpkg (the
//! configuration file registered as a conffile, kept through a remove when changed, gone
//! after a purge), the unit through `systemd-analyze verify` and `security` (whose exposure
//! score is printed), and lintian.
//!
//! May use: shell, arch, package (the version and paths).

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail, ensure};

use super::VERSION;
use crate::{
    arch::Arch,
    shell::{capture, output, path_str, run, sh},
};

/// Where the package puts the unit (systemd's own directory, also on merged-/usr hosts).
const UNIT: &str = "usr/lib/systemd/system/tunnelwatch.service";
/// The configuration file, a conffile.
const CONFFILE: &str = "etc/tunnelwatch/tunnelwatch.yml";
/// The highest `systemd-analyze security` exposure the unit may have (0 safe .. 10 exposed).
const MAX_EXPOSURE: f64 = 4.0;

/// Stages and builds `tunnelwatch_VERSION_ARCH.deb` in `out` from the stripped `binary`;
/// `work` is a scratch folder.
pub fn build(arch: Arch, binary: &Path, work: &Path, out: &Path) -> Result<PathBuf> {
    let root = work.join("deb");
    let put = |at: &str, from: &[u8], mode: u32| -> Result<()> {
        let path = root.join(at);
        fs::create_dir_all(path.parent().expect("a file in a folder"))?;
        fs::write(&path, from)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    let deploy = |name: &str| -> Result<Vec<u8>> {
        fs::read(Path::new("deploy").join(name)).with_context(|| format!("deploy/{name}"))
    };
    put("usr/bin/tunnelwatch", &fs::read(binary)?, 0o755)?;
    put(UNIT, &deploy("tunnelwatch.service")?, 0o644)?;
    put(CONFFILE, &deploy("tunnelwatch.yml")?, 0o644)?;
    put(
        "usr/share/doc/tunnelwatch/copyright",
        &deploy("debian/copyright")?,
        0o644,
    )?;
    put(
        "usr/share/lintian/overrides/tunnelwatch",
        &deploy("debian/lintian-overrides")?,
        0o644,
    )?;
    // A native package (no Debian revision): its changelog is changelog.gz.
    let changelog = work.join("changelog");
    fs::write(&changelog, changelog_text()?)?;
    sh("gzip", &["-9", "-n", "-f", path_str(&changelog)?])?;
    put(
        "usr/share/doc/tunnelwatch/changelog.gz",
        &fs::read(work.join("changelog.gz"))?,
        0o644,
    )?;
    for script in ["postinst", "prerm", "postrm"] {
        put(
            &format!("DEBIAN/{script}"),
            &deploy(&format!("debian/{script}"))?,
            0o755,
        )?;
    }
    put(
        "DEBIAN/conffiles",
        format!("/{CONFFILE}\n").as_bytes(),
        0o644,
    )?;
    let sums = capture(
        "sh",
        &[
            "-c",
            &format!(
                "cd {} && find usr etc -type f | LC_ALL=C sort | xargs md5sum",
                path_str(&root)?
            ),
        ],
    )?;
    put("DEBIAN/md5sums", sums.as_bytes(), 0o644)?;
    let installed_kib = capture("du", &["-sk", "--exclude=DEBIAN", path_str(&root)?])?
        .split_whitespace()
        .next()
        .unwrap_or("0")
        .to_string();
    let control = control_text(arch, binary, &installed_kib)?;
    put("DEBIAN/control", control.as_bytes(), 0o644)?;

    let deb = out.join(format!("tunnelwatch_{VERSION}_{}.deb", arch.debian()));
    sh(
        "dpkg-deb",
        &[
            "--root-owner-group",
            "-Zxz",
            "--build",
            path_str(&root)?,
            path_str(&deb)?,
        ],
    )?;
    Ok(deb)
}

/// The package's control file.
fn control_text(arch: Arch, binary: &Path, installed_kib: &str) -> Result<String> {
    let glibc = glibc_needed(arch, binary)?;
    Ok(format!(
        "Package: tunnelwatch\n\
         Version: {VERSION}\n\
         Architecture: {debian}\n\
         Maintainer: tunnelwatch maintainers <tunnelwatch@users.noreply.github.com>\n\
         Installed-Size: {installed_kib}\n\
         Depends: libc6 (>= {glibc}), libgcc-s1\n\
         Section: admin\n\
         Priority: optional\n\
         Homepage: https://github.com/tunnelwatch/tunnelwatch\n\
         Description: real-time sensor for reverse-proxy tunnels (ngrok and kin)\n \
         tunnelwatch watches every exec and every DNS packet of the host through eBPF\n \
         programs and matches them against Sigma rules (the shipped tunnel pack is\n \
         built in). Each alert is one JSON line on stdout, with Splunk CIM field\n \
         names, the rule's id, MITRE techniques, risk score and message; under the\n \
         systemd unit they go to the journal.\n \
         .\n \
         It needs Linux 5.10 or later with BTF and cgroup v2.\n",
        debian = arch.debian(),
    ))
}

/// The newest glibc symbol version `binary` needs (`2.34` for `GLIBC_2.34`).
fn glibc_needed(arch: Arch, binary: &Path) -> Result<String> {
    let symbols = capture(
        &format!("{}-linux-gnu-readelf", arch.name()),
        &["--dyn-syms", "-W", path_str(binary)?],
    )
    .or_else(|_| capture("readelf", &["--dyn-syms", "-W", path_str(binary)?]))?;
    let mut best: Option<(Vec<u32>, String)> = None;
    for word in symbols.split_whitespace() {
        let Some(at) = word.find("@GLIBC_") else {
            continue;
        };
        let version = word[at + "@GLIBC_".len()..]
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap_or("");
        let key: Vec<u32> = version.split('.').filter_map(|n| n.parse().ok()).collect();
        if !key.is_empty() && best.as_ref().is_none_or(|(b, _)| key > *b) {
            best = Some((key, version.to_string()));
        }
    }
    best.map(|(_, v)| v)
        .with_context(|| format!("{} names no glibc symbol version", binary.display()))
}

/// The Debian changelog of this version, dated by the last commit (so that two builds of one
/// commit are the same package).
fn changelog_text() -> Result<String> {
    let date = output("git", &["log", "-1", "--format=%aD"])
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 +0000".into());
    Ok(format!(
        "tunnelwatch ({VERSION}) unstable; urgency=medium\n\n  \
         * Built by `cargo xtask package`; the project's history is its git log.\n\n \
         -- tunnelwatch maintainers <tunnelwatch@users.noreply.github.com>  {date}\n"
    ))
}

/// Checks the built package (see the module doc); fails with what is wrong.
pub fn check(arch: Arch, deb: &Path, work: &Path) -> Result<()> {
    let deb_s = path_str(deb)?;
    let info = capture("dpkg-deb", &["--field", deb_s])?;
    for want in [
        "Package: tunnelwatch",
        &format!("Architecture: {}", arch.debian()),
        &format!("Version: {VERSION}"),
    ] {
        ensure!(info.contains(want), "{deb_s}: no `{want}` in\n{info}");
    }

    // Install, change the conffile, remove, purge: in a root of its own, scripts outside it
    // (they do nothing under DPKG_ROOT).
    let root = std::path::absolute(work.join("root"))?;
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/triggers",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::write(root.join("var/lib/dpkg/status"), "")?;
    let dpkg = |args: &[&str]| -> Result<()> {
        let root_arg = format!("--root={}", path_str(&root)?);
        run(Command::new("dpkg")
            .args([
                root_arg.as_str(),
                "--force-script-chrootless",
                "--force-depends",
                "--force-architecture",
                "--log=/dev/null",
            ])
            .args(args))
    };
    dpkg(&["--install", deb_s])?;
    for file in ["usr/bin/tunnelwatch", UNIT, CONFFILE] {
        ensure!(root.join(file).is_file(), "dpkg did not install /{file}");
    }
    let status = capture(
        "dpkg-query",
        &[
            &format!("--root={}", path_str(&root)?),
            "--status",
            "tunnelwatch",
        ],
    )?;
    ensure!(
        status.contains("Status: install ok installed")
            && status.contains(&format!(" /{CONFFILE} ")),
        "dpkg does not list /{CONFFILE} as a conffile of an installed tunnelwatch:\n{status}"
    );
    verify_unit(&root)?;
    fs::write(root.join(CONFFILE), "stats_interval: 30s\n")?;
    dpkg(&["--remove", "tunnelwatch"])?;
    ensure!(
        !root.join("usr/bin/tunnelwatch").exists() && !root.join(UNIT).exists(),
        "files left after dpkg --remove"
    );
    ensure!(
        fs::read_to_string(root.join(CONFFILE))? == "stats_interval: 30s\n",
        "the changed configuration did not survive dpkg --remove"
    );
    dpkg(&["--purge", "tunnelwatch"])?;
    ensure!(
        !root.join(CONFFILE).exists(),
        "/{CONFFILE} left after dpkg --purge"
    );
    lintian(deb)?;
    eprintln!("xtask: {deb_s}: installed, configured, removed and purged in a throwaway root");
    Ok(())
}

/// `systemd-analyze verify` of the unit as installed under `root`, and its `security`
/// exposure (printed; above [`MAX_EXPOSURE`] fails). verify checks the unit against this
/// machine's systemd units and programs, so it runs in a mount namespace of its own where the
/// root's /usr/bin lies over this machine's (the binary is there, nothing of the host
/// changes).
fn verify_unit(root: &Path) -> Result<()> {
    let unit = root.join(UNIT);
    let script = format!(
        "mount -t overlay overlay -o lowerdir={}:/usr/bin /usr/bin && \
         exec systemd-analyze verify --man=no {}",
        path_str(&root.join("usr/bin"))?,
        path_str(&unit)?
    );
    // Warnings (stderr) fail too: the unit must verify clean.
    let out = Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .output()
        .context("cannot run unshare (package util-linux)")?;
    let said = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    if !out.status.success() || !said.is_empty() {
        bail!(
            "systemd-analyze verify {}:\n{}",
            unit.display(),
            said.join("\n")
        );
    }
    let security = capture(
        "systemd-analyze",
        &["security", "--offline=true", "--no-pager", path_str(&unit)?],
    )?;
    let line = security
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .context("systemd-analyze security printed no exposure level")?;
    eprintln!("xtask: systemd-analyze security: {}", line.trim());
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("cannot read the exposure in {line:?}"))?;
    ensure!(
        score <= MAX_EXPOSURE,
        "the unit's exposure {score} is above {MAX_EXPOSURE}"
    );
    Ok(())
}

/// lintian (Debian's package checker); errors fail, warnings are shown.
fn lintian(deb: &Path) -> Result<()> {
    if output("lintian", &["--version"]).is_none() {
        bail!("lintian cannot run: `cargo xtask setup` installs it");
    }
    run(Command::new("lintian").args([
        "--fail-on",
        "error",
        "--suppress-tags",
        // The package is built from the repository, not from a Debian source package.
        "no-manual-page,initial-upload-closes-no-bugs",
        path_str(deb)?,
    ]))
}
