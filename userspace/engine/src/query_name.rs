//! What the shape of a DNS query name says, for rules that look for data hidden in names (DNS
//! tunnels): the registered domain (the public suffix list's registrable domain, e.g.
//! `example.co.uk` for `a.b.example.co.uk`), the number of labels, the length of the longest
//! label and the Shannon entropy of its bytes (the label a tunnel fills with data: a name that
//! carries a digest or an identifier among plain words is measured on the digest alone, and a
//! hex digest stays under 4 bits a byte). They are computed from the
//! name when a rule reads them, without allocating, the same live, on Windows and in `replay`
//! (the lines do not carry them: they follow from `query`).
//!
//! Names come as the DNS decoder writes them (`dns.rs`): a byte that is not printable in a
//! name is `\DDD` (decimal), a dot inside a label `\.`. Lengths and entropy count the bytes
//! on the wire, escapes decoded: a tunnel that packs 8-bit data into labels (iodine's Base128)
//! shows its real entropy, up to 8 bits a byte.
//!
//! The suffix list is the `psl` crate's, built into the binary.
//!
//! Floor 1 (events, fields and lines): uses nothing of the engine.

/// The registered domain of `name` (lower case, no trailing dot): the public suffix plus one
/// label. `None` when the name is a public suffix itself (`com`, `co.uk`, a single label).
pub(crate) fn registered_domain(name: &str) -> Option<&str> {
    psl::domain_str(name)
}

/// The bytes of a name as on the wire, escapes decoded; `None` between two labels.
fn wire_bytes(name: &str) -> impl Iterator<Item = Option<u8>> + '_ {
    let b = name.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let c = *b.get(i)?;
        if c == b'.' {
            i += 1;
            return Some(None);
        }
        if c == b'\\' {
            let digits = b
                .get(i + 1..i + 4)
                .filter(|d| d.iter().all(u8::is_ascii_digit));
            if let Some(d) = digits {
                i += 4;
                let v = d.iter().fold(0u32, |v, x| v * 10 + u32::from(x - b'0'));
                return Some(Some(v.min(255) as u8));
            }
            if let Some(&next) = b.get(i + 1) {
                i += 2;
                return Some(Some(next));
            }
        }
        i += 1;
        Some(Some(c))
    })
}

/// How many labels `name` has (0 for the root, the empty name).
pub(crate) fn label_count(name: &str) -> usize {
    if name.is_empty() {
        0
    } else {
        1 + wire_bytes(name).filter(Option::is_none).count()
    }
}

/// Where the first longest label of `name` starts (a byte offset in `name`) and how many
/// bytes it has on the wire.
fn longest(name: &str) -> (usize, usize) {
    let (mut best, mut best_len) = (0, 0);
    let mut start = 0;
    for label in labels(name) {
        let len = wire_bytes(label).count();
        if len > best_len {
            (best, best_len) = (start, len);
        }
        start += label.len() + 1;
    }
    (best, best_len)
}

/// The labels of `name` as written (an escaped dot does not end one).
fn labels(name: &str) -> impl Iterator<Item = &str> {
    let b = name.as_bytes();
    let mut start = 0;
    let mut i = 0;
    std::iter::from_fn(move || {
        if start > b.len() {
            return None;
        }
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'.' => {
                    let label = &name[start..i];
                    i += 1;
                    start = i;
                    return Some(label);
                }
                _ => i += 1,
            }
        }
        let label = &name[start.min(b.len())..];
        start = b.len() + 1;
        Some(label)
    })
}

/// The length in bytes of the longest label of `name`.
pub(crate) fn longest_label(name: &str) -> usize {
    longest(name).1
}

/// The Shannon entropy of the bytes of the longest label of `name`, in bits per byte: 0 for
/// one repeated byte, up to 8. `None` for the empty name.
pub(crate) fn entropy(name: &str) -> Option<f64> {
    let (start, len) = longest(name);
    let label = &name[start..];
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in wire_bytes(label).take(len).flatten() {
        counts[usize::from(b)] += 1;
        n += 1;
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
        assert_eq!(entropy("abcdefgh.example.com"), Some(3.0));
        // 32 distinct symbols once each: 5 bits; the words around it do not count.
        assert_eq!(
            entropy("abcdefghijklmnopqrstuvwxyz012345.malware.hash.example.com"),
            Some(5.0)
        );
    }

    #[test]
    fn escapes_count_as_the_bytes_they_stand_for() {
        // Four bytes, two of them 8-bit, and an escaped dot inside the first label.
        let name = r"a\228\.b\255.t.example.com";
        assert_eq!(label_count(name), 4);
        assert_eq!(longest_label(r"a\228\.b\255.t"), 5);
        assert_eq!(entropy(r"\001\002\003\004.t"), Some(2.0));
        assert_eq!(registered_domain(name), Some("example.com"));
        // The longest label, escapes decoded: a, 228, '.', b, 255.
        assert_eq!(entropy(r"a\228\.b\255.t"), Some(2.322));
        // A backslash at the end, or before fewer than three digits, is itself.
        assert_eq!(longest_label(r"ab\"), 3);
        assert_eq!(longest_label(r"a\12"), 3);
    }
}
