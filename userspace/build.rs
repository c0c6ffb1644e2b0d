//! Builds the eBPF programs (ebpf/) with the pinned toolchain and bpf-linker, and puts the
//! object in OUT_DIR for `include_bytes!`. Nothing is built for other target OSes.

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=TUNNELWATCH_EBPF_TOOLCHAIN");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return Ok(());
    }
    which_bpf_linker()?;
    let metadata_dir = std::env::var("CARGO_MANIFEST_DIR")?;
    let ebpf_dir = std::path::Path::new(&metadata_dir)
        .parent()
        .context("workspace root")?
        .join("ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path")?;
    // The same stable toolchain as the rest of the workspace (rust-toolchain.toml), with
    // RUSTC_BOOTSTRAP for -Z build-std=core. Its LLVM must match bpf-linker's.
    let toolchain = std::env::var("TUNNELWATCH_EBPF_TOOLCHAIN").unwrap_or_else(|_| "1.95.0".into());
    // SAFETY: build scripts are single-threaded at this point.
    unsafe {
        std::env::set_var("RUSTC_BOOTSTRAP", "1");
        // aya-build relays every line the nested cargo prints as a warning: keep it to errors.
        std::env::set_var("CARGO_TERM_QUIET", "true");
    }
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tunnelwatch-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
}

fn which_bpf_linker() -> anyhow::Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join("bpf-linker").is_file()))
        .unwrap_or(false);
    if found {
        Ok(())
    } else {
        Err(anyhow!(
            "bpf-linker is not on PATH: run `./setup.sh` (or `cargo xtask setup`) once to install the eBPF toolchain"
        ))
    }
}
