//! Errors that point into a source file, printed as `file:line: reason`.
//!
//! Floor 1: uses nothing of the engine.

use std::fmt;

/// A problem in a rule or configuration file, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError {
    /// The file's name as given to the loader (a path or a label such as `rules/x.yml`).
    pub file: String,
    /// 1-based line; 0 when the problem concerns the whole file (e.g. it cannot be read).
    pub line: usize,
    /// What is wrong, in words.
    pub reason: String,
}

impl SourceError {
    /// A problem at `file:line`.
    pub fn new(file: &str, line: usize, reason: impl Into<String>) -> Self {
        SourceError {
            file: file.to_owned(),
            line,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.reason)
        }
    }
}

impl std::error::Error for SourceError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_with_and_without_line() {
        assert_eq!(
            SourceError::new("rules/x.yml", 12, "bad").to_string(),
            "rules/x.yml:12: bad"
        );
        assert_eq!(
            SourceError::new("rules/x.yml", 0, "cannot read").to_string(),
            "rules/x.yml: cannot read"
        );
    }
}
