//! Whether the sensor may trust its configuration: the config file, the rule files and the
//! rule directories decide what it reports, so a user who can change them can silence it (an
//! allowlist entry for everything, a filter, a rule replaced by its id). The sensor refuses,
//! at start and at each reload, any of them that is owned by a user other than root or
//! writable by group or others, and any directory above them that is not root's or that
//! group or others may write to without the sticky bit (they could swap the file for another).
//! `--allow-untrusted-config` skips the check (development, tests as a user).
//!
//! Unix permissions only: on Windows the check is not made (the service's files are
//! protected by their ACLs, which the administrator sets).
//!
//! Uses: nothing of this crate or the engine.

use std::path::Path;

/// Checks the config file (if any) and the rule paths (files or directories, with everything
/// under them). `Err` names the first untrusted file and why, with how to override.
pub fn check(config: Option<&Path>, rule_paths: &[impl AsRef<Path>]) -> Result<(), String> {
    imp::check(config, rule_paths).map_err(|e| {
        format!("{e}; a user other than root could change what the sensor reports (--allow-untrusted-config overrides this check)")
    })
}

#[cfg(unix)]
mod imp {
    use std::{
        os::unix::fs::MetadataExt,
        path::{Path, PathBuf},
    };

    /// Depth of a rule directory walked (the same bound as the reload fingerprint's).
    const DEPTH_MAX: usize = 8;

    pub(super) fn check(
        config: Option<&Path>,
        rule_paths: &[impl AsRef<Path>],
    ) -> Result<(), String> {
        if let Some(c) = config {
            entry(c)?;
            ancestors(c)?;
        }
        for p in rule_paths {
            let p = p.as_ref();
            walk(p, 0)?;
            ancestors(p)?;
        }
        Ok(())
    }

    /// The file or directory itself: root's, not writable by group or others.
    fn entry(path: &Path) -> Result<(), String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mode = meta.mode() & 0o7777;
        if meta.uid() != 0 {
            return Err(format!(
                "{}: refused: owned by uid {}, not root",
                path.display(),
                meta.uid()
            ));
        }
        if mode & 0o022 != 0 {
            let who = match mode & 0o022 {
                0o020 => "group",
                0o002 => "others",
                _ => "group and others",
            };
            return Err(format!(
                "{}: refused: writable by {who} (mode {mode:04o})",
                path.display()
            ));
        }
        Ok(())
    }

    fn walk(path: &Path, depth: usize) -> Result<(), String> {
        entry(path)?;
        if depth > DEPTH_MAX || !path.is_dir() {
            return Ok(());
        }
        let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for p in paths {
            walk(&p, depth + 1)?;
        }
        Ok(())
    }

    /// The directories above `path` (of its real location): root's, and not writable by
    /// group or others unless sticky (as /tmp: others may add files, not replace root's).
    fn ancestors(path: &Path) -> Result<(), String> {
        let real = std::fs::canonicalize(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for dir in real.ancestors().skip(1) {
            let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let mode = meta.mode() & 0o7777;
            if meta.uid() != 0 {
                return Err(format!(
                    "{}: refused: the directory {} is owned by uid {}, not root",
                    path.display(),
                    dir.display(),
                    meta.uid()
                ));
            }
            if mode & 0o022 != 0 && mode & 0o1000 == 0 {
                return Err(format!(
                    "{}: refused: the directory {} is writable by group or others (mode {mode:04o})",
                    path.display(),
                    dir.display()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(not(unix))]
mod imp {
    use std::path::Path;

    pub(super) fn check(_: Option<&Path>, _: &[impl AsRef<Path>]) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::unix::fs::{PermissionsExt, chown};

    use super::*;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Runs only as root (the files must be root's to pass); the end-to-end tests cover the
    /// sensor's side.
    fn root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn files_writable_by_others_or_owned_by_a_user_are_refused() {
        if !root() {
            eprintln!("skipped: needs root to own the test files");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        chmod(&rules, 0o755);
        let rule = rules.join("r.yml");
        std::fs::write(&rule, "x").unwrap();
        chmod(&rule, 0o644);
        let config = dir.path().join("tw.yml");
        std::fs::write(&config, "x").unwrap();
        chmod(&config, 0o600);
        check(Some(&config), &[&rules]).expect("root's 0644/0755 files pass");

        chmod(&config, 0o666);
        let e = check(Some(&config), &[&rules]).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "{}: refused: writable by group and others (mode 0666)",
                config.display()
            )),
            "{e}"
        );
        assert!(e.contains("--allow-untrusted-config"), "{e}");
        chmod(&config, 0o600);

        chmod(&rule, 0o664);
        let e = check(None, &[&rules]).unwrap_err();
        assert!(
            e.contains("r.yml: refused: writable by group (mode 0664)"),
            "{e}"
        );
        chmod(&rule, 0o644);

        chmod(&rules, 0o757);
        let e = check(None, &[&rules]).unwrap_err();
        assert!(
            e.contains("rules: refused: writable by others (mode 0757)"),
            "{e}"
        );
        chmod(&rules, 0o755);

        chown(&rule, Some(65534), None).unwrap();
        let e = check(None, &[&rule]).unwrap_err();
        assert!(
            e.contains("r.yml: refused: owned by uid 65534, not root"),
            "{e}"
        );
        chown(&rule, Some(0), None).unwrap();

        // A directory above that others may write to, without the sticky bit.
        chmod(dir.path(), 0o777);
        let e = check(Some(&config), &[] as &[&Path]).unwrap_err();
        assert!(
            e.contains("is writable by group or others (mode 0777)"),
            "{e}"
        );
        chmod(dir.path(), 0o1777);
        check(Some(&config), &[&rules]).expect("a sticky directory above is fine");
    }
}
