//! Running other programs, the one way every xtask command does it: `cargo` (the toolchain that
//! runs xtask), a command that must succeed (its line echoed on stderr first), one whose
//! output is wanted; and the facts every command needs about where and as whom it runs (the
//! workspace root, root or not).
//!
//! May use: the standard library, anyhow, libc. Nothing else of xtask (the bottom floor).

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// The workspace root (xtask's parent folder).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: plain getter.
    unsafe { libc::geteuid() == 0 }
}

/// The cargo that runs xtask (`$CARGO`), or the one on PATH.
pub fn cargo_command() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo ARGS`, echoed on stderr; fails when cargo fails.
pub fn cargo<I, S>(args: I) -> Result<()>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = cargo_command();
    cmd.args(args);
    run(&mut cmd)
}

/// Runs `cmd` with inherited stdio, its command line echoed on stderr first; fails with the
/// command line when it cannot start or does not succeed.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = command_line(cmd);
    eprintln!("xtask: {line}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", cmd.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!("{line} failed ({status})");
    }
    Ok(())
}

/// `program ARGS`, echoed; fails when it fails.
pub fn sh(program: &str, args: &[&str]) -> Result<()> {
    run(Command::new(program).args(args))
}

/// The stdout of `program ARGS` when it succeeds; None when it cannot run or fails.
pub fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The stdout of `program ARGS`; fails with its stderr when it fails.
pub fn capture(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A path as UTF-8, for the programs that take it as an argument.
pub fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

/// The command line of `cmd` with the environment it sets, as a shell would show it.
fn command_line(cmd: &Command) -> String {
    let mut words: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    let program = cmd.get_program().to_string_lossy();
    // `$CARGO` is a full path; `cargo` says the same.
    words.push(if program.ends_with("/cargo") {
        "cargo".into()
    } else {
        program.into_owned()
    });
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_show_the_environment_they_set() {
        let mut c = Command::new("/root/.cargo/bin/cargo");
        c.env("RUSTC_BOOTSTRAP", "1").args(["clippy", "-p", "x"]);
        assert_eq!(command_line(&c), "RUSTC_BOOTSTRAP=1 cargo clippy -p x");
        assert_eq!(
            command_line(Command::new("apt-get").args(["update", "-q"])),
            "apt-get update -q"
        );
    }

    #[test]
    fn failures_name_the_command() {
        let e = sh("false", &["x"]).unwrap_err();
        assert!(format!("{e:#}").starts_with("false x failed"), "{e:#}");
        assert_eq!(output("echo", &["hi"]).as_deref(), Some("hi\n"));
        assert!(output("false", &[]).is_none());
        assert!(capture("sh", &["-c", "echo no >&2; exit 3"]).is_err());
    }
}
