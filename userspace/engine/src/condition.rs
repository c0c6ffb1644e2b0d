//! Sigma detection conditions: `and`, `or`, `not`, parentheses, `1 of …`/`all of …` over a
//! selection name pattern or `them`, and selection names; precedence `not` > `and` > `or`.
//! Parsed into a tree of selection indices, so evaluation never looks names up.
//!
//! Floor 3 (detection and conditions): may use `pattern` (for `1 of sel*`).

use crate::pattern::Pattern;

/// A compiled condition over a rule's selections (indices into its selection list).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Cond {
    /// The selection at this index matches.
    Sel(usize),
    /// The inner condition does not hold.
    Not(Box<Cond>),
    /// Every inner condition holds.
    And(Vec<Cond>),
    /// Some inner condition holds.
    Or(Vec<Cond>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    Open,
    Close,
    Word(&'a str),
}

impl Tok<'_> {
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
    }
}

fn tokenize(text: &str) -> Result<Vec<Tok<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        match c {
            c if c.is_whitespace() => rest = &rest[c.len_utf8()..],
            '(' => {
                out.push(Tok::Open);
                rest = &rest[1..];
            }
            ')' => {
                out.push(Tok::Close);
                rest = &rest[1..];
            }
            '|' => return Err("aggregations ('|' in a condition) are not supported".into()),
            c if is_word_char(c) => {
                let end = rest.find(|c| !is_word_char(c)).unwrap_or(rest.len());
                out.push(Tok::Word(&rest[..end]));
                rest = &rest[end..];
            }
            c => return Err(format!("unexpected character '{c}' in condition")),
        }
    }
    Ok(out)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '*' | '?')
}

/// Parses `text`, resolving names against `selections` (in definition order).
pub(crate) fn parse(text: &str, selections: &[&str]) -> Result<Cond, String> {
    let toks = tokenize(text)?;
    if toks.is_empty() {
        return Err("the condition is empty".into());
    }
    let mut p = Parser {
        toks,
        pos: 0,
        names: selections,
    };
    let cond = p.or()?;
    match p.toks.get(p.pos) {
        None => Ok(cond),
        Some(Tok::Close) => Err("unexpected ')' in condition".into()),
        Some(Tok::Open) => Err("unexpected '(' in condition".into()),
        Some(Tok::Word(w)) => Err(format!("unexpected '{w}' in condition")),
    }
}

struct Parser<'a> {
    toks: Vec<Tok<'a>>,
    pos: usize,
    names: &'a [&'a str],
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.pos).copied()
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let hit = self.peek().is_some_and(|t| t.is_kw(kw));
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn or(&mut self) -> Result<Cond, String> {
        let mut terms = vec![self.and()?];
        while self.eat_kw("or") {
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Cond::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Cond, String> {
        let mut terms = vec![self.not()?];
        while self.eat_kw("and") {
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Cond::And(terms)
        })
    }

    fn not(&mut self) -> Result<Cond, String> {
        if self.eat_kw("not") {
            Ok(Cond::Not(Box::new(self.not()?)))
        } else {
            self.primary()
        }
    }

    fn primary(&mut self) -> Result<Cond, String> {
        let Some(tok) = self.peek() else {
            return Err("the condition ends too early".into());
        };
        self.pos += 1;
        match tok {
            Tok::Open => {
                let inner = self.or()?;
                if self.peek() != Some(Tok::Close) {
                    return Err("missing ')' in condition".into());
                }
                self.pos += 1;
                Ok(inner)
            }
            Tok::Close => Err("unexpected ')' in condition".into()),
            Tok::Word(w) if self.peek().is_some_and(|t| t.is_kw("of")) => {
                self.pos += 1;
                self.quantifier(w)
            }
            Tok::Word(w) => {
                if ["and", "or", "of", "them"]
                    .iter()
                    .any(|kw| w.eq_ignore_ascii_case(kw))
                {
                    return Err(format!("unexpected '{w}' in condition"));
                }
                if w.contains(['*', '?']) {
                    return Err(format!(
                        "the pattern '{w}' is only allowed after '1 of' or 'all of'"
                    ));
                }
                self.names
                    .iter()
                    .position(|n| *n == w)
                    .map(Cond::Sel)
                    .ok_or_else(|| format!("the condition names an undefined selection '{w}'"))
            }
        }
    }

    /// `1 of X` / `all of X`, with `of` already consumed.
    fn quantifier(&mut self, count: &str) -> Result<Cond, String> {
        let all = if count == "1" {
            false
        } else if count.eq_ignore_ascii_case("all") {
            true
        } else {
            return Err(format!(
                "only '1 of' and 'all of' are supported, not '{count} of'"
            ));
        };
        let Some(Tok::Word(target)) = self.peek() else {
            return Err(format!(
                "'{count} of' must be followed by a selection name, a pattern or 'them'"
            ));
        };
        self.pos += 1;
        let picked: Vec<Cond> = if target.eq_ignore_ascii_case("them") {
            // Sigma: `them` leaves out selections whose name starts with an underscore.
            (0..self.names.len())
                .filter(|&i| !self.names[i].starts_with('_'))
                .map(Cond::Sel)
                .collect()
        } else {
            let pat = Pattern::glob(target, true);
            (0..self.names.len())
                .filter(|&i| pat.matches(self.names[i]))
                .map(Cond::Sel)
                .collect()
        };
        match picked.len() {
            0 => Err(format!("'{count} of {target}' matches no selection")),
            1 => Ok(picked.into_iter().next().expect("one")),
            _ if all => Ok(Cond::And(picked)),
            _ => Ok(Cond::Or(picked)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Cond::*;

    const NAMES: &[&str] = &["sel_a", "sel_b", "filter", "_hidden"];

    fn p(text: &str) -> Result<Cond, String> {
        parse(text, NAMES)
    }

    #[test]
    fn precedence_not_over_and_over_or() {
        assert_eq!(
            p("sel_a or sel_b and not filter").unwrap(),
            Or(vec![Sel(0), And(vec![Sel(1), Not(Box::new(Sel(2)))])])
        );
        assert_eq!(
            p("(sel_a or sel_b) and not filter").unwrap(),
            And(vec![Or(vec![Sel(0), Sel(1)]), Not(Box::new(Sel(2)))])
        );
        assert_eq!(
            p("not not sel_a").unwrap(),
            Not(Box::new(Not(Box::new(Sel(0)))))
        );
        assert_eq!(p("sel_a AND sel_b").unwrap(), And(vec![Sel(0), Sel(1)]));
    }

    #[test]
    fn quantifiers() {
        assert_eq!(p("1 of sel_*").unwrap(), Or(vec![Sel(0), Sel(1)]));
        assert_eq!(p("all of sel_*").unwrap(), And(vec![Sel(0), Sel(1)]));
        assert_eq!(p("1 of them").unwrap(), Or(vec![Sel(0), Sel(1), Sel(2)]));
        assert_eq!(p("all of them").unwrap(), And(vec![Sel(0), Sel(1), Sel(2)]));
        assert_eq!(p("1 of filt*").unwrap(), Sel(2));
        assert_eq!(
            p("all of sel_* and not 1 of filter").unwrap(),
            And(vec![And(vec![Sel(0), Sel(1)]), Not(Box::new(Sel(2)))])
        );
        assert_eq!(p("1 of _hid*").unwrap(), Sel(3));
    }

    #[test]
    fn refusals() {
        let cases: &[(&str, &str)] = &[
            (
                "sel_c",
                "the condition names an undefined selection 'sel_c'",
            ),
            ("sel_a and", "the condition ends too early"),
            ("(sel_a", "missing ')' in condition"),
            ("sel_a)", "unexpected ')' in condition"),
            ("sel_a sel_b", "unexpected 'sel_b' in condition"),
            (
                "2 of sel_*",
                "only '1 of' and 'all of' are supported, not '2 of'",
            ),
            ("1 of x*", "'1 of x*' matches no selection"),
            (
                "1 of",
                "'1 of' must be followed by a selection name, a pattern or 'them'",
            ),
            (
                "sel_*",
                "the pattern 'sel_*' is only allowed after '1 of' or 'all of'",
            ),
            (
                "sel_a | count() > 5",
                "aggregations ('|' in a condition) are not supported",
            ),
            ("sel_a & sel_b", "unexpected character '&' in condition"),
            ("", "the condition is empty"),
            ("or sel_a", "unexpected 'or' in condition"),
        ];
        for (text, want) in cases {
            assert_eq!(p(text).unwrap_err(), *want, "{text:?}");
        }
    }
}
