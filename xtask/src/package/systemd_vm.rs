//! The .deb under a real systemd. A minimal Debian 12 root with systemd is made once with
//! mmdebstrap (Debian's, from deb.debian.org) and cached as `target/package/vm/bookworm.tar`;
//! each check unpacks it, installs the package with dpkg in a chroot (its maintainer scripts
//! enable the unit, as on any host), adds a one-shot check unit, and boots the whole root as
//! the initramfs of the kernel matrix's Debian 6.12 cloud kernel under QEMU (TCG, no network
//! device), systemd as PID 1. The check waits for the sensor's ready line in the journal, runs
//! a copy of `true` named `ngrok`, reloads the unit, and prints between the matrix's markers
//! the unit's state, the capabilities, no_new_privs and seccomp mode of its process, and
//! `journalctl -u tunnelwatch -o cat`. It must show the unit active and never restarted, the
//! unit's bounding set in force, an alert in the journal and the reload.
//!
//! May use: shell, arch, kernels (its apt and boot parts), package (paths).

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    arch::Arch,
    kernels::{
        apt,
        boot::{self, Accel},
    },
    shell::{path_str, run, sh},
};

/// The Debian release of the root.
const SUITE: &str = "bookworm";
/// Where the root is cached.
const CACHE: &str = "target/package/vm";
/// The capabilities the unit's `CapabilityBoundingSet=` leaves (CapBnd as /proc prints it).
const BOUNDING_SET: &str = "000000c001081004";

/// The one-shot check, run by systemd after tunnelwatch.service; its report goes to the
/// serial console between the kernel matrix's markers.
const CHECK: &str = r#"#!/bin/sh
exec > /dev/ttyS0 2>&1
ready=FAIL
for i in $(seq 240); do
    journalctl -u tunnelwatch -o cat | grep -q '^tunnelwatch: ready' && { ready=PASS; break; }
    sleep 0.5
done
/usr/local/bin/ngrok http 8080
sleep 3
systemctl reload tunnelwatch
sleep 3
pid=$(systemctl show tunnelwatch -p MainPID --value)
echo
echo '===== tunnelwatch kernel test: begin ====='
echo "kernel: $(uname -r)"
echo '----- sensor stderr -----'
systemctl show tunnelwatch -p ActiveState -p NRestarts -p MainPID
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/$pid/status
echo '----- sensor stdout -----'
journalctl -u tunnelwatch -o cat --no-pager
echo '----- results -----'
echo "TW-RESULT loaded $ready"
[ "$(systemctl is-active tunnelwatch)" = active ] && [ "$(systemctl show tunnelwatch -p NRestarts --value)" = 0 ] \
    && echo 'TW-RESULT unit_active PASS' || echo 'TW-RESULT unit_active FAIL'
grep -q "^CapBnd:.@BOUNDING@$" /proc/$pid/status && grep -q '^NoNewPrivs:.1$' /proc/$pid/status \
    && grep -q '^Seccomp:.2$' /proc/$pid/status \
    && echo 'TW-RESULT sandboxed PASS' || echo 'TW-RESULT sandboxed FAIL'
journalctl -u tunnelwatch -o cat | grep -q '"rule_id":"bc84d574-708c-467d-b78a-4c1e20171f97"' \
    && echo 'TW-RESULT exec_alert PASS' || echo 'TW-RESULT exec_alert FAIL'
journalctl -u tunnelwatch -o cat | grep -q 'rules reloaded after SIGHUP' \
    && echo 'TW-RESULT reload PASS' || echo 'TW-RESULT reload FAIL'
echo '===== tunnelwatch kernel test: end ====='
systemctl poweroff
"#;

/// What the report must say.
const CHECKS: [&str; 5] = ["loaded", "unit_active", "sandboxed", "exec_alert", "reload"];

/// Boots the x86_64 package `deb` under systemd (see the module doc); `work` is a scratch
/// folder.
pub fn check(deb: &Path, work: &Path) -> Result<()> {
    let tarball = root_tarball()?;
    let root = std::path::absolute(work.join("vmroot"))?;
    fs::create_dir_all(&root)?;
    sh("tar", &["-xf", path_str(&tarball)?, "-C", path_str(&root)?])?;
    fs::copy(deb, root.join("tmp/tunnelwatch.deb"))?;
    sh(
        "chroot",
        &[path_str(&root)?, "dpkg", "-i", "/tmp/tunnelwatch.deb"],
    )?;
    fs::remove_file(root.join("tmp/tunnelwatch.deb"))?;
    // A link to an absolute path in the root: looked at, not followed.
    if root
        .join("etc/systemd/system/multi-user.target.wants/tunnelwatch.service")
        .symlink_metadata()
        .is_err()
    {
        bail!("installing the package did not enable tunnelwatch.service");
    }
    let write = |at: &str, text: &str, mode: u32| -> Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = root.join(at);
        fs::write(&path, text)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    fs::copy("/bin/true", root.join("usr/local/bin/ngrok"))?;
    write(
        "usr/local/bin/tw-check",
        &CHECK.replace("@BOUNDING@", BOUNDING_SET),
        0o755,
    )?;
    write(
        "etc/systemd/system/tw-check.service",
        "[Unit]\nDescription=check of tunnelwatch.service\nAfter=tunnelwatch.service\n\
         [Service]\nType=oneshot\nExecStart=/usr/local/bin/tw-check\n",
        0o644,
    )?;
    std::os::unix::fs::symlink(
        "/etc/systemd/system/tw-check.service",
        root.join("etc/systemd/system/multi-user.target.wants/tw-check.service"),
    )?;
    std::os::unix::fs::symlink("/sbin/init", root.join("init"))?;
    fs::write(root.join("etc/hostname"), "tunnelwatch-systemd-vm\n")?;

    let initrd = std::path::absolute(work.join("vmroot.cpio.gz"))?;
    run(std::process::Command::new("sh")
        .current_dir(&root)
        .arg("-c")
        .arg(format!(
            "find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > {}",
            path_str(&initrd)?
        )))?;
    fs::remove_dir_all(&root)?;

    let kdir = PathBuf::from("target/kernels/6.12");
    let image = apt::fetch(
        "6.12",
        Arch::X86_64.debian(),
        &[("debian", "trixie"), ("debian-security", "trixie-security")],
        &kdir,
        false,
    )?;
    let outcome = boot::boot(
        "systemd",
        Arch::X86_64,
        &image.vmlinuz,
        &initrd,
        work,
        Accel::Tcg,
        Duration::from_secs(400),
    )?;
    eprintln!("xtask: the package under systemd: {:.0} s", outcome.seconds);
    if let Some(report) = &outcome.report {
        // The unit's state and its process's sandbox, then the journal's alerts.
        for line in report.stderr.lines().chain(
            report
                .stdout
                .lines()
                .filter(|l| l.starts_with('{') || l.contains("reloaded")),
        ) {
            eprintln!("xtask:   {}", line.chars().take(160).collect::<String>());
        }
    }
    let failed: Vec<&str> = CHECKS
        .into_iter()
        .filter(|c| outcome.check(c) != Some(true))
        .collect();
    if !failed.is_empty() {
        outcome.print_failure();
        bail!("the package under systemd failed: {}", failed.join(", "));
    }
    Ok(())
}

/// The cached root (made by mmdebstrap when absent).
fn root_tarball() -> Result<PathBuf> {
    let tarball = Path::new(CACHE).join(format!("{SUITE}.tar"));
    if tarball.is_file() {
        return Ok(tarball);
    }
    fs::create_dir_all(CACHE)?;
    let partial = Path::new(CACHE).join(format!("{SUITE}.tar.partial"));
    sh(
        "mmdebstrap",
        &[
            "--variant=minbase",
            "--include=systemd,systemd-sysv",
            "--aptopt=Acquire::Languages \"none\"",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "--format=tar",
            SUITE,
            path_str(&partial)?,
            "http://deb.debian.org/debian",
        ],
    )
    .context("mmdebstrap (installed by `cargo xtask setup`) could not make the Debian root")?;
    fs::rename(&partial, &tarball)?;
    Ok(tarball)
}
