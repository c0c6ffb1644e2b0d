//! String patterns for rule values and allowlists. A Sigma string (wildcards `*` and `?`,
//! escapes `\*`, `\?`, `\\`) is compiled into the cheapest check with the same meaning:
//! equality, prefix, suffix, substring, prefix-and-suffix, "anything", or a general glob.
//!
//! Case-insensitive patterns hold lower-cased literals. The caller hands each value in one of
//! two prepared forms: an ASCII value as it is (compared with ASCII case folding, without
//! allocating), or a non-ASCII value lower-cased once with [`lowercase_into`].
//!
//! Floor 2 (patterns and modifiers): uses nothing of the engine.

/// One element of a Sigma string value after escapes are resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tok {
    /// A literal character.
    Char(char),
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `?`: exactly one character.
    One,
}

/// Splits a Sigma string into literal characters and wildcards. `\*`, `\?` and `\\` stand for
/// `*`, `?` and `\`; a backslash before anything else (or at the end) is a plain backslash.
pub(crate) fn parse_wildcards(s: &str) -> Vec<Tok> {
    let mut out = Vec::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::One),
            '\\' => match chars.peek() {
                Some(&next @ ('*' | '?' | '\\')) => {
                    chars.next();
                    out.push(Tok::Char(next));
                }
                _ => out.push(Tok::Char('\\')),
            },
            c => out.push(Tok::Char(c)),
        }
    }
    out
}

/// Appends `s` lower-cased character by character (the same folding as patterns get).
pub(crate) fn lowercase_into(s: &str, out: &mut String) {
    if s.is_ascii() {
        let start = out.len();
        out.push_str(s);
        out[start..].make_ascii_lowercase();
    } else {
        out.extend(s.chars().flat_map(char::to_lowercase));
    }
}

/// An element of a general glob, over UTF-8 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GlobTok {
    Byte(u8),
    One,
    Star,
}

/// What a pattern checks, cheapest form first.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    /// `*` (or several): any non-empty value.
    Any,
    /// No wildcard.
    Exact(Box<str>),
    /// `abc*`.
    Prefix(Box<str>),
    /// `*abc`.
    Suffix(Box<str>),
    /// `*abc*`.
    Contains(Box<str>),
    /// `abc*xyz`: starts with the first, ends with the second, without overlap.
    PrefixSuffix(Box<str>, Box<str>),
    /// Anything else.
    Glob(Box<[GlobTok]>),
}

/// A compiled Sigma string pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    shape: Shape,
    cased: bool,
}

impl Pattern {
    /// Compiles tokens; unless `cased`, literals are lower-cased.
    pub(crate) fn new(toks: &[Tok], cased: bool) -> Pattern {
        let fold = |c: char, out: &mut String| {
            if cased {
                out.push(c)
            } else {
                out.extend(c.to_lowercase())
            }
        };
        let shape = if toks.contains(&Tok::One) {
            Self::glob_shape(toks, fold)
        } else {
            // Literal runs between stars; consecutive stars are one star.
            let mut runs: Vec<String> = vec![String::new()];
            for t in toks {
                match t {
                    Tok::Char(c) => fold(*c, runs.last_mut().expect("never empty")),
                    Tok::Star => {
                        if !runs.last().expect("never empty").is_empty() {
                            runs.push(String::new());
                        }
                    }
                    Tok::One => unreachable!(),
                }
            }
            let lead = toks.first() == Some(&Tok::Star);
            let trail = toks.last() == Some(&Tok::Star);
            let lits: Vec<&String> = runs.iter().filter(|r| !r.is_empty()).collect();
            let b = |s: &String| s.clone().into_boxed_str();
            match (lits.as_slice(), lead, trail) {
                ([], false, false) => Shape::Exact("".into()),
                ([], _, _) => Shape::Any,
                ([one], false, false) => Shape::Exact(b(one)),
                ([one], false, true) => Shape::Prefix(b(one)),
                ([one], true, false) => Shape::Suffix(b(one)),
                ([one], true, true) => Shape::Contains(b(one)),
                ([pre, suf], false, false) => Shape::PrefixSuffix(b(pre), b(suf)),
                _ => Self::glob_shape(toks, fold),
            }
        };
        Pattern { shape, cased }
    }

    fn glob_shape(toks: &[Tok], fold: impl Fn(char, &mut String)) -> Shape {
        let mut out = Vec::with_capacity(toks.len());
        let mut buf = String::new();
        for t in toks {
            match t {
                Tok::Char(c) => {
                    buf.clear();
                    fold(*c, &mut buf);
                    out.extend(buf.bytes().map(GlobTok::Byte));
                }
                Tok::One => out.push(GlobTok::One),
                Tok::Star => {
                    if out.last() != Some(&GlobTok::Star) {
                        out.push(GlobTok::Star)
                    }
                }
            }
        }
        Shape::Glob(out.into_boxed_slice())
    }

    /// Compiles a Sigma string (wildcards and escapes as in rules).
    pub(crate) fn glob(s: &str, cased: bool) -> Pattern {
        Pattern::new(&parse_wildcards(s), cased)
    }

    /// Whether the pattern matches any non-empty value (`*`): every event that has the field.
    pub(crate) fn matches_any_value(&self) -> bool {
        self.shape == Shape::Any
    }

    /// Whether matching is case-sensitive.
    pub(crate) fn cased(&self) -> bool {
        self.cased
    }

    /// Matches a prepared value: with `ascii_fold`, `hay` must be ASCII and is compared
    /// ignoring ASCII case; without it, `hay` is compared as it is (it must already be
    /// lower-cased when the pattern is case-insensitive).
    pub(crate) fn matches_prepared(&self, hay: &str, ascii_fold: bool) -> bool {
        let h = hay.as_bytes();
        match &self.shape {
            Shape::Any => !h.is_empty(),
            Shape::Exact(p) => eq(h, p.as_bytes(), ascii_fold),
            Shape::Prefix(p) => h.len() >= p.len() && eq(&h[..p.len()], p.as_bytes(), ascii_fold),
            Shape::Suffix(p) => {
                h.len() >= p.len() && eq(&h[h.len() - p.len()..], p.as_bytes(), ascii_fold)
            }
            Shape::Contains(p) => {
                if ascii_fold {
                    find_fold(h, p.as_bytes())
                } else {
                    hay.contains(&**p)
                }
            }
            Shape::PrefixSuffix(pre, suf) => {
                h.len() >= pre.len() + suf.len()
                    && eq(&h[..pre.len()], pre.as_bytes(), ascii_fold)
                    && eq(&h[h.len() - suf.len()..], suf.as_bytes(), ascii_fold)
            }
            Shape::Glob(toks) => glob_match(toks, h, ascii_fold),
        }
    }

    /// Matches any value, preparing it as needed (allocates only for a case-insensitive
    /// pattern and a non-ASCII value).
    pub(crate) fn matches(&self, value: &str) -> bool {
        if self.cased {
            self.matches_prepared(value, false)
        } else if value.is_ascii() {
            self.matches_prepared(value, true)
        } else {
            let mut lower = String::with_capacity(value.len());
            lowercase_into(value, &mut lower);
            self.matches_prepared(&lower, false)
        }
    }

    /// Bytes every matching value contains once lower-cased character by character, for the
    /// literal prefilter: the longest literal run of the pattern (lower-cased here when the
    /// pattern is cased, since the prefilter ignores case). `None` when the pattern has no
    /// literal (`*`, or only wildcards) or matches the empty value.
    pub(crate) fn prefilter_literal(&self) -> Option<Box<[u8]>> {
        let raw: &[u8] = match &self.shape {
            Shape::Any => return None,
            Shape::Exact(s) | Shape::Prefix(s) | Shape::Suffix(s) | Shape::Contains(s) => {
                s.as_bytes()
            }
            Shape::PrefixSuffix(a, b) => {
                if a.len() >= b.len() {
                    a.as_bytes()
                } else {
                    b.as_bytes()
                }
            }
            Shape::Glob(toks) => {
                let (mut best, mut start) = (0..0, None);
                for (i, t) in toks.iter().chain([&GlobTok::Star]).enumerate() {
                    match (t, start) {
                        (GlobTok::Byte(_), None) => start = Some(i),
                        (GlobTok::Byte(_), Some(_)) => {}
                        (_, Some(s)) => {
                            if i - s > best.len() {
                                best = s..i;
                            }
                            start = None;
                        }
                        (_, None) => {}
                    }
                }
                if best.is_empty() {
                    return None;
                }
                // A glob's bytes are whole characters (runs split only at wildcards).
                let bytes: Vec<u8> = toks[best]
                    .iter()
                    .map(|t| match t {
                        GlobTok::Byte(b) => *b,
                        _ => unreachable!("a literal run"),
                    })
                    .collect();
                return Some(self.fold_literal(&bytes));
            }
        };
        if raw.is_empty() {
            return None;
        }
        Some(self.fold_literal(raw))
    }

    /// `bytes` as the prefilter searches them: lower-cased (already so unless cased).
    fn fold_literal(&self, bytes: &[u8]) -> Box<[u8]> {
        if !self.cased {
            return bytes.into();
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                let mut out = String::with_capacity(s.len());
                lowercase_into(s, &mut out);
                out.into_bytes().into_boxed_slice()
            }
            Err(_) => bytes.to_ascii_lowercase().into_boxed_slice(),
        }
    }
}

fn eq(h: &[u8], p: &[u8], ascii_fold: bool) -> bool {
    if ascii_fold {
        h.len() == p.len() && h.iter().zip(p).all(|(a, b)| a.to_ascii_lowercase() == *b)
    } else {
        h == p
    }
}

/// Substring search ignoring ASCII case (`p` is lower case).
fn find_fold(h: &[u8], p: &[u8]) -> bool {
    let Some((&first, rest)) = p.split_first() else {
        return true;
    };
    if h.len() < p.len() {
        return false;
    }
    (0..=h.len() - p.len())
        .any(|i| h[i].to_ascii_lowercase() == first && eq(&h[i + 1..i + p.len()], rest, true))
}

/// Length of the UTF-8 character that starts with byte `b`.
fn char_len(b: u8) -> usize {
    match b {
        0xF0.. => 4,
        0xE0.. => 3,
        0xC0.. => 2,
        _ => 1,
    }
}

/// Glob matching with single-star backtracking: linear for one star, O(n·m) at worst.
fn glob_match(p: &[GlobTok], h: &[u8], ascii_fold: bool) -> bool {
    let (mut pi, mut hi) = (0, 0);
    // Where the last star was and where in `h` its match currently ends.
    let mut star: Option<(usize, usize)> = None;
    while hi < h.len() {
        if let Some(tok) = p.get(pi) {
            match *tok {
                GlobTok::Star => {
                    star = Some((pi, hi));
                    pi += 1;
                    continue;
                }
                GlobTok::One => {
                    pi += 1;
                    hi += char_len(h[hi]);
                    continue;
                }
                GlobTok::Byte(b) => {
                    let c = if ascii_fold {
                        h[hi].to_ascii_lowercase()
                    } else {
                        h[hi]
                    };
                    if c == b {
                        pi += 1;
                        hi += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, sh)) if sh < h.len() => {
                let next = sh + char_len(h[sh]);
                star = Some((sp, next));
                pi = sp + 1;
                hi = next;
            }
            _ => return false,
        }
    }
    p[pi..].iter().all(|t| *t == GlobTok::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(s: &str) -> Shape {
        Pattern::glob(s, false).shape
    }

    #[test]
    fn escapes_and_wildcards() {
        use Tok::*;
        assert_eq!(
            parse_wildcards(r"a*b?\*\?\\c\d\"),
            [
                Char('a'),
                Star,
                Char('b'),
                One,
                Char('*'),
                Char('?'),
                Char('\\'),
                Char('c'),
                Char('\\'),
                Char('d'),
                Char('\\')
            ]
        );
    }

    #[test]
    fn shapes_are_the_cheapest_form() {
        assert_eq!(shape("NGROK"), Shape::Exact("ngrok".into()));
        assert_eq!(shape("ab*"), Shape::Prefix("ab".into()));
        assert_eq!(shape("*ab"), Shape::Suffix("ab".into()));
        assert_eq!(shape("*ab*"), Shape::Contains("ab".into()));
        assert_eq!(shape("**ab***"), Shape::Contains("ab".into()));
        assert_eq!(
            shape("ngrok.*.tunnel.com"),
            Shape::PrefixSuffix("ngrok.".into(), ".tunnel.com".into())
        );
        assert_eq!(shape("*"), Shape::Any);
        assert_eq!(shape(""), Shape::Exact("".into()));
        assert_eq!(shape(r"a\*b"), Shape::Exact("a*b".into()));
        assert!(matches!(shape("a?b"), Shape::Glob(_)));
        assert!(matches!(shape("*a*b*"), Shape::Glob(_)));
    }

    #[test]
    fn case_insensitive_by_default_sensitive_when_cased() {
        let p = Pattern::glob("*.NGROK.io", false);
        assert!(p.matches("abc.ngrok.io"));
        assert!(p.matches("ABC.NGROK.IO"));
        assert!(!p.matches("ngrok.io"));
        let c = Pattern::glob("*.NGROK.io", true);
        assert!(c.matches("x.NGROK.io"));
        assert!(!c.matches("x.ngrok.io"));
        // Non-ASCII values are lower-cased before comparison.
        let u = Pattern::glob("*ÄRGER*", false);
        assert!(u.matches("c:\\users\\ärger\\x"));
        assert!(u.matches("C:\\USERS\\ÄRGER\\X"));
        assert!(!u.matches("C:\\USERS\\ARGER\\X"));
    }

    #[test]
    fn every_shape_matches_what_it_should() {
        let cases: &[(&str, &str, bool)] = &[
            ("ngrok", "NGROK", true),
            ("ngrok", "ngrokker", false),
            ("ngr*", "ngrok", true),
            ("ngr*", "ng", false),
            ("*rok", "ngrok", true),
            ("*rok", "ngrokx", false),
            ("*gro*", "ngrok", true),
            ("*gro*", "nGrOk", true),
            ("*gro*", "nrok", false),
            ("ngrok.*.tunnel.com", "ngrok.x.tunnel.com", true),
            ("ngrok.*.tunnel.com", "ngrok..tunnel.com", true),
            ("ngrok.*.tunnel.com", "ngrok.tunnel.com", false),
            ("ngrok.*.tunnel.com", "ngrok.x.tunnel.com.evil", false),
            ("*", "x", true),
            ("*", "", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a?c", "aäc", true),
            ("a?c", "abbc", false),
            ("*a*b*c", "xxaxxbxxc", true),
            ("*a*b*c", "xxaxxbxxcx", false),
            ("*a?b*", "zzaXbzz", true),
            ("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", true),
            ("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            (r"a\*b", "a*b", true),
            (r"a\*b", "axb", false),
            // Sigma: `\*` is a literal star, `\\*` a backslash then a wildcard.
            (r"c:\windows\*", r"C:\Windows\system32", false),
            (r"c:\windows\*", r"C:\Windows*", true),
            (r"c:\windows\\*", r"C:\Windows\system32", true),
            (r"c:\\windows\\*", r"C:\Windows\system32", true),
        ];
        for &(pat, value, want) in cases {
            assert_eq!(
                Pattern::glob(pat, false).matches(value),
                want,
                "{pat:?} on {value:?}"
            );
        }
    }

    #[test]
    fn prefilter_literals_are_the_longest_lowered_run() {
        let lit = |s: &str, cased: bool| {
            Pattern::glob(s, cased)
                .prefilter_literal()
                .map(|b| String::from_utf8(b.into_vec()).unwrap())
        };
        assert_eq!(lit("*NGROK*", false).as_deref(), Some("ngrok"));
        assert_eq!(lit("*NGROK*", true).as_deref(), Some("ngrok"));
        assert_eq!(lit("ab*cdef", false).as_deref(), Some("cdef"));
        assert_eq!(lit("abc*de", false).as_deref(), Some("abc"));
        assert_eq!(lit("*a?bcd*e*", false).as_deref(), Some("bcd"));
        assert_eq!(lit("*Ä?x", true).as_deref(), Some("ä"));
        assert_eq!(lit("*", false), None);
        assert_eq!(lit("?*?", false), None);
        assert_eq!(lit("", false), None);
    }
}
