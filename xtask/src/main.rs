//! `cargo xtask`: the project's commands for a fresh machine.
//!
//! - `setup`: installs what this machine lacks (idempotent, quick when all is there): Debian
//!   packages (llvm-22-dev for bpf-linker, mingw-w64 for the Windows build, bpftool, dnsutils),
//!   the pinned Rust toolchain's components and targets, and bpf-linker 0.13.0 built against
//!   LLVM 22 (the LLVM major of rustc 1.95).
//! - `build`: setup, then `cargo build --release` (build.rs compiles the eBPF programs).
//! - `run [ARGS]`: build, then run the sensor (as root) with ARGS.
//! - `test`: setup, then everything CI checks: formatting, clippy (Linux and Windows targets),
//!   every unit test and the end-to-end tests against the real kernel (root).
//! - `kernels [--kernel NAME]...`: the kernel matrix (see kernels.rs).
//! - `wine-test [ARGS]`: the engine's and the ETW crate's tests, cross-compiled for Windows,
//!   under Wine (see windows.rs).
//! - `fuzz [--seconds N] [--target T]... [--merge]`: the cargo-fuzz targets (see fuzz.rs and
//!   fuzz/README.md), 60 s each by default; `test` ends with it.
//! - `bench [--quick] ...`: what the sensor costs the host, against bare, auditd and bpftrace
//!   (see bench.rs); prints the table, writes target/bench/results.json.

use std::{
    env,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

mod bench;
mod fuzz;
mod kernels;
mod windows;

/// The toolchain pinned in rust-toolchain.toml.
const TOOLCHAIN: &str = "1.95.0";
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_MAJOR: &str = "22";
const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";

/// Debian packages the build and the tests need.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev", // bpf-linker links against LLVM 22
    "libzstd-dev", // ... and its dependencies
    "zlib1g-dev",
    "gcc-mingw-w64-x86-64", // links the Windows sensor
    "bpftool",              // tests check that nothing stays loaded
    "dnsutils",             // dig, one of the DNS clients in the tests
    "iproute2",
    "util-linux", // unshare, setpriv
    "python3",
    "binutils",  // objcopy: the tests build a "renamed ngrok"
    "golang-go", // the tests build real Go binaries to identify (Debian's Go 1.19)
];

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
    /// Setup, then formatting, clippy (Linux + Windows), unit and end-to-end tests.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Setup, build, then boot Debian's 5.10, 6.1, 6.12 and 7.x cloud kernels under QEMU and
    /// check that the sensor loads, alerts and exits cleanly on each.
    Kernels(kernels::Args),
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
    let root = workspace_root();
    env::set_current_dir(&root)?;
    match cli.cmd {
        Cmd::Setup => setup(),
        Cmd::Build => {
            setup()?;
            cargo(["build", "--release"])
        }
        Cmd::Run { args } => {
            setup()?;
            cargo(["build", "--release"])?;
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
        Cmd::Test { args } => {
            setup()?;
            cargo(["fmt", "--all", "--", "--check"])?;
            cargo(["clippy", "--all-targets", "--", "-D", "warnings"])?;
            // The kernel programs, for their own target (not a default member).
            // SAFETY: single-threaded; children inherit it. The pinned stable toolchain builds
            // the eBPF crate with -Z build-std=core, as userspace/build.rs does.
            unsafe { env::set_var("RUSTC_BOOTSTRAP", "1") };
            cargo([
                "clippy",
                "-p",
                "tunnelwatch-ebpf",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ])?;
            // SAFETY: as above.
            unsafe { env::remove_var("RUSTC_BOOTSTRAP") };
            cargo([
                "clippy",
                "--target",
                WINDOWS_TARGET,
                "-p",
                "tunnelwatch",
                "-p",
                "tunnelwatch-engine",
                "-p",
                "tunnelwatch-etw",
                "--",
                "-D",
                "warnings",
            ])?;
            windows::link_exe()?;
            let mut test = vec!["test".to_string(), "--no-fail-fast".to_string()];
            test.extend(args);
            cargo(test)?;
            fuzz::run(&fuzz::Args::default())
        }
        Cmd::Kernels(args) => kernels::run(&args),
        Cmd::Fuzz(args) => {
            setup()?;
            fuzz::run(&args)
        }
        Cmd::Bench(args) => bench::run(&args),
        Cmd::WineTest { args } => {
            setup()?;
            windows::wine_test(&args)
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo<I, S>(args: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    eprintln!(
        "xtask: cargo {}",
        args.iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let status = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(&args)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args[0].to_string_lossy());
    }
    Ok(())
}

/// Runs a command, failing with its name when it fails.
fn sh(program: &str, args: &[&str]) -> Result<()> {
    eprintln!("xtask: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("{program} {} failed ({status})", args.join(" "));
    }
    Ok(())
}

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn setup() -> Result<()> {
    setup_apt()?;
    setup_rustup()?;
    setup_bpf_linker()?;
    fuzz::setup()?;
    eprintln!("xtask: setup complete");
    Ok(())
}

fn setup_apt() -> Result<()> {
    install_packages(APT_PACKAGES)
}

/// Installs those of `packages` (Debian) this machine lacks; nothing when all are there.
pub(crate) fn install_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            output("dpkg-query", &["-W", "-f=${db:Status-Abbrev}", p])
                .is_none_or(|s| !s.starts_with("ii"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = output("id", &["-u"]).is_some_and(|u| u.trim() == "0");
    let (program, prefix): (&str, Vec<&str>) = if root {
        ("apt-get", vec![])
    } else {
        ("sudo", vec!["apt-get"])
    };
    let mut update = prefix.clone();
    update.extend(["update", "-q"]);
    sh(program, &update)?;
    let mut install = prefix;
    install.extend(["install", "-y", "-q", "--no-install-recommends"]);
    install.extend(&missing);
    // SAFETY: single-threaded; the child inherits it.
    unsafe { env::set_var("DEBIAN_FRONTEND", "noninteractive") };
    sh(program, &install)
}

fn setup_rustup() -> Result<()> {
    let toolchains = output("rustup", &["toolchain", "list"]).unwrap_or_default();
    if !toolchains.lines().any(|l| l.starts_with(TOOLCHAIN)) {
        sh(
            "rustup",
            &["toolchain", "install", TOOLCHAIN, "--profile", "minimal"],
        )?;
    }
    let components = output(
        "rustup",
        &["component", "list", "--installed", "--toolchain", TOOLCHAIN],
    )
    .unwrap_or_default();
    let mut wanted = vec![];
    for c in ["rust-src", "clippy", "rustfmt"] {
        if !components.lines().any(|l| l.starts_with(c)) {
            wanted.push(c);
        }
    }
    if !wanted.is_empty() {
        let mut args = vec!["component", "add", "--toolchain", TOOLCHAIN];
        args.extend(wanted);
        sh("rustup", &args)?;
    }
    let targets = output(
        "rustup",
        &["target", "list", "--installed", "--toolchain", TOOLCHAIN],
    )
    .unwrap_or_default();
    if !targets.lines().any(|l| l.trim() == WINDOWS_TARGET) {
        sh(
            "rustup",
            &["target", "add", "--toolchain", TOOLCHAIN, WINDOWS_TARGET],
        )?;
    }
    Ok(())
}

fn setup_bpf_linker() -> Result<()> {
    if output("bpf-linker", &["--version"]).is_some_and(|v| v.contains(BPF_LINKER_VERSION)) {
        return Ok(());
    }
    let prefix = format!("/usr/lib/llvm-{LLVM_MAJOR}");
    // SAFETY: single-threaded; the child inherits it.
    unsafe { env::set_var("LLVM_PREFIX", &prefix) };
    let spec = format!("bpf-linker@{BPF_LINKER_VERSION}");
    let feature = format!("llvm-{LLVM_MAJOR}");
    cargo([
        "install",
        &spec,
        "--locked",
        "--no-default-features",
        "--features",
        &feature,
    ])
}
