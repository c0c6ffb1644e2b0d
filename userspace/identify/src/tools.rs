//! The Go-built tunnel tools known by their main package, one table for Linux and Windows:
//! the import path the Go toolchain records as `path` in every binary it builds, whatever the
//! file is called. Paths are compared with their major-version elements (`/v2`, `/v3`)
//! removed, so a module's next major version is still known.

/// Main package import paths (without `/vN` elements) and the tool each builds.
pub const GO_MAIN_PACKAGES: &[(&str, &str)] = &[
    // ngrok v2 and v3 agents (closed source, built from ngrok's own module).
    ("go.ngrok.com/cmd/ngrok", "ngrok"),
    // ngrok v1 (open source).
    ("github.com/inconshreveable/ngrok/main/ngrok", "ngrok"),
    (
        "github.com/cloudflare/cloudflared/cmd/cloudflared",
        "cloudflared",
    ),
    ("github.com/fatedier/frp/cmd/frpc", "frpc"),
    ("github.com/fatedier/frp/cmd/frps", "frps"),
    ("github.com/jpillora/chisel", "chisel"),
    ("github.com/openziti/zrok/cmd/zrok", "zrok"),
];

/// The tool a Go main package path builds, ignoring `/vN` major-version elements.
pub fn classify(path: &str) -> Option<&'static str> {
    let mut normalized = String::with_capacity(path.len());
    for element in path.split('/').filter(|e| !is_major_version(e)) {
        if !normalized.is_empty() {
            normalized.push('/');
        }
        normalized.push_str(element);
    }
    GO_MAIN_PACKAGES
        .iter()
        .find(|(p, _)| *p == normalized)
        .map(|(_, name)| *name)
}

/// `v2`, `v10`: a Go module major-version path element.
fn is_major_version(element: &str) -> bool {
    element.len() > 1
        && element.starts_with('v')
        && element[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_tools_and_major_versions() {
        assert_eq!(classify("go.ngrok.com/cmd/ngrok"), Some("ngrok"));
        assert_eq!(classify("github.com/fatedier/frp/cmd/frpc"), Some("frpc"));
        assert_eq!(
            classify("github.com/openziti/zrok/v2/cmd/zrok"),
            Some("zrok")
        );
        assert_eq!(classify("github.com/jpillora/chisel"), Some("chisel"));
        assert_eq!(
            classify("github.com/cloudflare/cloudflared/cmd/cloudflared"),
            Some("cloudflared")
        );
        assert_eq!(classify("github.com/example/ngrok-lookalike"), None);
        assert_eq!(classify("go.ngrok.com/cmd/ngrok/extra"), None);
        assert_eq!(classify("v"), None);
        assert_eq!(classify(""), None);
    }
}
