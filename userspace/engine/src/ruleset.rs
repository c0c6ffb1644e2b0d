//! Rule sets: Sigma YAML rules and Sigma filters loaded from files, directories or text (one
//! rule or filter per YAML document; several documents per file separated by `---`). Loading
//! is all or nothing: one bad rule fails the whole set, unless [`LoadOptions::skip_invalid`]
//! turns errors into warnings and drops the bad rules.
//!
//! [`RuleSet::load_over`] loads shipped rules (`builtin.rs` hands them in) and then the
//! user's: a user rule with the id of a shipped rule replaces it (in its place, with a
//! notice); two user rules with the same id are an error naming both.
//!
//! Floor 6 (rule sets, filters, allowlists): may use `filter`, `rule`, `yaml` and `error`.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use crate::{
    error::SourceError,
    filter::Filter,
    rule::{Level, Rule},
    yaml,
};

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
    /// Things worth saying that are not errors: a user rule replacing a shipped one, a rule
    /// naming a field no sensor reports, a filter reference that names no rule.
    pub notices: Vec<SourceError>,
}

/// Rules and filters ready to be compiled into an [`Engine`](crate::engine::Engine).
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    filters: Vec<Filter>,
}

/// What `tunnelwatch rules list` shows of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSummary {
    pub id: Option<String>,
    pub title: String,
    pub level: Option<Level>,
    /// `logsource.category` as written.
    pub category: String,
    /// `logsource.product` as written (none: both platforms).
    pub product: Option<String>,
    /// `tunnelwatch.family`.
    pub family: Option<String>,
    /// How many test cases the rule has.
    pub tests: usize,
    pub file: String,
    pub line: usize,
}

/// Where a source comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Builtin,
    User,
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
        b.add_paths(paths);
        b.finish(options)
    }

    /// Shipped rules (`(name, text)` sources, see `builtin.rs`), then the rules and filters of
    /// `paths` (`--rules DIR`, repeatable). A user rule with the id of a shipped rule replaces
    /// it in its place (a notice says so); two user rules with the same id are an error naming
    /// both. The shipped rules are always loaded strictly.
    pub fn load_over(
        shipped: &[(&str, &str)],
        paths: &[impl AsRef<Path>],
        options: LoadOptions,
    ) -> Result<Loaded, RuleSetError> {
        let mut b = Builder {
            origin: Origin::Builtin,
            ..Builder::default()
        };
        for (name, text) in shipped {
            b.add_source(name, text);
        }
        if !b.errors.is_empty() {
            return Err(RuleSetError { errors: b.errors });
        }
        b.origin = Origin::User;
        b.add_paths(paths);
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

    /// The filters, in load order.
    pub fn filters(&self) -> &[Filter] {
        &self.filters
    }

    /// What `tunnelwatch rules list` shows, rule by rule in load order.
    pub fn list(&self) -> Vec<RuleSummary> {
        self.rules
            .iter()
            .map(|r| RuleSummary {
                id: r.id.clone(),
                title: r.title.clone(),
                level: r.level,
                category: r.logsource.category.clone().unwrap_or_default(),
                product: r.logsource.product.clone(),
                family: r.family.clone(),
                tests: r.tests.len(),
                file: r.file.clone(),
                line: r.line,
            })
            .collect()
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

struct Builder {
    rules: Vec<Rule>,
    /// Where each rule came from.
    origins: Vec<Origin>,
    filters: Vec<Filter>,
    errors: Vec<SourceError>,
    notices: Vec<SourceError>,
    /// The origin of the sources added now.
    origin: Origin,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            rules: Vec::new(),
            origins: Vec::new(),
            filters: Vec::new(),
            errors: Vec::new(),
            notices: Vec::new(),
            origin: Origin::User,
        }
    }
}

impl Builder {
    fn add_paths(&mut self, paths: &[impl AsRef<Path>]) {
        for path in paths {
            let path = path.as_ref();
            let mut files = Vec::new();
            if path.is_dir() {
                if let Err(e) = collect_yaml_files(path, &mut files) {
                    self.errors.push(SourceError::new(
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
                    Ok(text) => self.add_source(&name, &text),
                    Err(e) => {
                        self.errors
                            .push(SourceError::new(&name, 0, format!("cannot read: {e}")))
                    }
                }
            }
        }
    }

    fn add_source(&mut self, name: &str, text: &str) {
        let docs = match yaml::parse(name, text) {
            Ok(docs) => docs,
            Err(e) => return self.errors.push(e),
        };
        let mut any = false;
        for doc in docs.iter().filter(|d| !yaml::is_null(d)) {
            any = true;
            if Filter::is_filter(doc) {
                match Filter::parse(name, doc) {
                    Ok(f) => self.add_filter(f),
                    Err(e) => self.errors.push(e),
                }
                continue;
            }
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
        for field in &rule.unreported_fields {
            self.notices.push(SourceError::new(
                &rule.file,
                rule.line,
                format!(
                    "rule '{}' names field '{field}', which no sensor reports yet: its selections on it never match",
                    rule.title
                ),
            ));
        }
        if let Some(id) = &rule.id
            && let Some(pos) = self.rules.iter().position(|r| {
                r.id.as_deref()
                    .is_some_and(|other| other.eq_ignore_ascii_case(id))
            })
        {
            let first = &self.rules[pos];
            if self.origins[pos] == Origin::Builtin && self.origin == Origin::User {
                self.notices.push(SourceError::new(
                    &rule.file,
                    rule.line,
                    format!(
                        "rule id '{id}' replaces the shipped rule '{}' ({}:{})",
                        first.title, first.file, first.line
                    ),
                ));
                self.rules[pos] = rule;
                self.origins[pos] = Origin::User;
                return;
            }
            let reason = format!(
                "duplicate rule id '{id}' (first used in {}:{})",
                first.file, first.line
            );
            return self
                .errors
                .push(SourceError::new(&rule.file, rule.line, reason));
        }
        self.rules.push(rule);
        self.origins.push(self.origin);
    }

    fn add_filter(&mut self, filter: Filter) {
        if let Some(id) = &filter.id
            && let Some(first) = self.filters.iter().find(|f| {
                f.id.as_deref()
                    .is_some_and(|other| other.eq_ignore_ascii_case(id))
            })
        {
            let reason = format!(
                "duplicate filter id '{id}' (first used in {}:{})",
                first.file, first.line
            );
            return self
                .errors
                .push(SourceError::new(&filter.file, filter.line, reason));
        }
        self.filters.push(filter);
    }

    fn finish(mut self, options: LoadOptions) -> Result<Loaded, RuleSetError> {
        if self.errors.is_empty() || options.skip_invalid {
            for f in &self.filters {
                for r in f.unmatched_references(&self.rules) {
                    self.notices.push(SourceError::new(
                        &f.file,
                        f.line,
                        format!("filter '{}' names rule '{r}', which is not loaded", f.title),
                    ));
                }
                let covered = self.rules.iter().filter(|r| f.covers(r)).count();
                if covered > 0 && f.excludes_everything() {
                    self.notices.push(SourceError::new(
                        &f.file,
                        f.line,
                        format!(
                            "filter '{}' excludes every event of the {covered} rule(s) it covers: \
                             its condition can never hold (a selection that matches everything, \
                             negated); those rules will never alert",
                            f.title
                        ),
                    ));
                }
            }
            Ok(Loaded {
                rules: RuleSet {
                    rules: self.rules,
                    filters: self.filters,
                },
                warnings: self.errors,
                notices: self.notices,
            })
        } else {
            Err(RuleSetError {
                errors: self.errors,
            })
        }
    }
}
