//! Rule test cases as data: events in, alert or no alert out, written in each rule file under
//! `tunnelwatch.tests`, with the event in the CIM field names of the JSON output:
//!
//! ```yaml
//! tunnelwatch:
//!   family: ngrok
//!   tests:
//!     - name: an HTTP tunnel          # optional
//!       alert: true                   # whether this rule must fire
//!       message: A reverse proxy ...  # optional: the alert's message, exactly
//!       event:
//!         process_name: ngrok
//!         process: ngrok http 8080
//!         platform: linux             # optional: else the rule's product, else inferred
//! ```
//!
//! An event is a process event for `process_creation` rules and a DNS event for the others
//! (`message_type` defaults to `Query`); keys are those of the event lines (`process`,
//! `process_name`, `process_path`, `parent_process_name`, `original_file_name`, `user`,
//! `query`, `answer`, ...), plus `platform`; `process_name` defaults to the last component of
//! `process_path`. A key the event lines do not have is refused with its line.
//!
//! [`run_tests`] evaluates every test event with the whole rule set, through the compiled
//! matcher and the rule-by-rule path (which must agree), without allowlists or filters. A
//! test fails when its rule fires and should not or the other way round, when the message
//! differs, or when the event raises more than one alert of the same `tunnelwatch.family`
//! (an event should raise at most one alert per tunnel family).

use std::{fmt, path::Path};

use saphyr::{Scalar, YamlData};
use serde_json::{Map, Number, Value};

use crate::{
    alert::Alert,
    allowlist::Allowlist,
    engine::Engine,
    error::SourceError,
    event::{Event, Platform},
    field::Category,
    replay::{self, BuildOptions},
    ruleset::{LoadOptions, Loaded, RuleSet, RuleSetError},
    yaml::{self, Node, Reader},
};

/// One test case of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestCase {
    /// Its name (`test N` when the file gives none).
    pub name: String,
    /// The line its entry starts on.
    pub line: usize,
    /// Whether the rule must fire on the event.
    pub alert: bool,
    /// The alert's expected message, when given.
    pub message: Option<String>,
    /// The event.
    pub event: Event,
}

/// Parses `tunnelwatch.tests` of a rule reading `category` events on `platforms`.
pub(crate) fn parse(
    r: &Reader<'_>,
    node: &Node<'_>,
    category: Category,
    platforms: &[Platform],
) -> Result<Vec<TestCase>, SourceError> {
    let YamlData::Sequence(items) = &r.untagged(node)?.data else {
        return Err(r.err(node, "tunnelwatch.tests must be a list of test cases"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let (mut name, mut alert, mut message, mut event) = (None, None, None, None);
        for (k, v) in r.map(item, "each test case")? {
            match r.key(k)? {
                "name" => name = Some(r.string(v, "a test's name")?.to_owned()),
                "alert" => match &r.untagged(v)?.data {
                    YamlData::Value(Scalar::Boolean(b)) => alert = Some(*b),
                    _ => return Err(r.err(v, "a test's 'alert' must be true or false")),
                },
                "message" => message = Some(r.string(v, "a test's message")?.to_owned()),
                "event" => event = Some(v),
                other => {
                    return Err(r.err(
                        k,
                        format!(
                            "unknown key '{other}' in a test case (name, alert, message, event)"
                        ),
                    ));
                }
            }
        }
        let Some(alert) = alert else {
            return Err(r.err(item, "a test case needs 'alert: true' or 'alert: false'"));
        };
        let Some(event_node) = event else {
            return Err(r.err(item, "a test case needs an 'event'"));
        };
        if message.is_some() && !alert {
            return Err(r.err(
                item,
                "a test case with 'alert: false' cannot expect a message",
            ));
        }
        let fields = to_json_map(r, event_node)?;
        let opts = BuildOptions {
            strict: true,
            platform: (platforms.len() == 1).then(|| platforms[0]),
            category: Some(category),
        };
        let event = replay::build_event(&fields, &opts)
            .map_err(|e| r.err(event_node, format!("bad test event: {e}")))?;
        if Category::of(&event) != category {
            let kind = |c: Category| match c {
                Category::ProcessCreation => "a process event (Endpoint.Processes)",
                Category::Dns => "a DNS event (Network_Resolution)",
            };
            return Err(r.err(
                event_node,
                format!(
                    "bad test event: {}, but the rule reads {}",
                    kind(Category::of(&event)),
                    kind(category)
                        .replacen("a ", "", 1)
                        .replacen("event", "events", 1)
                ),
            ));
        }
        out.push(TestCase {
            name: name.unwrap_or_else(|| format!("test {}", n + 1)),
            line: yaml::line(item),
            alert,
            message,
            event,
        });
    }
    Ok(out)
}

/// A YAML mapping of scalars and lists of scalars as JSON, for the event builder.
fn to_json_map(r: &Reader<'_>, node: &Node<'_>) -> Result<Map<String, Value>, SourceError> {
    let scalar = |v: &Node<'_>| -> Result<Value, SourceError> {
        Ok(match &r.untagged(v)?.data {
            YamlData::Value(Scalar::String(s)) => Value::String(s.to_string()),
            YamlData::Value(Scalar::Integer(n)) => Value::Number(Number::from(*n)),
            YamlData::Value(Scalar::Boolean(b)) => Value::Bool(*b),
            YamlData::Value(Scalar::Null) => Value::Null,
            _ => {
                return Err(r.err(
                    v,
                    format!(
                        "test event values must be scalars, not {}",
                        yaml::type_name(v)
                    ),
                ));
            }
        })
    };
    let mut out = Map::new();
    for (k, v) in r.map(node, "a test event")? {
        let key = r.key(k)?;
        let value = match &r.untagged(v)?.data {
            YamlData::Sequence(items) => {
                Value::Array(items.iter().map(scalar).collect::<Result<_, _>>()?)
            }
            _ => scalar(v)?,
        };
        out.insert(key.to_owned(), value);
    }
    Ok(out)
}

/// A failed test case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestFailure {
    /// The rule file.
    pub file: String,
    /// The test case's line.
    pub line: usize,
    /// The test case's name.
    pub test: String,
    /// What went wrong.
    pub reason: String,
}

impl fmt::Display for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: test '{}': {}",
            self.file, self.line, self.test, self.reason
        )
    }
}

/// The test results of one rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleTestResult {
    /// The rule's id.
    pub id: Option<String>,
    /// The rule's title.
    pub title: String,
    /// Where the rule is.
    pub file: String,
    pub line: usize,
    /// How many test cases ran.
    pub tests: usize,
    /// Those that failed.
    pub failures: Vec<TestFailure>,
}

impl RuleTestResult {
    /// Whether every test case passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The test results of a rule set, rule by rule in load order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestReport {
    pub rules: Vec<RuleTestResult>,
}

impl TestReport {
    /// Whether every test case of every rule passed.
    pub fn passed(&self) -> bool {
        self.rules.iter().all(RuleTestResult::passed)
    }

    /// How many test cases ran.
    pub fn tests(&self) -> usize {
        self.rules.iter().map(|r| r.tests).sum()
    }

    /// Every failure.
    pub fn failures(&self) -> impl Iterator<Item = &TestFailure> {
        self.rules.iter().flat_map(|r| &r.failures)
    }
}

/// One line per rule (`ok`, `FAIL` or `none` for a rule without tests), each failure under
/// its rule, then a summary.
impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.rules {
            let status = match (r.tests, r.passed()) {
                (0, _) => "none",
                (_, true) => "ok  ",
                (_, false) => "FAIL",
            };
            writeln!(
                f,
                "{status} {}:{} {} {} ({} test{})",
                r.file,
                r.line,
                r.id.as_deref().unwrap_or("-"),
                r.title,
                r.tests,
                if r.tests == 1 { "" } else { "s" }
            )?;
            for failure in &r.failures {
                writeln!(f, "     {failure}")?;
            }
        }
        let failed = self.failures().count();
        write!(
            f,
            "{} rules, {} tests, {} failed",
            self.rules.len(),
            self.tests(),
            failed
        )
    }
}

/// Runs the test cases of every rule of `rules` (see the module documentation).
pub fn run_tests(rules: &RuleSet) -> TestReport {
    let engine = Engine::without_filters(rules.clone(), Allowlist::default());
    let all = engine.rules().rules();
    let mut report = TestReport::default();
    for rule in all {
        let mut failures = Vec::new();
        for t in &rule.tests {
            let fail = |reason: String| TestFailure {
                file: rule.file.clone(),
                line: t.line,
                test: t.name.clone(),
                reason,
            };
            let mut compiled: Vec<Alert<'_>> = Vec::new();
            engine.evaluate(&t.event, &mut compiled);
            let mut naive: Vec<Alert<'_>> = Vec::new();
            engine.evaluate_rule_by_rule(&t.event, &mut naive);
            let index = |a: &Alert<'_>| all.iter().position(|r| std::ptr::eq(r, a.rule));
            let fired: Vec<usize> = compiled.iter().filter_map(index).collect();
            let fired_naive: Vec<usize> = naive.iter().filter_map(index).collect();
            if fired != fired_naive {
                failures.push(fail(format!(
                    "the compiled matcher fired {} but rule-by-rule evaluation fired {}",
                    names(all, &fired),
                    names(all, &fired_naive)
                )));
                continue;
            }
            let mine = compiled.iter().find(|a| std::ptr::eq(a.rule, rule));
            match (t.alert, mine) {
                (true, None) => {
                    failures.push(fail(if rule.applies_to(&t.event) {
                        "expected an alert, the rule did not fire".into()
                    } else {
                        format!(
                            "expected an alert, but the rule does not apply to this event ({} on {})",
                            Category::of(&t.event).datamodel(),
                            t.event.platform().as_str()
                        )
                    }));
                }
                (false, Some(_)) => failures.push(fail("expected no alert, the rule fired".into())),
                (true, Some(a)) => {
                    if let Some(want) = &t.message
                        && *want != a.message
                    {
                        failures.push(fail(format!(
                            "message is {:?}, expected {:?}",
                            a.message, want
                        )));
                    }
                }
                (false, None) => {}
            }
            // At most one alert per family.
            let mut seen: Vec<&str> = Vec::new();
            for &j in &fired {
                let Some(family) = all[j].family.as_deref() else {
                    continue;
                };
                if seen.contains(&family) {
                    continue;
                }
                seen.push(family);
                let same: Vec<usize> = fired
                    .iter()
                    .copied()
                    .filter(|&k| all[k].family.as_deref() == Some(family))
                    .collect();
                if same.len() > 1 {
                    failures.push(fail(format!(
                        "the event raised {} alerts of family '{family}': {}",
                        same.len(),
                        names(all, &same)
                    )));
                }
            }
        }
        report.rules.push(RuleTestResult {
            id: rule.id.clone(),
            title: rule.title.clone(),
            file: rule.file.clone(),
            line: rule.line,
            tests: rule.tests.len(),
            failures,
        });
    }
    report
}

fn names(rules: &[crate::rule::Rule], idx: &[usize]) -> String {
    if idx.is_empty() {
        return "nothing".into();
    }
    idx.iter()
        .map(|&i| {
            let r = &rules[i];
            format!(
                "{} ({}:{})",
                r.id.as_deref().unwrap_or(&r.title),
                r.file,
                r.line
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `tunnelwatch rules check PATH...`: loads the rules and filters of `paths` (strictly unless
/// `options` says otherwise: a rule that does not load is an error with its file and line)
/// and runs their test cases.
pub fn check(
    paths: &[impl AsRef<Path>],
    options: LoadOptions,
) -> Result<(Loaded, TestReport), RuleSetError> {
    let loaded = RuleSet::load(paths, options)?;
    let report = run_tests(&loaded.rules);
    Ok((loaded, report))
}
