//! The Windows half's CI steps: link `tunnelwatch.exe` with mingw, and run the engine's and the
//! ETW mapping's tests cross-compiled under Wine.
//!
//! Wine 8 (Debian 12's `wine64`) lacks `bcryptprimitives.dll`, whose `ProcessPrng` Rust's
//! standard library imports on Windows (for `HashMap` seeds and the like) since Rust 1.78, so
//! every test executable fails to load. [`setup`] builds a stand-in DLL with mingw that
//! exports `ProcessPrng`, implemented with `SystemFunction036` (`RtlGenRandom`, which Wine's
//! advapi32 has), and [`wine_test`] puts it next to the test executables, where Windows (and
//! Wine) look for DLLs first.
//!
//! May use: shell, packages, setup (the Windows target's name).

use std::{fs, path::PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::{
    packages,
    setup::WINDOWS_TARGET,
    shell::{self, cargo, cargo_command, path_str, sh, workspace_root},
};

/// Debian's 64-bit Wine (8.0 on Debian 12).
const WINE_PACKAGE: &str = "wine64";
/// Where `wine64` installs its loader (Debian puts no `wine64` on PATH without `wine`).
const WINE: &str = "/usr/lib/wine/wine64";
const MINGW_GCC: &str = "x86_64-w64-mingw32-gcc";

const STAND_IN_SOURCE: &str = r#"/* bcryptprimitives.dll for Wine 8, which lacks it: ProcessPrng only. Built by xtask. */
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG n = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, n)) return FALSE;
        data += n;
        length -= n;
    }
    return TRUE;
}
"#;
const STAND_IN_DEF: &str = "LIBRARY bcryptprimitives.dll\nEXPORTS\n    ProcessPrng\n";

/// `target/wine/`: the stand-in DLL and the Wine prefix.
fn wine_dir() -> PathBuf {
    workspace_root().join("target/wine")
}

fn stand_in_dll() -> PathBuf {
    wine_dir().join("bcryptprimitives.dll")
}

/// Links `tunnelwatch.exe` (target/x86_64-pc-windows-gnu/debug/).
pub fn link_exe() -> Result<()> {
    // The dev profile: it proves that everything links (about 2 minutes from scratch here, a
    // release build with LTO takes 5); `cargo build --release --target ...` for a real build.
    cargo(["build", "-p", "tunnelwatch", "--target", WINDOWS_TARGET])
}

/// Installs Wine when missing and builds the stand-in `bcryptprimitives.dll` (idempotent).
pub fn setup() -> Result<()> {
    packages::install(&[WINE_PACKAGE])?;
    let dll = stand_in_dll();
    if dll.exists() {
        return Ok(());
    }
    let dir = wine_dir();
    fs::create_dir_all(&dir)?;
    let src = dir.join("bcryptprimitives.c");
    let def = dir.join("bcryptprimitives.def");
    fs::write(&src, STAND_IN_SOURCE)?;
    fs::write(&def, STAND_IN_DEF)?;
    sh(
        MINGW_GCC,
        &[
            "-shared",
            "-O2",
            "-s",
            "-o",
            path_str(&dll)?,
            path_str(&src)?,
            path_str(&def)?,
            "-ladvapi32",
        ],
    )
}

/// Runs the engine's and the ETW crate's tests, cross-compiled for Windows, under Wine.
pub fn wine_test(args: &[String]) -> Result<()> {
    setup()?;
    // Build first, so that the stand-in can be put beside the executables before they run.
    let mut build = vec![
        "test",
        "--no-run",
        "--target",
        WINDOWS_TARGET,
        "-p",
        "tunnelwatch-engine",
        "-p",
        "tunnelwatch-etw",
    ];
    cargo(&build)?;
    let deps = workspace_root()
        .join("target")
        .join(WINDOWS_TARGET)
        .join("debug/deps");
    fs::copy(stand_in_dll(), deps.join("bcryptprimitives.dll"))
        .context("cannot put the stand-in bcryptprimitives.dll beside the tests")?;
    if !std::path::Path::new(WINE).exists() {
        bail!("{WINE} is missing: `apt-get install {WINE_PACKAGE}`");
    }
    build.retain(|a| *a != "--no-run");
    shell::run(
        cargo_command()
            .env("WINEPREFIX", wine_dir().join("prefix"))
            .env("WINEDEBUG", "-all")
            .env("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER", WINE)
            .args(build)
            .args(args),
    )
}
