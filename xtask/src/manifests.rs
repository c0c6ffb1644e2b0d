//! The Kubernetes manifests under `deploy/` checked against the Kubernetes API's schemas with
//! kubernetes-validate (installed by setup, its schemas bundled: no network), strictly (an
//! unknown field fails), for the oldest Kubernetes release it bundles that the manifest must
//! still serve and for its newest.
//!
//! May use: shell, setup (where kubernetes-validate is).

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::{
    setup::KUBERNETES_VALIDATE_VENV,
    shell::{path_str, sh},
};

/// The manifests.
pub const MANIFESTS: &[&str] = &["deploy/tunnelwatch-daemonset.yaml"];

/// Kubernetes releases checked against: the oldest still-supported one bundled and the newest.
const KUBERNETES_VERSIONS: &[&str] = &["1.29.0", "1.37.0"];

/// Validates every manifest; fails with the validator's reasons.
pub fn validate() -> Result<()> {
    let program = Path::new(KUBERNETES_VALIDATE_VENV).join("bin/kubernetes-validate");
    if !program.is_file() {
        anyhow::bail!(
            "{} is missing: `cargo xtask setup` installs kubernetes-validate",
            program.display()
        );
    }
    for version in KUBERNETES_VERSIONS {
        let mut args = vec!["--strict", "--kubernetes-version", version];
        args.extend(MANIFESTS);
        sh(path_str(&program)?, &args)
            .with_context(|| format!("the manifests do not validate for Kubernetes {version}"))?;
    }
    Ok(())
}
