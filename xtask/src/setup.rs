//! `cargo xtask setup`: installs what a fresh Debian machine lacks to build tunnelwatch and run
//! every check CI runs (idempotent, quick when all is there): Debian packages (LLVM 22 for
//! bpf-linker, mingw-w64 for the Windows build, the tools the end-to-end tests call, QEMU and
//! busybox for the kernel matrix, a C++ compiler for libFuzzer, protoc for the CRI client,
//! Podman and runc for the container tests, the aarch64 cross linker and the packaging tools),
//! the pinned Rust toolchain's components and its Windows and aarch64 targets, bpf-linker
//! built against LLVM 22 (the LLVM major of rustc 1.95), cargo-fuzz, a Python virtual
//! environment (`target/e2e-venv`) with aioquic, the QUIC client of the connection tests, and
//! kubernetes-validate (PyPI, with the Kubernetes API schemas it bundles) in a virtual
//! environment for the DaemonSet's check. The versions pinned here are the project's.
//!
//! May use: shell, packages.

use anyhow::Result;

use crate::{
    packages,
    shell::{self, cargo_command, output, sh},
};

/// The toolchain pinned in rust-toolchain.toml.
pub const TOOLCHAIN: &str = "1.95.0";
pub const BPF_LINKER_VERSION: &str = "0.13.0";
pub const LLVM_MAJOR: &str = "22";
pub const WINDOWS_TARGET: &str = "x86_64-pc-windows-gnu";
/// The arm64 sensor's target (packages, the kernel matrix's arm64 row).
pub const ARM64_TARGET: &str = "aarch64-unknown-linux-gnu";
/// kubernetes-validate, which checks deploy/'s manifest against the API schemas it bundles.
pub const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";
/// Its virtual environment.
pub const KUBERNETES_VALIDATE_VENV: &str = "target/tools/kubernetes-validate";
/// The cargo-fuzz release the fuzz targets are run with.
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";
/// aioquic (PyPI), the QUIC client of the end-to-end connection tests.
pub const AIOQUIC_VERSION: &str = "1.7.2";
/// Where its virtual environment goes, under the workspace root.
pub const E2E_VENV: &str = "target/e2e-venv";

/// Debian packages the build and the checks of `cargo xtask test` need.
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
    "python3-venv", // the virtual environment of the QUIC client (aioquic)
    "openssl",      // s_server and s_client, the connection tests' TLS server and client
    "curl",         // a TLS client of the connection tests
    "binutils", // objcopy: the tests build a "renamed ngrok"; strip: the kernel matrix's initramfs
    "g++",      // libfuzzer-sys builds libFuzzer
    "golang-go", // the identification tests build real Go binaries (Debian's Go 1.19)
    // The tunnel tools the end-to-end tests run for real (tests/e2e/tunnels.rs):
    "openssh-client", // ssh: reverse, local, dynamic and tun forwards
    "autossh",
    "socat",
    "sshuttle",
    "ptunnel-ng",
    "httptunnel", // htc, hts
    "corkscrew",
    "proxytunnel",
    "stunnel4",
    "iodine",            // iodine and iodined, DNS mode in network namespaces
    "protobuf-compiler", // protoc: k8s-cri's build generates the CRI client
    "podman",            // the container tests (with runc: crun refuses hybrid cgroups)
    "runc",
    // The kernel matrix (`cargo xtask kernels`, run by `cargo xtask test`):
    "qemu-system-x86",        // qemu-system-x86_64, TCG
    "busybox-static",         // the guest's shell and tools
    "debian-archive-keyring", // checks the kernel packages' indices
    "gzip",                   // the initramfs
    // The arm64 sensor and its row in the kernel matrix:
    "gcc-aarch64-linux-gnu", // links it (and its binutils strip and readelf)
    "libc6-dev-arm64-cross", // ... against arm64 glibc, whose libraries go into its image
    "qemu-system-arm",       // qemu-system-aarch64, TCG
    // `cargo xtask package` and its checks:
    "lintian",      // checks the .deb (dpkg-deb, which builds it, is dpkg's)
    "systemd",      // systemd-analyze verify and security check the unit
    "umoci",        // builds the OCI image offline
    "podman",       // the end-to-end test runs the image
    "runc",         // ... with runc (crun refuses hybrid cgroup hosts)
    "python3-venv", // kubernetes-validate's environment
];

/// Installs everything; quick when all is there.
pub fn setup() -> Result<()> {
    packages::install(APT_PACKAGES)?;
    rustup()?;
    bpf_linker()?;
    cargo_fuzz()?;
    e2e_python()?;
    kubernetes_validate()?;
    eprintln!("xtask: setup complete");
    Ok(())
}

/// The pinned toolchain with rust-src, clippy, rustfmt and the Windows target.
fn rustup() -> Result<()> {
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
    let wanted: Vec<&str> = ["rust-src", "clippy", "rustfmt"]
        .into_iter()
        .filter(|c| !components.lines().any(|l| l.starts_with(c)))
        .collect();
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
    for target in [WINDOWS_TARGET, ARM64_TARGET] {
        if !targets.lines().any(|l| l.trim() == target) {
            sh(
                "rustup",
                &["target", "add", "--toolchain", TOOLCHAIN, target],
            )?;
        }
    }
    Ok(())
}

/// kubernetes-validate, pinned, in its own virtual environment (Debian's Python refuses
/// packages installed beside its own).
fn kubernetes_validate() -> Result<()> {
    let venv = std::path::Path::new(KUBERNETES_VALIDATE_VENV);
    let program = venv.join("bin/kubernetes-validate");
    let installed = output(shell::path_str(&program)?, &["--version"])
        .is_some_and(|v| v.contains(KUBERNETES_VALIDATE_VERSION));
    if installed {
        return Ok(());
    }
    sh("/usr/bin/python3", &["-m", "venv", shell::path_str(venv)?])?;
    let spec = format!("kubernetes-validate=={KUBERNETES_VALIDATE_VERSION}");
    sh(
        shell::path_str(&venv.join("bin/pip"))?,
        &["install", "--quiet", "--disable-pip-version-check", &spec],
    )
}

/// bpf-linker, built against the system's LLVM 22.
fn bpf_linker() -> Result<()> {
    if output("bpf-linker", &["--version"]).is_some_and(|v| v.contains(BPF_LINKER_VERSION)) {
        return Ok(());
    }
    let spec = format!("bpf-linker@{BPF_LINKER_VERSION}");
    let feature = format!("llvm-{LLVM_MAJOR}");
    shell::run(
        cargo_command()
            .env("LLVM_PREFIX", format!("/usr/lib/llvm-{LLVM_MAJOR}"))
            .args(["install", &spec, "--locked", "--no-default-features"])
            .args(["--features", &feature]),
    )
}

/// cargo-fuzz, pinned.
fn cargo_fuzz() -> Result<()> {
    let installed = output("cargo", &["fuzz", "--version"])
        .is_some_and(|v| v.split_whitespace().any(|w| w == CARGO_FUZZ_VERSION));
    if installed {
        return Ok(());
    }
    let spec = format!("cargo-fuzz@{CARGO_FUZZ_VERSION}");
    shell::cargo(["install", &spec, "--locked"])
}

/// A virtual environment with aioquic (pinned) for the QUIC tests: Debian's python refuses
/// packages installed system-wide by pip (PEP 668).
fn e2e_python() -> Result<()> {
    let venv = shell::workspace_root().join(E2E_VENV);
    let python = venv.join("bin/python");
    let python_s = python.display().to_string();
    let check = format!("import aioquic; assert aioquic.__version__ == '{AIOQUIC_VERSION}'");
    if output(&python_s, &["-c", &check]).is_some() {
        return Ok(());
    }
    sh("python3", &["-m", "venv", &venv.display().to_string()])?;
    let spec = format!("aioquic=={AIOQUIC_VERSION}");
    sh(
        &python_s,
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &spec,
        ],
    )
}
