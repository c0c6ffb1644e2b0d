//! The rules shipped with tunnelwatch (`rules/*.yml` at the workspace root), embedded in the
//! binary and loaded at start: the three Splunk seed rules first (their alerts keep their
//! place), then the tunnel pack in file name order.
//!
//! Floor 6 (rule sets, filters, allowlists): may use `ruleset`.

use std::path::Path;

use crate::ruleset::{LoadOptions, Loaded, RuleSet, RuleSetError};

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
    (
        "rules/bore_command_line_other_binary.yml",
        include_str!("../../../rules/bore_command_line_other_binary.yml"),
    ),
    (
        "rules/bore_pub_dns.yml",
        include_str!("../../../rules/bore_pub_dns.yml"),
    ),
    (
        "rules/bore_renamed_binary.yml",
        include_str!("../../../rules/bore_renamed_binary.yml"),
    ),
    (
        "rules/bore_tunnel.yml",
        include_str!("../../../rules/bore_tunnel.yml"),
    ),
    (
        "rules/chisel_client_or_server.yml",
        include_str!("../../../rules/chisel_client_or_server.yml"),
    ),
    (
        "rules/chisel_command_line_other_binary.yml",
        include_str!("../../../rules/chisel_command_line_other_binary.yml"),
    ),
    (
        "rules/chisel_renamed_binary.yml",
        include_str!("../../../rules/chisel_renamed_binary.yml"),
    ),
    (
        "rules/cloudflared_named_tunnel.yml",
        include_str!("../../../rules/cloudflared_named_tunnel.yml"),
    ),
    (
        "rules/cloudflared_quick_tunnel.yml",
        include_str!("../../../rules/cloudflared_quick_tunnel.yml"),
    ),
    (
        "rules/cloudflared_renamed_binary.yml",
        include_str!("../../../rules/cloudflared_renamed_binary.yml"),
    ),
    (
        "rules/cloudflared_tunnel_domains_dns.yml",
        include_str!("../../../rules/cloudflared_tunnel_domains_dns.yml"),
    ),
    (
        "rules/devtunnel_host.yml",
        include_str!("../../../rules/devtunnel_host.yml"),
    ),
    (
        "rules/devtunnels_dns.yml",
        include_str!("../../../rules/devtunnels_dns.yml"),
    ),
    (
        "rules/devtunnels_renamed_binary.yml",
        include_str!("../../../rules/devtunnels_renamed_binary.yml"),
    ),
    (
        "rules/fileless_tunnel_arguments.yml",
        include_str!("../../../rules/fileless_tunnel_arguments.yml"),
    ),
    (
        "rules/frp_client_or_server.yml",
        include_str!("../../../rules/frp_client_or_server.yml"),
    ),
    (
        "rules/frp_config_other_binary.yml",
        include_str!("../../../rules/frp_config_other_binary.yml"),
    ),
    (
        "rules/frp_renamed_binary.yml",
        include_str!("../../../rules/frp_renamed_binary.yml"),
    ),
    (
        "rules/localhost_run_dns.yml",
        include_str!("../../../rules/localhost_run_dns.yml"),
    ),
    (
        "rules/localhost_run_ssh_tunnel.yml",
        include_str!("../../../rules/localhost_run_ssh_tunnel.yml"),
    ),
    (
        "rules/localtunnel_client.yml",
        include_str!("../../../rules/localtunnel_client.yml"),
    ),
    (
        "rules/localtunnel_dns.yml",
        include_str!("../../../rules/localtunnel_dns.yml"),
    ),
    (
        "rules/localxpose_dns.yml",
        include_str!("../../../rules/localxpose_dns.yml"),
    ),
    (
        "rules/localxpose_renamed_binary.yml",
        include_str!("../../../rules/localxpose_renamed_binary.yml"),
    ),
    (
        "rules/localxpose_tunnel.yml",
        include_str!("../../../rules/localxpose_tunnel.yml"),
    ),
    (
        "rules/ngrok_agent_tunnel_commands.yml",
        include_str!("../../../rules/ngrok_agent_tunnel_commands.yml"),
    ),
    (
        "rules/ngrok_current_domains_dns.yml",
        include_str!("../../../rules/ngrok_current_domains_dns.yml"),
    ),
    (
        "rules/ngrok_download_host_dns.yml",
        include_str!("../../../rules/ngrok_download_host_dns.yml"),
    ),
    (
        "rules/ngrok_renamed_binary.yml",
        include_str!("../../../rules/ngrok_renamed_binary.yml"),
    ),
    (
        "rules/pinggy_dns.yml",
        include_str!("../../../rules/pinggy_dns.yml"),
    ),
    (
        "rules/pinggy_tunnel.yml",
        include_str!("../../../rules/pinggy_tunnel.yml"),
    ),
    (
        "rules/playit_agent.yml",
        include_str!("../../../rules/playit_agent.yml"),
    ),
    (
        "rules/playit_dns.yml",
        include_str!("../../../rules/playit_dns.yml"),
    ),
    (
        "rules/playit_renamed_binary.yml",
        include_str!("../../../rules/playit_renamed_binary.yml"),
    ),
    (
        "rules/serveo_dns.yml",
        include_str!("../../../rules/serveo_dns.yml"),
    ),
    (
        "rules/serveo_ssh_tunnel.yml",
        include_str!("../../../rules/serveo_ssh_tunnel.yml"),
    ),
    (
        "rules/tailscale_funnel.yml",
        include_str!("../../../rules/tailscale_funnel.yml"),
    ),
    (
        "rules/vscode_tunnel.yml",
        include_str!("../../../rules/vscode_tunnel.yml"),
    ),
    (
        "rules/zrok_dns.yml",
        include_str!("../../../rules/zrok_dns.yml"),
    ),
    (
        "rules/zrok_renamed_binary.yml",
        include_str!("../../../rules/zrok_renamed_binary.yml"),
    ),
    (
        "rules/zrok_share.yml",
        include_str!("../../../rules/zrok_share.yml"),
    ),
];

/// Loads the shipped rules (strictly: a bad shipped rule is a bug).
pub fn rules() -> Result<RuleSet, RuleSetError> {
    RuleSet::from_sources(SOURCES.iter().copied(), LoadOptions::default()).map(|l| l.rules)
}

/// The shipped rules, then the rules and filters of `paths` (`--rules DIR`): see
/// [`RuleSet::load_over`].
pub fn load_with(paths: &[impl AsRef<Path>], options: LoadOptions) -> Result<Loaded, RuleSetError> {
    RuleSet::load_over(SOURCES, paths, options)
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
