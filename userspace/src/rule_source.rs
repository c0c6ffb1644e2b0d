//! Where the engine comes from: the embedded rule pack, the rule directories given with
//! `--rules`, and the allowlist of the `--config` file. Loaded once at start, and again on
//! SIGHUP or when one of those files changes: a rule set that does not load is refused with
//! file, line and reason, and the running one stays. The live sensor trusts only files that
//! root alone can change (`trust`): an untrusted one is refused at start and at reload alike.
//!
//! Uses: the engine (configuration, rule sets, the engine), `trust` and `linux::settings`.

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    path::{Path, PathBuf},
    time::SystemTime,
};

use tunnelwatch_engine::{builtin, config::Config, engine::Engine, ruleset::LoadOptions};

use crate::linux::settings::LinuxSettings;

/// The inputs of the engine.
#[derive(Clone, Debug, Default)]
pub struct RuleSource {
    pub config: Option<PathBuf>,
    pub rule_dirs: Vec<PathBuf>,
    /// Skip rules that do not load (with a warning) instead of refusing the whole set.
    pub skip_invalid: bool,
    /// Refuse a config file, rule file or rule directory that a user other than root could
    /// change (the live sensor, unless `--allow-untrusted-config`); see `trust`.
    pub trusted_only: bool,
}

/// A loaded configuration and the engine built from it.
pub struct Loaded {
    /// The shared keys and the Linux sensor's (which the Windows sensor checks and ignores).
    pub config: Config<LinuxSettings>,
    pub engine: Engine,
    /// [`RuleSource::fingerprint`] taken just before reading: a change made while loading is
    /// seen as a change afterwards.
    pub fingerprint: u64,
}

impl RuleSource {
    /// Reads the configuration and the rules and compiles the engine. Notices and skipped
    /// rules are logged as warnings; anything that refuses the load is the error, one
    /// `FILE:LINE: reason` per line.
    pub fn load(&self) -> Result<Loaded, String> {
        let fingerprint = self.fingerprint();
        if self.trusted_only {
            crate::trust::check(self.config.as_deref(), &self.rule_dirs)?;
        }
        let config = match &self.config {
            Some(path) => Config::load(path).map_err(|e| e.to_string())?,
            None => Config::default(),
        };
        let options = LoadOptions {
            skip_invalid: self.skip_invalid,
        };
        let loaded = builtin::load_with(&self.rule_dirs, options).map_err(|e| e.to_string())?;
        for w in &loaded.warnings {
            log::warn!("skipped: {w}");
        }
        for n in &loaded.notices {
            log::warn!("{n}");
        }
        for w in config.allowlist.unmatched_rule_refs(&loaded.rules) {
            log::warn!("{w}");
        }
        for w in config.allowlist.match_everything(&loaded.rules) {
            log::warn!("{w}");
        }
        let engine = Engine::new(loaded.rules, config.allowlist.clone());
        Ok(Loaded {
            config,
            engine,
            fingerprint,
        })
    }

    /// Loads again after `why` (a signal, a changed file), saying on stderr what came of it:
    /// the new engine, or `None` when the set is refused (the running one stays; the caller
    /// keeps it).
    pub fn reload(&self, why: &str) -> Option<Loaded> {
        match self.load() {
            Ok(loaded) => {
                eprintln!(
                    "tunnelwatch: rules reloaded after {why}: {} rules",
                    loaded.engine.rules().len()
                );
                Some(loaded)
            }
            Err(e) => {
                eprintln!("tunnelwatch: reload after {why} refused, the running rules stay:\n{e}");
                None
            }
        }
    }

    /// A value that changes when any input file changes (path, size, mtime, content, mode or
    /// owner):
    /// polled to reload without a signal.
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        if let Some(c) = &self.config {
            stamp(c, &mut h);
        }
        for dir in &self.rule_dirs {
            walk(dir, &mut h, 0);
        }
        h.finish()
    }
}

/// Files larger than this are stamped by size and mtime only.
const HASH_CONTENT_MAX: u64 = 1 << 20;

fn stamp(path: &Path, h: &mut DefaultHasher) {
    path.hash(h);
    if let Ok(m) = std::fs::metadata(path) {
        m.len().hash(h);
        // Who may write it (see `trust`): a file made trusted again is loaded again.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            (m.mode(), m.uid(), m.gid()).hash(h);
        }
        m.modified().unwrap_or(SystemTime::UNIX_EPOCH).hash(h);
        // Two quick writes of the same size can share an mtime tick: the content decides.
        if m.is_file() && m.len() <= HASH_CONTENT_MAX {
            std::fs::read(path).unwrap_or_default().hash(h);
        }
    }
}

/// Stamps every file under `path` (rule directories are small; depth is bounded).
fn walk(path: &Path, h: &mut DefaultHasher, depth: usize) {
    stamp(path, h);
    if depth > 8 {
        return;
    }
    if let Ok(entries) = std::fs::read_dir(path) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for p in paths {
            walk(&p, h, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_follows_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let source = RuleSource {
            rule_dirs: vec![dir.path().to_path_buf()],
            ..Default::default()
        };
        let empty = source.fingerprint();
        std::fs::write(dir.path().join("a.yml"), "x").unwrap();
        let one = source.fingerprint();
        assert_ne!(empty, one);
        assert_eq!(one, source.fingerprint());
        std::fs::write(dir.path().join("a.yml"), "y").unwrap();
        assert_ne!(
            one,
            source.fingerprint(),
            "same size, maybe same mtime, new content"
        );
    }

    #[test]
    fn builtin_pack_loads_and_a_bad_rule_is_refused_with_its_line() {
        let ok = RuleSource::default()
            .load()
            .expect("the shipped pack loads");
        assert!(ok.engine.rules().len() >= 40);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("bad.yml"),
            "title: bad\nlogsource:\n  category: process_creation\ndetection:\n  sel:\n    CommandLine|nosuchmod: x\n  condition: sel\n",
        )
        .unwrap();
        let source = RuleSource {
            rule_dirs: vec![dir.path().to_path_buf()],
            ..Default::default()
        };
        let err = source.load().err().expect("refused");
        assert!(err.contains("bad.yml:6"), "{err}");
        let skipping = RuleSource {
            skip_invalid: true,
            ..source
        };
        assert!(skipping.load().is_ok());
    }
}
