//! The rules shipped with tunnelwatch (`rules/*.yml` at the workspace root), embedded in the
//! binary and loaded at start.

use crate::ruleset::{LoadOptions, RuleSet, RuleSetError};

/// `(name, YAML text)` of every shipped rule file.
pub const SOURCES: &[(&str, &str)] = &[
    (
        "rules/linux_ngrok_reverse_proxy_usage.yml",
        include_str!("../../../rules/linux_ngrok_reverse_proxy_usage.yml"),
    ),
    (
        "rules/windows_ngrok_reverse_proxy_usage.yml",
        include_str!("../../../rules/windows_ngrok_reverse_proxy_usage.yml"),
    ),
    (
        "rules/ngrok_reverse_proxy_on_network.yml",
        include_str!("../../../rules/ngrok_reverse_proxy_on_network.yml"),
    ),
];

/// Loads the shipped rules (strictly: a bad shipped rule is a bug).
pub fn rules() -> Result<RuleSet, RuleSetError> {
    RuleSet::from_sources(SOURCES.iter().copied(), LoadOptions::default()).map(|l| l.rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_rule_loads() {
        let set = rules().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.len(), SOURCES.len());
        for id in [
            "bc84d574-708c-467d-b78a-4c1e20171f97",
            "e2549f2c-0aef-408a-b0c1-e0f270623436",
            "5790a766-53b8-40d3-a696-3547b978fcf0",
        ] {
            let rule = set.get(id).unwrap_or_else(|| panic!("no rule {id}"));
            assert_eq!(rule.risk_score, Some(50));
            assert_eq!(rule.mitre_technique_ids, ["T1572", "T1090", "T1102"]);
            assert_eq!(rule.analytic_type.as_deref(), Some("Anomaly"));
        }
    }

    #[test]
    fn every_rule_file_in_the_rules_directory_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
            .map(|n| format!("rules/{n}"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = SOURCES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }
}
