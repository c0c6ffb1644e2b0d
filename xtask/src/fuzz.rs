//! `cargo xtask fuzz`: runs the cargo-fuzz targets of `fuzz/` (see fuzz/README.md) each for a
//! bounded time and fails on a crash, naming the reproducer and the command that reruns it.
//! `cargo xtask setup` installs the pinned cargo-fuzz and the C++ compiler libFuzzer needs.
//!
//! The fuzz crate is its own workspace, built by the pinned stable toolchain with
//! `RUSTC_BOOTSTRAP=1` (cargo-fuzz needs `-Z` flags: `-Zsanitizer=address`). New inputs go to
//! `fuzz/target/corpus/<target>/` (ignored by git); the committed corpus
//! `fuzz/corpus/<target>/` is only read, unless `--merge` adds to it the new inputs that add
//! coverage.
//!
//! May use: shell.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Instant, SystemTime},
};

use anyhow::{Context as _, Result, bail};

use crate::shell::{path_str, workspace_root};

/// A fuzz target of fuzz/fuzz_targets/.
#[derive(Clone, Copy, Debug)]
struct Target {
    name: &'static str,
    /// libFuzzer's `-max_len`.
    max_len: usize,
    /// Seed directories besides fuzz/corpus/<name>/ (relative to the workspace root), read only.
    seeds: &'static [&'static str],
}

/// The targets: a DNS payload as captured (2048 bytes) and more; the head of an executable
/// (the built ones of the seeds are 2 to 13 KiB); a whole exec record (16 KiB of data) with
/// room for a few more records; a rule file of some size, seeded with the shipped rules
/// themselves.
const TARGETS: &[Target] = &[
    Target {
        name: "dns_message",
        max_len: 4096,
        seeds: &[],
    },
    Target {
        name: "go_buildinfo",
        max_len: 32_768,
        seeds: &[],
    },
    Target {
        name: "record_decode",
        max_len: 20_000,
        seeds: &[],
    },
    Target {
        name: "rule_loader",
        max_len: 16_384,
        seeds: &["rules"],
    },
    Target {
        name: "process_v4",
        max_len: 4096,
        seeds: &[],
    },
    Target {
        name: "etl_reader",
        max_len: 16_384,
        seeds: &[],
    },
];

/// Seconds one input may take before libFuzzer calls it a hang.
const TIMEOUT_S: u64 = 10;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds of fuzzing per target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Only this target (repeatable): dns_message, go_buildinfo, record_decode, rule_loader,
    /// process_v4, etl_reader.
    #[arg(long = "target", value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Afterwards, add to fuzz/corpus/<target>/ the new inputs that add coverage.
    #[arg(long)]
    pub merge: bool,
    /// cargo-fuzz's sanitizer: address, or none for 4 to 6 times the executions per second
    /// (built in fuzz/target/sanitizer-none/).
    #[arg(long, default_value = "address")]
    pub sanitizer: String,
}

impl Default for Args {
    /// What `cargo xtask test` runs: every target for 60 s, without a sanitizer (CI builds from
    /// scratch, and the ASan build takes 9.5 min there against 5.5; long runs by hand use
    /// `cargo xtask fuzz`, whose default is AddressSanitizer).
    fn default() -> Self {
        Args {
            seconds: 60,
            targets: Vec::new(),
            merge: false,
            sanitizer: "none".into(),
        }
    }
}

/// Runs the selected targets one after the other; fails after all ran if any crashed.
pub fn run(args: &Args) -> Result<()> {
    let root = workspace_root();
    let fuzz_dir = root.join("fuzz");
    let targets: Vec<Target> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        args.targets
            .iter()
            .map(|t| {
                TARGETS
                    .iter()
                    .copied()
                    .find(|target| target.name == t)
                    .with_context(|| {
                        let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
                        format!("no fuzz target {t} (targets: {})", names.join(", "))
                    })
            })
            .collect::<Result<_>>()?
    };
    // The default build (address) in fuzz/target/, where `cargo fuzz` by hand finds it; any
    // other in a directory of its own, so that switching does not rebuild everything.
    let other_dir = fuzz_dir.join(format!("target/sanitizer-{}", args.sanitizer));
    let mut san = vec!["--sanitizer", args.sanitizer.as_str()];
    if args.sanitizer != "address" {
        san.extend(["--target-dir", path_str(&other_dir)?]);
    }
    let san = san;
    cargo_fuzz(&root, &[&["build"][..], &san].concat()).context("cannot build the fuzz targets")?;

    let mut failed = Vec::new();
    for t in &targets {
        let target = t.name;
        let work = fuzz_dir.join("target/corpus").join(target);
        let seeds = fuzz_dir.join("corpus").join(target);
        let artifacts = fuzz_dir.join("artifacts").join(target);
        fs::create_dir_all(&work)?;
        fs::create_dir_all(&artifacts)?;
        let log = fuzz_dir.join("target/logs").join(format!("{target}.log"));
        fs::create_dir_all(log.parent().expect("logs directory"))?;
        let started = SystemTime::now();
        let clock = Instant::now();
        eprintln!(
            "xtask: fuzzing {target} for {} s (log: {})",
            args.seconds,
            log.display()
        );
        let (work_s, seeds_s) = (path_str(&work)?, path_str(&seeds)?);
        let max_total = format!("-max_total_time={}", args.seconds);
        let max_len = format!("-max_len={}", t.max_len);
        let extra: Vec<String> = t
            .seeds
            .iter()
            .map(|d| path_str(&root.join(d)).map(str::to_owned))
            .collect::<Result<_>>()?;
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let timeout = format!("-timeout={TIMEOUT_S}");
        let ok = cargo_fuzz_logged(
            &root,
            &[
                &["run"][..],
                &san,
                &[target, work_s, seeds_s],
                &extra,
                &["--"],
                &[&max_total, &max_len, &timeout, "-print_final_stats=1"],
            ]
            .concat(),
            &log,
        )?;
        let text = fs::read_to_string(&log).unwrap_or_default();
        if ok {
            eprintln!(
                "xtask: {target}: no crash in {:.0} s; {}",
                clock.elapsed().as_secs_f64(),
                summary(&text)
            );
        } else {
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            for line in tail.iter().rev() {
                eprintln!("  | {line}");
            }
            let found = newest_since(&artifacts, started);
            match &found {
                Some(a) => {
                    let rel = a.strip_prefix(&root).unwrap_or(a);
                    eprintln!("xtask: {target} CRASHED; reproducer: {}", a.display());
                    eprintln!(
                        "xtask: rerun it with: RUSTC_BOOTSTRAP=1 cargo fuzz run {} {target} {}",
                        san.join(" "),
                        rel.display()
                    );
                }
                None => eprintln!(
                    "xtask: {target} failed without a reproducer in {} (see {})",
                    artifacts.display(),
                    log.display()
                ),
            }
            failed.push(target);
            continue;
        }
        if args.merge {
            // libFuzzer's merge: inputs of the second directory that add coverage are copied
            // into the first; nothing there is removed. Copies of other seed directories'
            // files (the shipped rules) are taken out again.
            let before = list(&seeds);
            cargo_fuzz(
                &root,
                &[
                    &["run"][..],
                    &san,
                    &[target, seeds_s, work_s, "--", "-merge=1", &max_len],
                ]
                .concat(),
            )
            .with_context(|| format!("cannot merge new inputs into {}", seeds.display()))?;
            let known: Vec<Vec<u8>> = t
                .seeds
                .iter()
                .flat_map(|d| list(&root.join(d)))
                .filter_map(|p| fs::read(p).ok())
                .collect();
            let mut added = 0;
            for new in list(&seeds).into_iter().filter(|p| !before.contains(p)) {
                if fs::read(&new).is_ok_and(|b| known.contains(&b)) {
                    fs::remove_file(&new)?;
                } else {
                    added += 1;
                }
            }
            eprintln!(
                "xtask: {target}: {added} inputs added to {}",
                seeds.display()
            );
        }
    }
    if !failed.is_empty() {
        bail!("fuzz targets crashed: {}", failed.join(", "));
    }
    Ok(())
}

/// `cargo fuzz ARGS` in the workspace root on the fuzz project, output shown.
fn cargo_fuzz(root: &Path, args: &[&str]) -> Result<()> {
    eprintln!("xtask: RUSTC_BOOTSTRAP=1 cargo fuzz {}", args.join(" "));
    let status = fuzz_command(root, args)
        .status()
        .context("cannot run cargo fuzz (cargo xtask setup installs it)")?;
    if !status.success() {
        bail!("cargo fuzz {} failed ({status})", args[0]);
    }
    Ok(())
}

/// `cargo fuzz ARGS` with its output (libFuzzer's progress lines) in `log`; whether it
/// succeeded.
fn cargo_fuzz_logged(root: &Path, args: &[&str], log: &Path) -> Result<bool> {
    eprintln!("xtask: RUSTC_BOOTSTRAP=1 cargo fuzz {}", args.join(" "));
    let file = fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let status = fuzz_command(root, args)
        .stdout(file.try_clone()?)
        .stderr(file)
        .stdin(Stdio::null())
        .status()
        .context("cannot run cargo fuzz (cargo xtask setup installs it)")?;
    Ok(status.success())
}

fn fuzz_command(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("fuzz")
        .args(args)
        .current_dir(root)
        // The pinned stable toolchain, with the -Z flags cargo-fuzz passes.
        .env("RUSTC_BOOTSTRAP", "1")
        // Whatever cargo set for xtask itself must not leak into the fuzz build.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    cmd
}

/// libFuzzer's final numbers: executions, speed, coverage, corpus, memory.
fn summary(log: &str) -> String {
    let stat = |key: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{key}:")))
            .map(str::trim)
            .unwrap_or("?")
            .to_string()
    };
    let done = log
        .lines()
        .rev()
        .find(|l| l.contains(" DONE ") || l.contains("\tDONE "))
        .and_then(|l| l.split_once("cov:"))
        .map(|(_, rest)| format!("cov:{}", rest.split(" exec/s").next().unwrap_or(rest)))
        .unwrap_or_default();
    format!(
        "{} executions, {} exec/s, peak RSS {} MB; {done}",
        stat("number_of_executed_units"),
        stat("average_exec_per_sec"),
        stat("peak_rss_mb"),
    )
}

/// The files in `dir`.
fn list(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| Some(e.ok()?.path())).collect())
        .unwrap_or_default()
}

/// The newest file in `dir` modified at or after `since`.
fn newest_since(dir: &Path, since: SystemTime) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let modified = e.metadata().ok()?.modified().ok()?;
            (modified >= since).then(|| (modified, e.path()))
        })
        .max()
        .map(|(_, p)| p)
}
