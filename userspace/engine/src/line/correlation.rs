//! The line of a correlation alert: the head (`time`, `host`, `kind: alert`), the correlation
//! rule's alert fields, `vendor_product`, `correlation_type`, the group's values under their
//! `group-by` names (unknown ones left out), then the [`Summary`]: `count`, for `value_count`
//! `distinct_count` and the first few `values`, and `firstTime`/`lastTime` (Splunk's names,
//! RFC 3339 like `time`). It has no `datamodel`: it stands for several events, and `replay`
//! skips it (the events it stands for are replayed and raise it again).
//!
//! Floor 1 (events, fields and lines): may use the line types.

use std::{borrow::Cow, time::SystemTime};

use serde::{Serialize, Serializer, ser::SerializeMap};

use crate::line::{AlertFields, Head, Part, VENDOR_PRODUCT, line_fields, value::Write};

line_fields! {
    /// What a line that stands for several events says of them: how many, and when the first
    /// and the last happened.
    #[allow(non_snake_case)]
    pub struct Summary<'a> {
        count: Option<u64>,
        /// `value_count`: how many distinct values.
        distinct_count: Option<u64>,
        /// `value_count`: the first few of them.
        values: Cow<'a, [String]>,
        firstTime: Option<SystemTime>,
        lastTime: Option<SystemTime>,
    }
}

/// The key that tells a correlation line from the others.
pub const CORRELATION_TYPE: &str = "correlation_type";

/// One correlation alert line.
#[derive(Clone, Debug, PartialEq)]
pub struct CorrelationLine<'a> {
    pub head: Head<'a>,
    pub alert: AlertFields<'a>,
    /// `event_count`, `value_count`, `temporal` or `temporal_ordered`.
    pub correlation_type: &'a str,
    /// `(group-by name, value)`, in the correlation's order; empty values are left out.
    pub group: Vec<(&'a str, &'a str)>,
    pub summary: Summary<'a>,
}

impl Serialize for CorrelationLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        self.head.write(&mut map)?;
        self.alert.write(&mut map)?;
        map.serialize_entry("vendor_product", VENDOR_PRODUCT)?;
        map.serialize_entry(CORRELATION_TYPE, self.correlation_type)?;
        for (name, value) in &self.group {
            if !value.is_empty() && *name != "host" {
                map.serialize_entry(name, &Write(value))?;
            }
        }
        self.summary.write(&mut map)?;
        map.end()
    }
}
