//! `cargo xtask`: the project's commands for a fresh machine. This file is the command line
//! only; each command lives in its own module.
//!
//! - `setup`: installs what this machine lacks (setup.rs).
//! - `build`: setup, then `cargo build --release` (build.rs compiles the eBPF programs).
//! - `run [ARGS]`: build, then run the sensor (as root) with ARGS.
//! - `test`: setup, then everything CI checks (ci.rs): formatting, clippy (Linux, eBPF and
//!   Windows targets), the mingw link, every unit and end-to-end test against the real kernel
//!   (root), the kernel matrix, and the fuzz targets.
//! - `kernels [--kernel NAME]...`: the kernel matrix under QEMU, x86_64 and arm64
//!   (kernels.rs).
//! - `package [--arch ARCH]...`: the .deb and the OCI image archive for x86_64 and aarch64,
//!   built and checked, in target/package/ (package.rs).
//! - `wine-test [ARGS]`: the engine's and the ETW crate's tests, cross-compiled for Windows,
//!   under Wine (windows.rs).
//! - `fuzz [--seconds N] [--target T]... [--merge]`: the cargo-fuzz targets (fuzz.rs and
//!   fuzz/README.md), 60 s each by default.
//! - `bench [--quick] ...`: what the sensor costs the host, against bare, auditd, bpftrace and
//!   empty programs (bench.rs); prints the table, writes target/bench/results.json.
//!
//! May use: every module (it is the top floor); none uses it.

use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

mod arch;
mod bench;
mod ci;
mod fuzz;
mod kernels;
mod manifests;
mod package;
mod packages;
mod setup;
mod shell;
mod windows;

#[derive(Parser)]
#[command(name = "xtask", about = "tunnelwatch's project commands")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what this machine lacks to build and test tunnelwatch.
    Setup,
    /// Setup, then build the release binary (target/release/tunnelwatch).
    Build,
    /// Build, then run the sensor with the given arguments.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, then formatting, clippy (Linux, eBPF, Windows), unit and end-to-end tests, the
    /// kernel matrix and the fuzz targets: what CI runs.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, build, then boot Debian's 5.10, 6.1, 6.12 and 7.x cloud kernels (x86_64) and its
    /// 6.12 arm64 cloud kernel under QEMU and check that the sensor loads, alerts and exits
    /// cleanly on each.
    Kernels(kernels::Args),
    /// Setup, then build and check the .deb and the OCI image archive for x86_64 and aarch64
    /// (target/package/).
    Package(package::Args),
    /// Setup, then run each fuzz target for a bounded time; fails on a crash.
    Fuzz(fuzz::Args),
    /// Build, then measure what the sensor costs against bare and against auditd and
    /// bpftrace, on loopback (see bench.rs); writes target/bench/results.json.
    Bench(bench::Args),
    /// Setup, then the engine's and the ETW crate's tests cross-compiled for Windows, run
    /// under Wine (installs wine64 and a stand-in bcryptprimitives.dll).
    WineTest {
        /// Extra arguments for `cargo test`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = shell::workspace_root();
    std::env::set_current_dir(&root)?;
    match cli.cmd {
        Cmd::Setup => setup::setup(),
        Cmd::Build => {
            setup::setup()?;
            shell::cargo(["build", "--release"])
        }
        Cmd::Run { args } => {
            setup::setup()?;
            shell::cargo(["build", "--release"])?;
            let status = Command::new(root.join("target/release/tunnelwatch"))
                .args(args)
                .status()
                .context("cannot start target/release/tunnelwatch")?;
            if status.success() {
                Ok(())
            } else {
                bail!("tunnelwatch exited with {status}")
            }
        }
        Cmd::Test { args } => ci::test(&args),
        Cmd::Kernels(args) => {
            setup::setup()?;
            kernels::run(&args)
        }
        Cmd::Package(args) => {
            setup::setup()?;
            package::run(&args)
        }
        Cmd::Fuzz(args) => {
            setup::setup()?;
            fuzz::run(&args)
        }
        Cmd::Bench(args) => bench::run(&args),
        Cmd::WineTest { args } => {
            setup::setup()?;
            windows::wine_test(&args)
        }
    }
}
