//! tunnelwatch's engine. It knows no operating system: the Linux sensor (`tunnelwatch`
//! crate, `userspace/src/linux`), the Windows sensor (`etw/`) and `replay` all hand it the same
//! [`event::Event`]s and take the same evaluate-and-emit [`step`].
//!
//! Its files stand on floors; a file uses only files of its own floor or below (each file's
//! documentation says which), so a change moves only what stands above it:
//!
//! 1. events and fields: `event`, `field` (the Sigma vocabularies), `query_name` (what a DNS
//!    name's shape says), `line/` (the alert line schema), `replay` (lines back into events),
//!    `error`, `yaml`;
//! 2. patterns and modifiers: `pattern`, `modifier`;
//! 3. detection and conditions: `condition`, `detection`;
//! 4. one rule: `rule`, `template`, `test_case` (a rule's test cases, as data),
//!    `correlation::rule` (one correlation document);
//! 5. the compiled matcher: `matcher/` (`gate`, `scan`, `eval`);
//! 6. rule sets, filters, allowlists, configuration: `filter`, `ruleset`, `builtin`,
//!    `allowlist`, `config`, `correlation::resolve` (correlations tied to their rules);
//! 7. the engine and its output: `alert`, `engine`, `correlation::state` (the windows), `fold`
//!    (folded repeats), `emit`, `step`, `stats`;
//! 8. running rule test cases: `rule_tests`.
//!
//! `dns` (DNS wire decoding) stands apart: it uses none of them. So does `names` (addresses named
//! by DNS answers, for connections), which uses `dns` only.

pub mod alert;
pub mod allowlist;
pub mod builtin;
mod condition;
pub mod config;
pub mod correlation;
mod detection;
pub mod dns;
pub mod emit;
pub mod engine;
pub mod error;
pub mod event;
pub mod field;
pub mod filter;
pub mod fold;
pub mod line;
mod matcher;
mod modifier;
pub mod names;
mod pattern;
mod query_name;
pub mod replay;
pub mod rule;
pub mod rule_tests;
pub mod ruleset;
pub mod stats;
pub mod step;
pub mod template;
pub mod test_case;
mod yaml;
