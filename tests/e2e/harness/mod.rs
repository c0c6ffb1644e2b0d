//! What the end-to-end tests share: the sensor under test, a DNS responder and clients, and
//! the programs they run.

pub mod dns_client;
pub mod dns_server;
pub mod programs;
pub mod sensor;
pub mod tls;

/// Fails the test (or skips it, loudly, with TUNNELWATCH_SKIP_E2E=1) when not root.
/// Returns false when the test must return early.
pub fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("TUNNELWATCH_SKIP_E2E").as_deref() == Ok("1") {
        eprintln!("SKIPPED: end-to-end tests need root (TUNNELWATCH_SKIP_E2E=1 is set)");
        return false;
    }
    panic!(
        "end-to-end tests load eBPF programs and need root: run `cargo xtask test` as root \
         (or set TUNNELWATCH_SKIP_E2E=1 to skip them explicitly)"
    );
}

/// A name no other test uses, for DNS queries and temp files.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
