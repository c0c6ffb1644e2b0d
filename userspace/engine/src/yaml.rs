//! YAML with line numbers: parses text into saphyr `MarkedYaml` documents and reads their nodes
//! as typed values, or fails with a `file:line: reason` [`SourceError`].
//!
//! Floor 1: may use `error`.

use saphyr::{AnnotatedMapping, LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use crate::error::SourceError;

/// A YAML node with its position.
pub(crate) type Node<'a> = MarkedYaml<'a>;
/// A YAML mapping whose keys and values carry positions.
pub(crate) type Map<'a> = AnnotatedMapping<'a, Node<'a>>;

/// Parses every document of `text`. Duplicate keys in a mapping are an error.
pub(crate) fn parse<'a>(file: &str, text: &'a str) -> Result<Vec<Node<'a>>, SourceError> {
    MarkedYaml::load_from_str(text).map_err(|e| {
        SourceError::new(
            file,
            e.marker().line().max(1),
            format!("YAML syntax error: {}", e.info()),
        )
    })
}

/// 1-based line where `node` starts.
pub(crate) fn line(node: &Node<'_>) -> usize {
    node.span.start.line().max(1)
}

/// Reads nodes of one file, turning shape errors into `file:line: reason`.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'f> {
    pub file: &'f str,
}

impl<'f> Reader<'f> {
    /// A reader for nodes of `file`.
    pub fn new(file: &'f str) -> Self {
        Reader { file }
    }

    /// An error at `node`'s line.
    pub fn err(&self, node: &Node<'_>, reason: impl Into<String>) -> SourceError {
        SourceError::new(self.file, line(node), reason)
    }

    /// The node, refusing YAML tags (`!foo`), which nothing here gives a meaning to.
    pub fn untagged<'n>(&self, node: &'n Node<'n>) -> Result<&'n Node<'n>, SourceError> {
        match &node.data {
            YamlData::Tagged(tag, _) => Err(self.err(
                node,
                format!("YAML tag '{}{}' is not supported", tag.handle, tag.suffix),
            )),
            _ => Ok(node),
        }
    }

    /// `node` as a mapping; `what` names it in the error.
    pub fn map<'n>(&self, node: &'n Node<'n>, what: &str) -> Result<&'n Map<'n>, SourceError> {
        match &self.untagged(node)?.data {
            YamlData::Mapping(m) => Ok(m),
            _ => Err(self.err(node, format!("{what} must be a mapping"))),
        }
    }

    /// A mapping key as a string.
    pub fn key<'n>(&self, key: &'n Node<'n>) -> Result<&'n str, SourceError> {
        match &self.untagged(key)?.data {
            YamlData::Value(Scalar::String(s)) => Ok(s),
            _ => Err(self.err(key, "mapping keys must be strings")),
        }
    }

    /// `node` as a string.
    pub fn string<'n>(&self, node: &'n Node<'n>, what: &str) -> Result<&'n str, SourceError> {
        match &self.untagged(node)?.data {
            YamlData::Value(Scalar::String(s)) => Ok(s),
            _ => Err(self.err(node, format!("{what} must be a string"))),
        }
    }

    /// `node` as a list of strings; a single string is taken as a list of one.
    pub fn strings(&self, node: &Node<'_>, what: &str) -> Result<Vec<String>, SourceError> {
        match &self.untagged(node)?.data {
            YamlData::Value(Scalar::String(s)) => Ok(vec![s.to_string()]),
            YamlData::Sequence(items) => items
                .iter()
                .map(|item| self.string(item, what).map(str::to_owned))
                .collect(),
            _ => Err(self.err(node, format!("{what} must be a list of strings"))),
        }
    }

    /// `node` as an integer within `min..=max`.
    pub fn int(&self, node: &Node<'_>, what: &str, min: i64, max: i64) -> Result<i64, SourceError> {
        match &self.untagged(node)?.data {
            YamlData::Value(Scalar::Integer(n)) if (min..=max).contains(n) => Ok(*n),
            YamlData::Value(Scalar::Integer(n)) => Err(self.err(
                node,
                format!("{what} must be between {min} and {max}, not {n}"),
            )),
            _ => Err(self.err(node, format!("{what} must be an integer"))),
        }
    }
}

/// Whether `node` is YAML null (an empty document, `~`, `null`).
pub(crate) fn is_null(node: &Node<'_>) -> bool {
    matches!(node.data, YamlData::Value(Scalar::Null))
}

/// A short name of a node's type, for error messages.
pub(crate) fn type_name(node: &Node<'_>) -> &'static str {
    match &node.data {
        YamlData::Value(Scalar::Null) => "null",
        YamlData::Value(Scalar::Boolean(_)) => "a boolean",
        YamlData::Value(Scalar::Integer(_)) => "an integer",
        YamlData::Value(Scalar::FloatingPoint(_)) => "a floating-point number",
        YamlData::Value(Scalar::String(_)) => "a string",
        YamlData::Sequence(_) => "a list",
        YamlData::Mapping(_) => "a mapping",
        YamlData::Tagged(..) => "a tagged node",
        _ => "an invalid value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_point_at_the_node() {
        let docs = parse("t.yml", "a: 1\nb:\n  - x\n  - y\n").unwrap();
        let r = Reader::new("t.yml");
        let m = r.map(&docs[0], "doc").unwrap();
        let keys: Vec<(String, usize)> = m
            .iter()
            .map(|(k, _)| (r.key(k).unwrap().to_owned(), line(k)))
            .collect();
        assert_eq!(keys, [("a".to_owned(), 1), ("b".to_owned(), 2)]);
        let b = m.iter().nth(1).unwrap().1;
        let YamlData::Sequence(items) = &b.data else {
            panic!("not a list")
        };
        assert_eq!(line(&items[1]), 4);
        assert_eq!(r.strings(b, "b").unwrap(), ["x", "y"]);
    }

    #[test]
    fn syntax_errors_and_duplicate_keys_have_lines() {
        let e = parse("t.yml", "a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.file, "t.yml");
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("duplicated key"), "{e}");
        let e = parse("t.yml", "a: [1, 2\n").unwrap_err();
        assert!(e.to_string().starts_with("t.yml:"), "{e}");
        assert!(e.reason.starts_with("YAML syntax error"), "{e}");
    }

    #[test]
    fn typed_readers_refuse_other_types() {
        let docs = parse("t.yml", "n: 1.5\ns: x\nt: !foo x\n").unwrap();
        let r = Reader::new("t.yml");
        let m = r.map(&docs[0], "doc").unwrap();
        let vals: Vec<&Node> = m.iter().map(|(_, v)| v).collect();
        assert_eq!(
            r.int(vals[0], "n", 0, 10).unwrap_err().to_string(),
            "t.yml:1: n must be an integer"
        );
        assert_eq!(
            r.int(vals[1], "s", 0, 10).unwrap_err().to_string(),
            "t.yml:2: s must be an integer"
        );
        assert_eq!(
            r.string(vals[2], "t").unwrap_err().to_string(),
            "t.yml:3: YAML tag '!foo' is not supported"
        );
        assert_eq!(type_name(vals[0]), "a floating-point number");
    }
}
