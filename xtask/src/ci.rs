//! `cargo xtask test`: every check CI runs (`.ci/run` calls it as root on a fresh machine), in
//! order, stopping at the first that fails: setup; formatting; clippy with `-D warnings` for
//! Linux (all targets), the eBPF target and Windows; the mingw link of `tunnelwatch.exe`; the
//! Kubernetes manifests against the API schemas; the packages for x86_64 and aarch64 (built
//! and checked; the end-to-end test `container` runs the image); every test (unit and end to
//! end, against the real kernel); the kernel matrix under QEMU; each fuzz target for 60 s.
//! Nothing is skipped silently: a step that cannot run fails with its reason.
//!
//! May use: shell, setup, windows, manifests, package, kernels, fuzz.

use std::process::Command;

use anyhow::{Context as _, Result};

use crate::{
    fuzz, kernels, manifests, package,
    setup::{self, WINDOWS_TARGET},
    shell::{self, cargo, cargo_command},
    windows,
};

/// Whether the Windows clippy step checks all targets (tests, benches, examples) too: issue 13
/// (item 6) asked for it, and the Linux-only end-to-end test crate is gated so that it holds.
pub const WINDOWS_CLIPPY_ALL_TARGETS: bool = true;

/// Runs every check; `test_args` go to `cargo test` (e.g. a test name filter).
pub fn test(test_args: &[String]) -> Result<()> {
    setup::setup()?;
    cargo(["fmt", "--all", "--", "--check"])?;
    cargo(["clippy", "--all-targets", "--", "-D", "warnings"])?;
    clippy_ebpf()?;
    clippy_windows()?;
    windows::link_exe()?;
    manifests::validate()?;
    package::run(&package::Args::default())?;
    cargo(
        ["test", "--no-fail-fast"]
            .into_iter()
            .map(str::to_owned)
            .chain(test_args.iter().cloned()),
    )?;
    kernels::run(&kernels::Args::default())
        .context("the kernel matrix (`cargo xtask kernels`) failed; CI runs it on every change")?;
    fuzz::run(&fuzz::Args::default())
}

/// The kernel programs, for their own target (not a default member). The pinned stable
/// toolchain builds the eBPF crate with `-Z build-std=core`, as userspace/build.rs does.
fn clippy_ebpf() -> Result<()> {
    shell::run(
        cargo_command()
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["clippy", "-p", "tunnelwatch-ebpf"])
            .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
            .args(["--", "-D", "warnings"]),
    )
}

/// The Windows sensor and the crates it is built from, for the Windows target.
fn clippy_windows() -> Result<()> {
    let mut cmd: Command = cargo_command();
    cmd.args(["clippy", "--target", WINDOWS_TARGET]).args([
        "-p",
        "tunnelwatch",
        "-p",
        "tunnelwatch-engine",
        "-p",
        "tunnelwatch-etw",
    ]);
    if WINDOWS_CLIPPY_ALL_TARGETS {
        cmd.arg("--all-targets");
    }
    shell::run(cmd.args(["--", "-D", "warnings"]))
}
