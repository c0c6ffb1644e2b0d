//! What the shape of a DNS query name says, for rules that look for data hidden in names (DNS
//! tunnels): the registered domain (the public suffix list's registrable domain, e.g.
//! `example.co.uk` for `a.b.example.co.uk`), the number of labels, the longest label and the
//! Shannon entropy of the part left of the registered domain. They are computed from the
//! name when a rule reads them, without allocating, the same live, on Windows and in `replay`
//! (the lines do not carry them: they follow from `query`).
//!
//! The suffix list is the `psl` crate's, built into the binary.
//!
//! Floor 1 (events, fields and lines): uses nothing of the engine.

/// The registered domain of `name` (lower case, no trailing dot): the public suffix plus one
/// label. `None` when the name is a public suffix itself (`com`, `co.uk`, a single label).
pub(crate) fn registered_domain(name: &str) -> Option<&str> {
    psl::domain_str(name)
}

/// The part of `name` left of its registered domain, without the dot between them: the
/// labels that a tunnel fills with data. The whole name when it has no registered domain;
/// empty when the name is its registered domain.
pub(crate) fn subdomain(name: &str) -> &str {
    match registered_domain(name) {
        Some(domain) => name[..name.len() - domain.len()].trim_end_matches('.'),
        None => name,
    }
}

/// How many labels `name` has (0 for the root, the empty name).
pub(crate) fn label_count(name: &str) -> usize {
    if name.is_empty() {
        0
    } else {
        name.split('.').count()
    }
}

/// The length in bytes of the longest label of `name`.
pub(crate) fn longest_label(name: &str) -> usize {
    name.split('.').map(str::len).max().unwrap_or(0)
}

/// The Shannon entropy of the bytes of `text`, dots excluded, in bits per byte: 0 for one
/// repeated byte, up to 8. `None` when there is nothing to measure.
pub(crate) fn entropy(text: &str) -> Option<f64> {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for &b in text.as_bytes() {
        if b != b'.' {
            counts[usize::from(b)] += 1;
            n += 1;
        }
    }
    if n == 0 {
        return None;
    }
    let total = f64::from(n);
    let sum: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / total;
            -p * p.log2()
        })
        .sum();
    // Rounded to a thousandth, so that the value a line or a message shows is the one rules
    // compare.
    Some((sum * 1000.0).round() / 1000.0 + 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_domains_follow_the_public_suffix_list() {
        assert_eq!(registered_domain("www.example.com"), Some("example.com"));
        assert_eq!(
            registered_domain("a.b.example.co.uk"),
            Some("example.co.uk")
        );
        assert_eq!(
            registered_domain("x.user.github.io"),
            Some("user.github.io")
        );
        assert_eq!(registered_domain("example.com"), Some("example.com"));
        assert_eq!(registered_domain("com"), None);
        assert_eq!(registered_domain("co.uk"), None);
        // A top-level domain the list does not know is a suffix of one label.
        assert_eq!(registered_domain("t.tunnel.test"), Some("tunnel.test"));
        assert_eq!(subdomain("a.b.example.co.uk"), "a.b");
        assert_eq!(subdomain("example.co.uk"), "");
        assert_eq!(subdomain("localhost"), "localhost");
    }

    #[test]
    fn labels_and_entropy() {
        assert_eq!(label_count(""), 0);
        assert_eq!(label_count("a.example.com"), 3);
        assert_eq!(longest_label("abc.de.fghij"), 5);
        assert_eq!(entropy(""), None);
        assert_eq!(entropy("..."), None);
        assert_eq!(entropy("aaaa"), Some(0.0));
        assert_eq!(entropy("ab.ab"), Some(1.0));
        assert_eq!(entropy("abcdefgh"), Some(3.0));
        // 32 distinct symbols once each: 5 bits.
        assert_eq!(entropy("abcdefghijklmnopqrstuvwxyz012345"), Some(5.0));
    }
}
