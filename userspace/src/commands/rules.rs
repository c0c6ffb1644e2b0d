//! `tunnelwatch rules check [DIR]...` and `tunnelwatch rules list`.
//!
//! Uses: the engine (rule sets, the shipped rules, rule test running).

use std::{io::Write, path::PathBuf};

use tunnelwatch_engine::{builtin, rule_tests, ruleset::LoadOptions};

/// Validates the rules (and filters) of `dirs`, or the shipped pack when none is given, and
/// runs their test cases; prints one line per rule and a summary. `Ok(false)` when a test
/// failed.
pub fn check(dirs: &[PathBuf], options: LoadOptions, out: &mut impl Write) -> Result<bool, String> {
    let (loaded, report) = if dirs.is_empty() {
        let rules = builtin::rules().map_err(|e| e.to_string())?;
        let report = rule_tests::run_tests(&rules);
        (None, report)
    } else {
        let (loaded, report) = rule_tests::check(dirs, options).map_err(|e| e.to_string())?;
        (Some(loaded), report)
    };
    if let Some(loaded) = &loaded {
        for w in &loaded.warnings {
            writeln!(out, "skipped: {w}").map_err(|e| e.to_string())?;
        }
        for n in &loaded.notices {
            writeln!(out, "notice: {n}").map_err(|e| e.to_string())?;
        }
    }
    write!(out, "{report}").map_err(|e| e.to_string())?;
    Ok(report.passed())
}

/// Lists the rules loaded (the shipped pack and `dirs`): id, level, category, product,
/// family, title, one per line, tab-separated.
pub fn list(dirs: &[PathBuf], options: LoadOptions, out: &mut impl Write) -> Result<(), String> {
    let loaded = builtin::load_with(dirs, options).map_err(|e| e.to_string())?;
    for r in loaded.rules.list() {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}",
            r.id.as_deref().unwrap_or("-"),
            r.level.map(|l| l.as_str()).unwrap_or("-"),
            r.category,
            r.product.as_deref().unwrap_or("any"),
            r.family.as_deref().unwrap_or("-"),
            r.title,
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_pack_checks_clean() {
        let mut out = Vec::new();
        assert!(check(&[], LoadOptions::default(), &mut out).unwrap());
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("bc84d574-708c-467d-b78a-4c1e20171f97"),
            "{text}"
        );
    }

    #[test]
    fn list_names_every_rule() {
        let mut out = Vec::new();
        list(&[], LoadOptions::default(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let seed = text
            .lines()
            .find(|l| l.starts_with("5790a766-53b8-40d3-a696-3547b978fcf0"))
            .expect("the network seed");
        assert!(seed.ends_with("Ngrok Reverse Proxy on Network"), "{seed}");
        assert!(text.lines().count() >= 40);
    }
}
