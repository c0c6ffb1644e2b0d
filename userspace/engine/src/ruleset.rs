//! Rule sets: Sigma YAML rules loaded from files, directories or text (one rule per YAML
//! document; several documents per file separated by `---`). Loading is all or nothing: one
//! bad rule fails the whole set, unless [`LoadOptions::skip_invalid`] turns errors into
//! warnings and drops the bad rules.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use crate::{error::SourceError, rule::Rule, yaml};

/// How to load rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Drop bad rules (and unreadable files) and report them as warnings instead of failing.
    pub skip_invalid: bool,
}

/// Why a rule set did not load: every problem found, each with file and line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSetError {
    /// Each problem, in the order found.
    pub errors: Vec<SourceError>,
}

impl fmt::Display for RuleSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleSetError {}

/// A loaded rule set and the problems skipped on the way (only with `skip_invalid`).
#[derive(Debug)]
pub struct Loaded {
    /// The rules that loaded.
    pub rules: RuleSet,
    /// The problems skipped (empty unless `skip_invalid`).
    pub warnings: Vec<SourceError>,
}

/// Rules ready to be compiled into an [`Engine`](crate::engine::Engine).
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Loads rules from `(name, text)` sources; `name` is used in error messages.
    pub fn from_sources<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
        options: LoadOptions,
    ) -> Result<Loaded, RuleSetError> {
        let mut b = Builder::default();
        for (name, text) in sources {
            b.add_source(name, text);
        }
        b.finish(options)
    }

    /// Loads the rules of one text, strictly.
    pub fn from_str(name: &str, text: &str) -> Result<RuleSet, RuleSetError> {
        Self::from_sources([(name, text)], LoadOptions::default()).map(|l| l.rules)
    }

    /// Loads rule files and directories (searched recursively for `*.yml` and `*.yaml`, in
    /// name order).
    pub fn load(paths: &[impl AsRef<Path>], options: LoadOptions) -> Result<Loaded, RuleSetError> {
        let mut b = Builder::default();
        for path in paths {
            let path = path.as_ref();
            let mut files = Vec::new();
            if path.is_dir() {
                if let Err(e) = collect_yaml_files(path, &mut files) {
                    b.errors.push(SourceError::new(
                        &path.display().to_string(),
                        0,
                        format!("cannot read directory: {e}"),
                    ));
                }
            } else {
                files.push(path.to_path_buf());
            }
            for file in files {
                let name = file.display().to_string();
                match std::fs::read_to_string(&file) {
                    Ok(text) => b.add_source(&name, &text),
                    Err(e) => {
                        b.errors
                            .push(SourceError::new(&name, 0, format!("cannot read: {e}")))
                    }
                }
            }
        }
        b.finish(options)
    }

    /// The rules, in load order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule with this id (ignoring case).
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.id.as_deref().is_some_and(|i| i.eq_ignore_ascii_case(id)))
    }
}

fn collect_yaml_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_yaml_files(&p, out)?;
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")) {
            out.push(p);
        }
    }
    Ok(())
}

#[derive(Default)]
struct Builder {
    rules: Vec<Rule>,
    errors: Vec<SourceError>,
}

impl Builder {
    fn add_source(&mut self, name: &str, text: &str) {
        let docs = match yaml::parse(name, text) {
            Ok(docs) => docs,
            Err(e) => return self.errors.push(e),
        };
        let mut any = false;
        for doc in docs.iter().filter(|d| !yaml::is_null(d)) {
            any = true;
            match Rule::parse(name, doc) {
                Ok(rule) => self.add_rule(rule),
                Err(e) => self.errors.push(e),
            }
        }
        if !any {
            self.errors
                .push(SourceError::new(name, 0, "the file holds no rule"));
        }
    }

    fn add_rule(&mut self, rule: Rule) {
        if let Some(id) = &rule.id
            && let Some(first) = self.rules.iter().find(|r| {
                r.id.as_deref()
                    .is_some_and(|other| other.eq_ignore_ascii_case(id))
            })
        {
            let reason = format!(
                "duplicate rule id '{id}' (first used in {}:{})",
                first.file, first.line
            );
            return self
                .errors
                .push(SourceError::new(&rule.file, rule.line, reason));
        }
        self.rules.push(rule);
    }

    fn finish(self, options: LoadOptions) -> Result<Loaded, RuleSetError> {
        if self.errors.is_empty() || options.skip_invalid {
            Ok(Loaded {
                rules: RuleSet { rules: self.rules },
                warnings: self.errors,
            })
        } else {
            Err(RuleSetError {
                errors: self.errors,
            })
        }
    }
}
