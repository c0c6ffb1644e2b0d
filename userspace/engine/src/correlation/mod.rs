//! Sigma correlation rules (Sigma specification 2.x): alerts on several events together, over
//! windows of time. A correlation refers to Sigma rules (or other correlations) by `id` or
//! `name`, in the same file or another; it counts their matches per group of `group-by`
//! values (`event_count`), counts the distinct values of a field (`value_count`), or waits
//! for all of them (`temporal`), in order (`temporal_ordered`), within its `timespan`.
//!
//! Three files, on three floors, so that each stands on what it needs:
//! - `rule.rs` reads one correlation document (floor 4, beside one rule);
//! - `resolve.rs` ties a correlation to the rules and correlations it names and to the fields
//!   its groups read (floor 6, with the rule sets);
//! - `state.rs` keeps the windows, bounded, with what it drops counted (floor 7, beside the
//!   engine; the evaluate-and-emit step drives it, so the Linux sensor, the Windows sensor
//!   and `replay` all get the same alerts). Time is the events' own, never the clock: a
//!   replay of recorded events raises what the live sensor raised.

pub mod resolve;
pub mod rule;
pub mod state;

pub use resolve::{Resolved, Source};
pub use rule::{Correlation, CorrelationType};
pub use state::{Correlator, Fired, Limits};
