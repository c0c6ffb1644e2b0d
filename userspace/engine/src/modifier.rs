//! Sigma value modifiers (`Field|contains|all: values`), in one place: [`Modifier`] names every
//! modifier the engine knows, says which combine, and transforms a value; [`Modifiers`] is the
//! chain written on one field, checked once, and turns each of the field's values into the
//! [`Test`]s the matcher runs.
//!
//! Value transformations (`windash` and the encodings) apply in the order written; the anchor
//! (`contains`, `startswith`, `endswith`) applies last. Base64 text is matched
//! case-sensitively: its letters' case is data.
//!
//! To add a modifier: a variant, its name in [`NAMES`], its [`Kind`] (which says what it
//! combines with), and, for a transformation, its arm in [`Modifier::transform`].
//!
//! Floor 2 (patterns and modifiers): may use `pattern` and nothing above it.

use std::net::IpAddr;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use ipnet::IpNet;
use regex::{Regex, RegexBuilder};

use crate::pattern::{Pattern, Tok, parse_wildcards};

/// A Sigma modifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Modifier {
    Contains,
    StartsWith,
    EndsWith,
    /// Every word-leading `-` or `/` may be any dash (see [`windash_variants`]).
    Windash,
    /// Case-sensitive matching.
    Cased,
    Base64,
    /// The parts of the Base64 encoding that do not depend on the value's offset.
    Base64Offset,
    /// UTF-16 little-endian (`utf16le`, `wide`).
    Utf16Le,
    /// UTF-16 big-endian.
    Utf16Be,
    /// UTF-16 little-endian after a byte order mark.
    Utf16,
    /// Every value must match (instead of any).
    All,
    /// The value is a regular expression.
    Re,
    /// `re` flags: case-insensitive, multi-line, dot matches new lines.
    ReI,
    ReM,
    ReS,
    /// The field is present (`true`) or absent (`false`).
    Exists,
    /// The value is a network (`10.0.0.0/8`, `2001:db8::/32`, or one address): the field's
    /// address must lie in it.
    Cidr,
    /// Numeric comparisons: the field's value, a number, is greater than (or equal to), or
    /// less than (or equal to), the rule's.
    Gt,
    Gte,
    Lt,
    Lte,
}

use Modifier::*;

/// Every modifier name a rule may write. The order is the order in which a conflict with `re`
/// is reported.
pub(crate) const NAMES: &[(&str, Modifier)] = &[
    ("contains", Contains),
    ("startswith", StartsWith),
    ("endswith", EndsWith),
    ("windash", Windash),
    ("cased", Cased),
    ("base64", Base64),
    ("base64offset", Base64Offset),
    ("utf16le", Utf16Le),
    ("utf16be", Utf16Be),
    ("utf16", Utf16),
    ("wide", Utf16Le),
    ("all", All),
    ("re", Re),
    ("i", ReI),
    ("m", ReM),
    ("s", ReS),
    ("exists", Exists),
    ("cidr", Cidr),
    ("gt", Gt),
    ("gte", Gte),
    ("lt", Lt),
    ("lte", Lte),
];

/// Sigma modifiers known but not supported yet: refused as such, not as unknown.
const UNSUPPORTED: &[&str] = &[
    "expand", "fieldref", "neq", "minute", "hour", "day", "week", "month", "year",
];

/// What a modifier does, which decides what it combines with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Where the value sits in the field: at most one.
    Anchor,
    /// Rewrites the text before any encoding.
    Windash,
    /// Encodes text as UTF-16 bytes: at most one, and a Base64 modifier must follow.
    Utf16,
    /// Encodes bytes as Base64 text: at most one.
    Base64,
    /// Case-sensitive matching.
    Cased,
    /// A regular expression instead of a pattern: no anchor, transformation or `cased`.
    Regex,
    /// A flag of `re`, only after it.
    RegexFlag,
    /// How several values combine.
    All,
    /// Presence alone: nothing else.
    Exists,
    /// A network: nothing else but `all`.
    Cidr,
    /// A numeric comparison: nothing else.
    Compare,
}

impl Modifier {
    /// The modifier a rule means by `name`, or why there is none.
    fn parse(name: &str, field: &str) -> Result<Modifier, String> {
        if let Some(&(_, m)) = NAMES.iter().find(|(n, _)| *n == name) {
            return Ok(m);
        }
        Err(if UNSUPPORTED.contains(&name) {
            format!("modifier '{name}' on field '{field}' is not supported")
        } else if name.is_empty() {
            format!("empty modifier on field '{field}'")
        } else {
            format!("unknown modifier '{name}' on field '{field}'")
        })
    }

    pub(crate) fn kind(self) -> Kind {
        match self {
            Contains | StartsWith | EndsWith => Kind::Anchor,
            Windash => Kind::Windash,
            Utf16Le | Utf16Be | Utf16 => Kind::Utf16,
            Base64 | Base64Offset => Kind::Base64,
            Cased => Kind::Cased,
            Re => Kind::Regex,
            ReI | ReM | ReS => Kind::RegexFlag,
            All => Kind::All,
            Exists => Kind::Exists,
            Cidr => Kind::Cidr,
            Gt | Gte | Lt | Lte => Kind::Compare,
        }
    }

    /// Whether the modifier rewrites the value (in the order written).
    fn is_transform(self) -> bool {
        matches!(self.kind(), Kind::Windash | Kind::Utf16 | Kind::Base64)
    }

    /// Whether it may stand beside `re` (which matches the value as it is).
    fn combines_with_re(self) -> bool {
        !matches!(
            self.kind(),
            Kind::Anchor | Kind::Windash | Kind::Utf16 | Kind::Base64 | Kind::Cased
        )
    }

    /// Applies this transformation (spelled `name`) to every variant of a value.
    fn transform(self, name: &str, variants: Vec<Stage>) -> Result<Vec<Stage>, String> {
        let mut out = Vec::with_capacity(variants.len());
        for v in variants {
            match (self.kind(), v) {
                (Kind::Windash, Stage::Text(toks)) => {
                    out.extend(windash_variants(&toks)?.into_iter().map(Stage::Text))
                }
                (Kind::Utf16, Stage::Text(toks)) => {
                    let text = literal_text(&toks, name)?;
                    out.push(Stage::Bytes(match self {
                        Utf16Le => utf16le(&text),
                        Utf16Be => utf16be(&text),
                        _ => [0xFF, 0xFE].into_iter().chain(utf16le(&text)).collect(),
                    }));
                }
                (Kind::Base64, stage) => {
                    let bytes = match stage {
                        Stage::Bytes(b) => b,
                        Stage::Text(toks) => literal_text(&toks, name)?.into_bytes(),
                    };
                    let encoded: Vec<String> = if self == Base64 {
                        vec![STANDARD.encode(&bytes)]
                    } else {
                        base64_offsets(&bytes).into()
                    };
                    for e in encoded {
                        if e.is_empty() {
                            return Err(format!(
                                "the value is too short for modifier '{name}' (an encoded variant is empty)"
                            ));
                        }
                        out.push(Stage::Text(e.chars().map(Tok::Char).collect()));
                    }
                }
                // The chain's checks refuse the rest: windash after an encoding, UTF-16 twice.
                (kind, _) => unreachable!("{kind:?} on bytes, or not a transformation"),
            }
        }
        Ok(out)
    }
}

/// One check of a field's value: what a rule value becomes once its modifiers are applied.
#[derive(Clone, Debug)]
pub(crate) enum Test {
    /// The field is absent or empty (`null`, `''`, `exists: false`).
    Absent,
    /// The field has a value (`exists: true`).
    Present,
    /// A string pattern.
    Pattern(Pattern),
    /// A regular expression (`re`), matched against the value as it is.
    Regex(Regex),
    /// A network (`cidr`): the value, an address, lies in it.
    Cidr(IpNet),
    /// A numeric comparison (`gt`, `gte`, `lt`, `lte`) with the rule's number: the field's
    /// value (a number, or text that reads as one) on the left.
    Compare(Compare, f64),
}

/// How a numeric comparison compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compare {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Compare {
    /// Whether `value` compares so with `limit`.
    pub(crate) fn holds(self, value: f64, limit: f64) -> bool {
        match self {
            Compare::Gt => value > limit,
            Compare::Gte => value >= limit,
            Compare::Lt => value < limit,
            Compare::Lte => value <= limit,
        }
    }
}

/// A rule value, as YAML gave it.
pub(crate) enum RuleValue {
    /// `null`.
    Null,
    /// A string (with wildcards) or an integer or boolean (literal text).
    Text { text: String, wildcards: bool },
    /// A floating-point number (only numeric comparisons take one).
    Float(f64),
}

/// The modifiers written on one field, checked.
pub(crate) struct Modifiers<'k> {
    field: &'k str,
    /// As written, with their names.
    written: Vec<(&'k str, Modifier)>,
}

impl<'k> Modifiers<'k> {
    /// Reads the modifiers `names` of `field` (the parts of `Field|mod|mod` after the field),
    /// refusing unknown ones and those that do not combine.
    pub(crate) fn parse(
        field: &'k str,
        names: impl Iterator<Item = &'k str>,
    ) -> Result<Modifiers<'k>, String> {
        let mut m = Modifiers {
            field,
            written: Vec::new(),
        };
        for name in names {
            if m.written.iter().any(|(n, _)| *n == name) {
                return Err(format!("duplicate modifier '{name}' on field '{field}'"));
            }
            let modifier = Modifier::parse(name, field)?;
            let conflict = |kind: Kind| m.written.iter().find(|(_, p)| p.kind() == kind);
            match modifier.kind() {
                // At most one of each: one anchor, one UTF-16 encoding, one Base64 encoding.
                Kind::Anchor | Kind::Utf16 | Kind::Base64 => {
                    if let Some((prev, _)) = conflict(modifier.kind()) {
                        return Err(format!(
                            "modifiers '{prev}' and '{name}' on field '{field}' conflict"
                        ));
                    }
                }
                Kind::Windash if m.transforms().next().is_some() => {
                    return Err("modifier 'windash' must come before the encoding modifiers".into());
                }
                Kind::RegexFlag if !m.has(Re) => {
                    return Err(format!(
                        "modifier '{name}' on field '{field}' is only valid after 're'"
                    ));
                }
                _ => {}
            }
            m.written.push((name, modifier));
        }

        if m.has(Cidr)
            && let Some((other, _)) = m.written.iter().find(|(_, x)| !matches!(x, Cidr | All))
        {
            return Err(format!(
                "modifier 'cidr' on field '{field}' cannot be combined with '{other}'"
            ));
        }
        for lone in [Kind::Exists, Kind::Compare] {
            let Some((name, _)) = m.written.iter().find(|(_, x)| x.kind() == lone) else {
                continue;
            };
            if let Some((other, _)) = m.written.iter().find(|(n, _)| n != name) {
                return Err(format!(
                    "modifier '{name}' on field '{field}' cannot be combined with '{other}'"
                ));
            }
            return Ok(m);
        }
        if m.has(Re)
            && let Some((other, _)) = NAMES
                .iter()
                .find(|(n, x)| !x.combines_with_re() && m.written.iter().any(|(w, _)| w == n))
        {
            return Err(format!(
                "modifier 're' on field '{field}' cannot be combined with '{other}'"
            ));
        }
        if m.has(Base64Offset) && m.anchor() != Some(Contains) {
            return Err(format!(
                "modifier 'base64offset' on field '{field}' needs 'contains' (the encoded value sits inside a longer Base64 string)"
            ));
        }
        if let Some((last, name)) = m.transforms().last()
            && last.kind() == Kind::Utf16
        {
            return Err(format!(
                "modifier '{name}' on field '{field}' must be followed by 'base64' or 'base64offset': event fields are text, not UTF-16 bytes"
            ));
        }
        Ok(m)
    }

    /// Whether `modifier` is written.
    pub(crate) fn has(&self, modifier: Modifier) -> bool {
        self.written.iter().any(|(_, m)| *m == modifier)
    }

    fn anchor(&self) -> Option<Modifier> {
        self.written
            .iter()
            .map(|(_, m)| *m)
            .find(|m| m.kind() == Kind::Anchor)
    }

    /// The transformations, in the order written, with their names.
    fn transforms(&self) -> impl Iterator<Item = (Modifier, &'k str)> + '_ {
        self.written
            .iter()
            .filter(|(_, m)| m.is_transform())
            .map(|&(n, m)| (m, n))
    }

    /// The tests one value stands for: several when a transformation has variants
    /// (`windash`, `base64offset`), one of which must match.
    pub(crate) fn tests(&self, value: RuleValue) -> Result<Vec<Test>, String> {
        let field = self.field;
        if let Some(op) = self.compare() {
            let number = match &value {
                RuleValue::Float(x) => Some(*x),
                RuleValue::Text { text, .. } => text.trim().parse::<f64>().ok(),
                RuleValue::Null => None,
            };
            return match number {
                Some(x) if x.is_finite() => Ok(vec![Test::Compare(op, x)]),
                _ => Err(format!(
                    "a numeric comparison on field '{field}' needs a number"
                )),
            };
        }
        let (text, wildcards) = match value {
            RuleValue::Float(_) => {
                return Err(format!(
                    "bad value for field '{field}': floating-point numbers are only supported by 'gt', 'gte', 'lt' and 'lte'"
                ));
            }
            RuleValue::Null => {
                if let Some((name, _)) = self.written.iter().find(|(_, m)| *m != All) {
                    return Err(format!(
                        "a null value for field '{field}' cannot take modifier '{name}'"
                    ));
                }
                return Ok(vec![Test::Absent]);
            }
            RuleValue::Text { text, wildcards } => (text, wildcards),
        };
        if self.has(Cidr) {
            let net = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "bad value for field '{field}': '{text}' is not a network for 'cidr' (like 10.0.0.0/8 or 2001:db8::/32)"
                    )
                })?;
            return Ok(vec![Test::Cidr(net.trunc())]);
        }
        if self.has(Re) {
            let re = RegexBuilder::new(&text)
                .case_insensitive(self.has(ReI))
                .multi_line(self.has(ReM))
                .dot_matches_new_line(self.has(ReS))
                .build()
                .map_err(|e| {
                    let msg = e.to_string();
                    let last = msg.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
                    let last = last.trim().trim_start_matches("error: ");
                    format!("bad value for field '{field}': invalid regular expression: {last}")
                })?;
            return Ok(vec![Test::Regex(re)]);
        }
        let toks = if wildcards {
            parse_wildcards(&text)
        } else {
            text.chars().map(Tok::Char).collect()
        };
        let anchor = self.anchor();
        if toks.is_empty() && anchor.is_none() && self.transforms().next().is_none() {
            // '' means "empty", which the engine does not tell from absent.
            return Ok(vec![Test::Absent]);
        }
        let mut variants = vec![Stage::Text(toks)];
        for (t, name) in self.transforms() {
            variants = t.transform(name, variants)?;
        }
        let cased = self.has(Cased) || self.has(Base64) || self.has(Base64Offset);
        Ok(variants
            .into_iter()
            .map(|v| {
                let Stage::Text(mut toks) = v else {
                    unreachable!("a UTF-16 modifier is always followed by a Base64 one");
                };
                match anchor {
                    Some(Contains) => {
                        toks.insert(0, Tok::Star);
                        toks.push(Tok::Star);
                    }
                    Some(StartsWith) => toks.push(Tok::Star),
                    Some(EndsWith) => toks.insert(0, Tok::Star),
                    _ => {}
                }
                Test::Pattern(Pattern::new(&toks, cased))
            })
            .collect())
    }

    /// The numeric comparison written, if any.
    fn compare(&self) -> Option<Compare> {
        self.written.iter().find_map(|(_, m)| match m {
            Gt => Some(Compare::Gt),
            Gte => Some(Compare::Gte),
            Lt => Some(Compare::Lt),
            Lte => Some(Compare::Lte),
            _ => None,
        })
    }

    /// Whether every value must match (`all`) rather than any.
    pub(crate) fn all(&self) -> bool {
        self.has(All)
    }
}

/// A value between transformations: text with wildcards, or bytes (after a UTF-16 encoding).
enum Stage {
    Text(Vec<Tok>),
    Bytes(Vec<u8>),
}

/// The literal characters of `toks`; a wildcard cannot be encoded by modifier `name`.
fn literal_text(toks: &[Tok], name: &str) -> Result<String, String> {
    toks.iter()
        .map(|t| match t {
            Tok::Char(c) => Some(*c),
            _ => None,
        })
        .collect::<Option<String>>()
        .ok_or_else(|| format!("modifier '{name}' cannot encode a value with wildcards (* or ?)"))
}

/// Every character Sigma's `windash` modifier lets a parameter's leading dash be.
const WINDASH_CHARS: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

/// At most this many dashes are expanded by `windash` (5^4 = 625 variants).
const WINDASH_MAX_POSITIONS: usize = 4;

/// Sigma's `windash`: every `-` or `/` that starts a word (the regular expression `\B[-/]\b`:
/// not preceded by a word character, followed by one) may also be any other of
/// [`WINDASH_CHARS`]. Returns every variant, the original first.
fn windash_variants(toks: &[Tok]) -> Result<Vec<Vec<Tok>>, String> {
    let is_word =
        |t: Option<&Tok>| matches!(t, Some(Tok::Char(c)) if c.is_alphanumeric() || *c == '_');
    let positions: Vec<usize> = toks
        .iter()
        .enumerate()
        .filter(|&(i, t)| {
            matches!(t, Tok::Char('-' | '/'))
                && !is_word(i.checked_sub(1).and_then(|p| toks.get(p)))
                && is_word(toks.get(i + 1))
        })
        .map(|(i, _)| i)
        .collect();
    if positions.len() > WINDASH_MAX_POSITIONS {
        return Err(format!(
            "'windash' expands at most {WINDASH_MAX_POSITIONS} dashes in one value, this one has {}",
            positions.len()
        ));
    }
    let mut variants = vec![toks.to_vec()];
    for &pos in &positions {
        let mut next = Vec::with_capacity(variants.len() * WINDASH_CHARS.len());
        for v in &variants {
            let original = v[pos];
            next.push(v.clone());
            for &dash in &WINDASH_CHARS {
                if Tok::Char(dash) != original {
                    let mut w = v.clone();
                    w[pos] = Tok::Char(dash);
                    next.push(w);
                }
            }
        }
        variants = next;
    }
    Ok(variants)
}

/// Sigma's `base64offset`: the parts of the Base64 encoding of `data` that stay the same
/// whatever the value's offset inside a longer encoded string (0, 1 or 2 bytes after a
/// 3-byte boundary); the characters that depend on the neighbouring bytes are cut off.
fn base64_offsets(data: &[u8]) -> [String; 3] {
    const START: [usize; 3] = [0, 2, 3];
    // Characters to drop at the end, by (length + shift) mod 3.
    const END_CUT: [usize; 3] = [0, 3, 2];
    std::array::from_fn(|shift| {
        let mut shifted = vec![b' '; shift];
        shifted.extend_from_slice(data);
        let enc = STANDARD.encode(&shifted);
        let cut = END_CUT[(data.len() + shift) % 3];
        let end = enc.len().saturating_sub(cut).max(START[shift]);
        enc[START[shift]..end].to_owned()
    })
}

/// `text` in UTF-16, little-endian.
fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

/// `text` in UTF-16, big-endian.
fn utf16be(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windash_expands_word_leading_dashes_only() {
        let v = windash_variants(&parse_wildcards(" -enc a-b")).unwrap();
        assert_eq!(v.len(), 5);
        let strings: Vec<String> = v
            .iter()
            .map(|toks| {
                toks.iter()
                    .map(|t| match t {
                        Tok::Char(c) => *c,
                        _ => '*',
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            strings,
            [
                " -enc a-b",
                " /enc a-b",
                " \u{2013}enc a-b",
                " \u{2014}enc a-b",
                " \u{2015}enc a-b"
            ]
        );
        assert_eq!(windash_variants(&parse_wildcards("/x")).unwrap().len(), 5);
        assert_eq!(windash_variants(&parse_wildcards("- x")).unwrap().len(), 1);
        let e = windash_variants(&parse_wildcards("-a -b -c -d -e")).unwrap_err();
        assert!(e.contains("at most 4"), "{e}");
    }

    #[test]
    fn base64_and_its_offsets() {
        let base64 = |b: &[u8]| STANDARD.encode(b);
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        // Each offset variant is found in the encoding of the value at that offset.
        for value in ["ngrok", "ngrok http 80", "tcp", "ab"] {
            let offsets = base64_offsets(value.as_bytes());
            for prefix in ["", "x", "xy", "xyz", "wxyz", "vwxyz"] {
                for suffix in ["", "!", "!!", "!!!"] {
                    let enc = base64(format!("{prefix}{value}{suffix}").as_bytes());
                    let shift = prefix.len() % 3;
                    assert!(
                        enc.contains(&offsets[shift]),
                        "{value:?} at {prefix:?}: {enc} lacks {}",
                        offsets[shift]
                    );
                }
            }
        }
        assert_eq!(base64_offsets(b"ngrok"), ["bmdyb2", "5ncm9r", "uZ3Jva"]);
        assert_eq!(utf16le("ab"), [b'a', 0, b'b', 0]);
        assert_eq!(utf16be("ab"), [0, b'a', 0, b'b']);
    }

    #[test]
    fn every_name_parses_and_kinds_decide_what_combines() {
        for &(name, m) in NAMES {
            assert_eq!(Modifier::parse(name, "F"), Ok(m));
        }
        assert_eq!(
            Modifier::parse("neq", "F").unwrap_err(),
            "modifier 'neq' on field 'F' is not supported"
        );
        assert_eq!(
            Modifier::parse("nope", "F").unwrap_err(),
            "unknown modifier 'nope' on field 'F'"
        );
        let chain = |s: &'static str| Modifiers::parse("F", s.split('|')).map(|_| ());
        assert_eq!(
            chain("gte|contains").unwrap_err(),
            "modifier 'gte' on field 'F' cannot be combined with 'contains'"
        );
        assert_eq!(
            chain("all|lt").unwrap_err(),
            "modifier 'lt' on field 'F' cannot be combined with 'all'"
        );
        assert!(chain("windash|base64offset|contains").is_ok());
        assert!(chain("utf16le|base64").is_ok());
        assert!(chain("re|i|m|s|all").is_ok());
        assert_eq!(
            chain("cased|contains|re").unwrap_err(),
            "modifier 're' on field 'F' cannot be combined with 'contains'"
        );
        assert_eq!(
            chain("base64|windash").unwrap_err(),
            "modifier 'windash' must come before the encoding modifiers"
        );
        assert_eq!(
            chain("contains|contains").unwrap_err(),
            "duplicate modifier 'contains' on field 'F'"
        );
    }
}
