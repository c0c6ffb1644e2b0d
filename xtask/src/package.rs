//! `cargo xtask package`: what a fleet installs, for x86_64 and aarch64, under
//! `target/package/`:
//!
//! - `tunnelwatch_VERSION_ARCH.deb` (package/deb.rs): the sensor (the shipped rules embedded),
//!   the systemd unit `deploy/tunnelwatch.service` and the commented configuration
//!   `deploy/tunnelwatch.yml` as the conffile `/etc/tunnelwatch/tunnelwatch.yml`; built with
//!   Debian's dpkg-deb from a staged tree, then installed, changed, removed and purged in a
//!   throwaway root, its unit checked by `systemd-analyze verify` and `security`, and the
//!   package by lintian; then (this machine's architecture) installed into a minimal Debian
//!   12 booted with systemd under QEMU, where the unit must start the sensor sandboxed, an
//!   alert reach the journal and a reload work (package/systemd_vm.rs).
//! - `tunnelwatch-VERSION-ARCH.oci.tar` (package/oci.rs): an OCI image archive, built offline
//!   with umoci from nothing but the sensor, its dynamic loader and shared libraries, and the
//!   same configuration file. `podman load -i` or `skopeo copy oci-archive:...` read it; the
//!   end-to-end test `container` runs it under Podman.
//!
//! ARCH is Debian's and OCI's name (amd64, arm64). The binary is the release build for each
//! target (aarch64 cross-linked with Debian's gcc-aarch64-linux-gnu), stripped of its debug
//! information. It links glibc dynamically: the image carries the libraries, which keeps one
//! binary for the .deb, the image and the kernel matrix, and glibc's allocator, which the
//! benchmarks measured (a static musl build would change both).
//!
//! May use: shell, arch, kernels (its apt and boot parts, for the systemd check), and its own
//! parts (package/).

mod deb;
mod oci;
mod systemd_vm;

use std::{fs, path::PathBuf};

use anyhow::Result;

use crate::{arch::Arch, shell::path_str};

/// The version of every package: the workspace's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where the packages go.
pub const OUT_DIR: &str = "target/package";

/// `cargo xtask package` arguments.
#[derive(Debug, Default, clap::Args)]
pub struct Args {
    /// Only this architecture (repeatable). Default: x86_64 and aarch64.
    #[arg(long = "arch", value_enum, value_name = "ARCH")]
    arches: Vec<Arch>,
}

/// The OCI archive of `arch` (what the end-to-end test loads).
pub fn oci_archive(arch: Arch) -> PathBuf {
    PathBuf::from(OUT_DIR).join(format!("tunnelwatch-{VERSION}-{}.oci.tar", arch.debian()))
}

/// Builds, checks and lists the packages.
pub fn run(args: &Args) -> Result<()> {
    let arches = if args.arches.is_empty() {
        Arch::ALL.to_vec()
    } else {
        args.arches.clone()
    };
    let out = PathBuf::from(OUT_DIR);
    fs::create_dir_all(&out)?;
    let mut made = Vec::new();
    for arch in arches {
        arch.build_release()?;
        let work = out.join(format!("work-{}", arch.debian()));
        if work.exists() {
            fs::remove_dir_all(&work)?;
        }
        fs::create_dir_all(&work)?;
        let binary = work.join("tunnelwatch");
        arch.strip(&arch.release_binary(), &binary)?;

        let deb = deb::build(arch, &binary, &work, &out)?;
        deb::check(arch, &deb, &work)?;
        if arch.is_host() {
            systemd_vm::check(&deb, &work)?;
        }
        made.push(deb);
        let image = oci::build(arch, &binary, &work, &oci_archive(arch))?;
        made.push(image);
        fs::remove_dir_all(&work)?;
    }
    for file in made {
        let size = fs::metadata(&file)?.len();
        println!("{:>8.1} MiB  {}", size as f64 / 1048576.0, path_str(&file)?);
    }
    Ok(())
}
