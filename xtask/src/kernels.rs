//! `cargo xtask kernels`: the kernel matrix. Boots Debian's cloud kernels (5.10, 6.1, 6.12 and
//! the newest 7.x on x86_64; 6.12 on arm64) under QEMU, each with the release sensor of its
//! architecture in an initramfs, and checks inside the VM that the sensor loads, alerts on an
//! exec of `ngrok` and on a DNS query for an ngrok domain, identifies a renamed Go-built ngrok
//! (which checks the exec record's inode, size and times against the file), and exits cleanly
//! on SIGINT.
//!
//! - Packages: qemu-system-x86, qemu-system-arm, busybox-static, binutils, the aarch64 cross
//!   toolchain and debian-archive-keyring, installed by `cargo xtask setup` (CI runs the matrix
//!   as part of `cargo xtask test`). When the matrix cannot run (no QEMU, downloads refused),
//!   it fails and says why: it is never skipped.
//! - Kernels (kernels/apt.rs): `apt-get download` of `linux-image-*-cloud-ARCH` (and, from 6.19
//!   on, the `linux-binary-*` and `linux-base-*` packages that hold its files) with a private
//!   apt configuration naming only deb.debian.org; the newest image of each series in its
//!   suites is picked and cached in `target/kernels/NAME/`: `--refresh` looks again.
//! - Initramfs (kernels/initramfs.rs, kernels/guest.rs), one per architecture: busybox (for
//!   arm64, Debian's busybox-static of arm64, downloaded once), the sensor and its libraries, a
//!   program that exits named `ngrok`, a renamed Go-built ngrok, and an init script that
//!   prints a report between markers and powers off.
//! - VM (kernels/boot.rs): no network device at all (`-nic none`), serial console only, kept
//!   in `target/kernels/NAME/console.log`; arm64 on QEMU's `virt` machine with `-cpu max`.
//!
//! May use: shell, arch, and its own parts (kernels/).

// apt and boot also serve the package's systemd check (package/systemd_vm.rs).
pub mod apt;
pub mod boot;
mod guest;
mod initramfs;

use std::{
    fs,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use self::{
    apt::Image,
    boot::{Accel, Outcome},
};
use crate::{arch::Arch, shell::output};

/// One kernel of the matrix: a series of Debian cloud images and the suites to take it from.
struct Kernel {
    /// What `--kernel` takes and the table shows.
    name: &'static str,
    /// Image packages are `linux-image-{series}.*-cloud-{arch}`; the newest one wins.
    series: &'static str,
    arch: Arch,
    /// (archive, suite) pairs on deb.debian.org.
    suites: &'static [(&'static str, &'static str)],
}

/// The matrix: every kernel from 5.10 LTS on that a Debian release ships, and the newest.
const KERNELS: &[Kernel] = &[
    Kernel {
        name: "5.10",
        series: "5.10",
        arch: Arch::X86_64,
        suites: &[
            ("debian", "bullseye"),
            ("debian-security", "bullseye-security"),
        ],
    },
    Kernel {
        name: "6.1",
        series: "6.1",
        arch: Arch::X86_64,
        suites: &[
            ("debian", "bookworm"),
            ("debian-security", "bookworm-security"),
        ],
    },
    Kernel {
        name: "6.12",
        series: "6.12",
        arch: Arch::X86_64,
        suites: &[("debian", "trixie"), ("debian-security", "trixie-security")],
    },
    Kernel {
        name: "7",
        series: "7",
        arch: Arch::X86_64,
        suites: &[
            ("debian", "trixie-backports"),
            ("debian", "sid"),
            ("debian", "experimental"),
        ],
    },
    // The arm64 sensor, run: Debian 13's kernel, the newest stable one.
    Kernel {
        name: "6.12-arm64",
        series: "6.12",
        arch: Arch::Aarch64,
        suites: &[("debian", "trixie"), ("debian-security", "trixie-security")],
    },
];

/// `cargo xtask kernels` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this kernel (repeatable): 5.10, 6.1, 6.12, 7 or 6.12-arm64. Default: all.
    #[arg(long = "kernel", value_name = "NAME")]
    kernels: Vec<String>,
    /// Look for newer kernel packages instead of using the ones cached in target/kernels/.
    #[arg(long)]
    refresh: bool,
    /// QEMU accelerator.
    #[arg(long, value_enum, default_value_t = Accel::Tcg)]
    accel: Accel,
    /// Seconds one VM may run (boot, test, power off) before it counts as failed.
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    timeout: u64,
}

impl Default for Args {
    /// What `cargo xtask test` runs: every kernel, cached packages, TCG, 300 s a VM.
    fn default() -> Self {
        Args {
            kernels: Vec::new(),
            refresh: false,
            accel: Accel::Tcg,
            timeout: 300,
        }
    }
}

/// Runs the matrix; fails when any kernel fails.
pub fn run(args: &Args) -> Result<()> {
    let selected: Vec<&Kernel> = if args.kernels.is_empty() {
        KERNELS.iter().collect()
    } else {
        args.kernels
            .iter()
            .map(|n| {
                KERNELS.iter().find(|k| k.name == n).with_context(|| {
                    let names: Vec<_> = KERNELS.iter().map(|k| k.name).collect();
                    format!("no kernel {n:?}: choose from {}", names.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    let started = Instant::now();
    let accel = args.accel;
    let dir = PathBuf::from("target/kernels");
    fs::create_dir_all(&dir)?;
    let mut initrds = Vec::new();
    for arch in Arch::ALL {
        if !selected.iter().any(|k| k.arch == arch) {
            continue;
        }
        let qemu = boot::qemu(arch);
        if output(qemu, &["--version"]).is_none() {
            bail!(
                "the kernel matrix needs {qemu}, which cannot run here: `cargo xtask setup` \
                 installs it (qemu-system-x86, qemu-system-arm)"
            );
        }
        if accel == Accel::Kvm && (!arch.is_host() || !boot::kvm_usable()) {
            bail!("--accel kvm: /dev/kvm cannot be opened, or {arch:?} is not this machine's");
        }
        arch.build_release()?;
        let adir = dir.join(format!("initramfs-{}", arch.debian()));
        fs::create_dir_all(&adir)?;
        initrds.push((arch, initramfs::build(arch, &adir)?));
    }

    let mut results = Vec::new();
    for kernel in selected {
        let kdir = dir.join(kernel.name);
        let initrd = &initrds
            .iter()
            .find(|(a, _)| *a == kernel.arch)
            .expect("built above")
            .1;
        let image = apt::fetch(
            kernel.series,
            kernel.arch.debian(),
            kernel.suites,
            &kdir,
            args.refresh,
        )
        .with_context(|| {
            format!(
                "cannot get Debian's {} kernel from deb.debian.org (cached in {} once \
                     downloaded)",
                kernel.name,
                kdir.display()
            )
        })?;
        eprintln!(
            "xtask: booting {} ({}, {}) under QEMU ({accel:?})",
            kernel.name, image.release, image.version
        );
        let result = boot::boot(
            kernel.name,
            kernel.arch,
            &image.vmlinuz,
            initrd,
            &kdir,
            accel,
            Duration::from_secs(args.timeout),
        )?;
        eprintln!(
            "xtask: {}: {} in {:.1} s",
            kernel.name,
            result.verdict(),
            result.seconds
        );
        results.push((image, result));
    }

    print_table(&results, accel);
    eprintln!(
        "xtask: kernel matrix: {} of {} passed in {:.0} s",
        results.iter().filter(|(_, r)| r.passed()).count(),
        results.len(),
        started.elapsed().as_secs_f64()
    );
    let failed: Vec<_> = results
        .iter()
        .filter(|(_, r)| !r.passed())
        .map(|(_, r)| r.name)
        .collect();
    for (_, r) in results.iter().filter(|(_, r)| !r.passed()) {
        r.print_failure();
    }
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("kernel matrix failed on {}", failed.join(", "))
    }
}

/// The results table, on stdout.
fn print_table(results: &[(Image, Outcome)], accel: Accel) {
    let mark = |v: Option<bool>| match v {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "-",
    };
    println!(
        "\n{:<6} {:<28} {:<4} {:<6} {:<10} {:<9} {:<10} {:<10} {:<6} {:>8} {:>7}  refused",
        "kernel",
        "release",
        "btf",
        "loaded",
        "exec alert",
        "dns alert",
        "identified",
        "conn alert",
        "exit",
        "load ms",
        "seconds"
    );
    for (image, o) in results {
        let release = o
            .report
            .as_ref()
            .map_or(image.release.as_str(), |r| r.kernel.as_str());
        println!(
            "{:<6} {:<28} {:<4} {:<6} {:<10} {:<9} {:<10} {:<10} {:<6} {:>8} {:>7.1}  {}",
            o.name,
            release,
            if image.btf { "yes" } else { "no" },
            mark(o.check("loaded")),
            mark(o.check("exec_alert")),
            mark(o.check("dns_alert")),
            mark(o.check("identified")),
            mark(o.check("conn_alert")),
            mark(o.check("exit")),
            o.ready_ms().map_or_else(|| "-".into(), |ms| ms.to_string()),
            o.seconds,
            o.refused().unwrap_or_else(|| "-".into()),
        );
    }
    println!(
        "(QEMU {accel:?}; seconds: boot, test and power-off; packages: {})",
        {
            let p: Vec<String> = results
                .iter()
                .map(|(i, _)| format!("{} {}", i.package, i.version))
                .collect();
            p.join(", ")
        }
    );
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: super::Args,
    }

    #[test]
    fn what_ci_runs_is_the_command_line_default() {
        assert_eq!(
            format!("{:?}", Cli::parse_from(["kernels"]).args),
            format!("{:?}", super::Args::default())
        );
    }
}
