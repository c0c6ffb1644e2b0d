//! Running rule test cases (`tunnelwatch.tests`, parsed as data in `test_case.rs`).
//!
//! [`run_tests`] evaluates every test event with the whole rule set, through the compiled
//! matcher and the rule-by-rule path (which must agree), without allowlists or filters. A
//! test fails when its rule fires and should not or the other way round, when the message
//! differs, or when the event raises more than one alert of the same `tunnelwatch.family`
//! (an event should raise at most one alert per tunnel family).
//!
//! A correlation's test cases run their events in order through the engine and a fresh
//! correlator (`correlation/state.rs`), as the evaluate-and-emit step does; a test fails when
//! the correlation fires and should not or the other way round, or when its first alert's
//! message or count differs.
//!
//! Floor 8 (the top): may use the engine and everything below it.

use std::{fmt, path::Path};

use crate::{
    alert::Alert,
    allowlist::Allowlist,
    correlation::{Correlator, Fired},
    engine::Engine,
    field::Category,
    ruleset::{LoadOptions, Loaded, RuleSet, RuleSetError},
};

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
    let engine = Engine::for_tests(rules.clone(), Allowlist::default());
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
    for (c, corr) in engine.rules().correlations().iter().enumerate() {
        let mut failures = Vec::new();
        for t in &corr.tests {
            let fail = |reason: String| TestFailure {
                file: corr.file.clone(),
                line: t.line,
                test: t.name.clone(),
                reason,
            };
            let fired = run_correlation(&engine, &t.events);
            let mine: Vec<&Fired> = fired.iter().filter(|f| f.correlation == c).collect();
            match (t.alert, mine.first()) {
                (true, None) => failures.push(fail(format!(
                    "expected the correlation to fire, it did not ({} events)",
                    t.events.len()
                ))),
                (false, Some(f)) => failures.push(fail(format!(
                    "expected no alert, the correlation fired (count {}{})",
                    f.count,
                    f.distinct
                        .map(|d| format!(", {d} distinct"))
                        .unwrap_or_default()
                ))),
                (true, Some(f)) => {
                    if let Some(want) = &t.message
                        && *want != f.message
                    {
                        failures.push(fail(format!(
                            "message is {:?}, expected {:?}",
                            f.message, want
                        )));
                    }
                    if let Some(want) = t.count
                        && want != f.count
                    {
                        failures.push(fail(format!("count is {}, expected {want}", f.count)));
                    }
                }
                (false, None) => {}
            }
        }
        report.rules.push(RuleTestResult {
            id: corr.meta.id.clone(),
            title: corr.meta.title.clone(),
            file: corr.file.clone(),
            line: corr.line,
            tests: corr.tests.len(),
            failures,
        });
    }
    report
}

/// Runs `events` through `engine` and a fresh correlator, as the step does: what fired.
fn run_correlation(engine: &Engine, events: &[crate::event::Event]) -> Vec<Fired> {
    let mut correlator = Correlator::default();
    let mut fired = Vec::new();
    let (mut alerts, mut feeds) = (Vec::new(), Vec::new());
    for e in events {
        correlator.advance(engine, e.time(), &mut fired);
        alerts.clear();
        feeds.clear();
        engine.evaluate_feeding(e, &mut alerts, &mut feeds);
        correlator.observe(engine, e, &feeds, &mut fired);
    }
    fired
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
