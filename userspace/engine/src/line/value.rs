//! The types a line field may have, and for each: when it is left out of a line (unknown), how
//! it is written, how it is read back from a recorded line (with the error naming the key),
//! and its text for message templates and allowlists.
//!
//! Floor 1 (events, fields and lines): may use `event` and `field`.

use std::{
    borrow::Cow,
    fmt::Display,
    net::IpAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::event::DnsMessageType;

/// A field's type: see the module documentation.
pub(crate) trait FieldValue<'a>: Sized {
    /// Whether the value is unknown, so that the line leaves the field out.
    fn is_unknown(&self) -> bool;
    /// Writes the value.
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error>;
    /// Reads the value of `key` from a recorded line (`None` or null: the field is absent).
    fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String>;
    /// Calls `f` with the value as text: each value of a list, nothing when unknown.
    fn visit(&self, f: &mut dyn FnMut(&str));
    /// Whether a message template may name the field (flags and times it may not).
    const TEXT: bool = true;
}

/// Writes a field through its [`FieldValue`].
pub(crate) struct Write<'v, T>(pub &'v T);

impl<'a, T: FieldValue<'a>> Serialize for Write<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.write(s)
    }
}

/// Text that is written even when empty (`rule_name`, `message`, `kind`, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Required<'a>(pub &'a str);

/// `'key' must be a string`, or the string.
fn string<'a>(json: Option<&'a Value>, key: &str) -> Result<Option<&'a str>, String> {
    match json {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("'{key}' must be a string")),
    }
}

/// A whole number up to `max`, with the reason when it is something else.
fn number(json: Option<&Value>, key: &str, max: u64) -> Result<Option<u64>, String> {
    match json {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v <= max => Ok(Some(v)),
            _ => Err(format!("'{key}' must be a whole number from 0 to {max}")),
        },
        Some(_) => Err(format!("'{key}' must be a number")),
    }
}

/// Text: left out when empty.
impl<'a> FieldValue<'a> for &'a str {
    fn is_unknown(&self) -> bool {
        self.is_empty()
    }
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
    fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String> {
        Ok(string(json, key)?.unwrap_or(""))
    }
    fn visit(&self, f: &mut dyn FnMut(&str)) {
        if !self.is_empty() {
            f(self)
        }
    }
}

/// Text that may be missing: left out when `None` (an empty string is written).
impl<'a> FieldValue<'a> for Option<&'a str> {
    fn is_unknown(&self) -> bool {
        self.is_none()
    }
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.unwrap_or_default())
    }
    fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String> {
        string(json, key)
    }
    fn visit(&self, f: &mut dyn FnMut(&str)) {
        self.unwrap_or_default().visit(f)
    }
}

impl<'a> FieldValue<'a> for Required<'a> {
    fn is_unknown(&self) -> bool {
        false
    }
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
    fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String> {
        Ok(Required(string(json, key)?.unwrap_or("")))
    }
    fn visit(&self, f: &mut dyn FnMut(&str)) {
        self.0.visit(f)
    }
}

/// Renders a number or an address for [`FieldValue::visit`] on the stack.
fn visit_display(v: impl Display, f: &mut dyn FnMut(&str)) {
    f(crate::field::StackStr::render(v).as_str())
}

/// A number that is always known (`transaction_id`): absent reads as 0.
impl<'a> FieldValue<'a> for u16 {
    fn is_unknown(&self) -> bool {
        false
    }
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(*self)
    }
    fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String> {
        Ok(number(json, key, u16::MAX.into())?.unwrap_or(0) as u16)
    }
    fn visit(&self, f: &mut dyn FnMut(&str)) {
        visit_display(self, f)
    }
}

/// Numbers that may be unknown: left out when `None`.
macro_rules! optional_number {
    ($($t:ty),*) => {$(
        impl<'a> FieldValue<'a> for Option<$t> {
            fn is_unknown(&self) -> bool {
                self.is_none()
            }
            fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.unwrap_or_default().serialize(s)
            }
            fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String> {
                Ok(number(json, key, <$t>::MAX.into())?.map(|v| v as $t))
            }
            fn visit(&self, f: &mut dyn FnMut(&str)) {
                if let Some(v) = self {
                    visit_display(v, f)
                }
            }
        }
    )*};
}
optional_number!(u16, u32, u64);

/// An address: left out when unknown.
impl<'a> FieldValue<'a> for Option<IpAddr> {
    fn is_unknown(&self) -> bool {
        self.is_none()
    }
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.unwrap_or(IpAddr::from([0, 0, 0, 0])))
    }
    fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String> {
        string(json, key)?
            .map(|s| {
                s.parse()
                    .map_err(|_| format!("'{key}' must be an IP address, not '{s}'"))
            })
            .transpose()
    }
    fn visit(&self, f: &mut dyn FnMut(&str)) {
        if let Some(ip) = self {
            visit_display(ip, f)
        }
    }
}

/// A flag: written only when set.
impl<'a> FieldValue<'a> for bool {
    fn is_unknown(&self) -> bool {
        !*self
    }
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*self)
    }
    fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String> {
        match json {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("'{key}' must be true or false")),
        }
    }
    fn visit(&self, f: &mut dyn FnMut(&str)) {
        if *self {
            f("true")
        }
    }
    const TEXT: bool = false;
}

/// Several strings (`answer`, `mitre_technique_id`): left out when there is none; a single
/// string reads as a list of one.
impl<'a> FieldValue<'a> for Cow<'a, [String]> {
    fn is_unknown(&self) -> bool {
        self.is_empty()
    }
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.serialize(s)
    }
    fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String> {
        let not_strings = || format!("'{key}' must be a list of strings");
        match json {
            None | Some(Value::Null) => Ok(Cow::Borrowed(&[])),
            Some(Value::String(s)) => Ok(Cow::Owned(vec![s.clone()])),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(not_strings()),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Cow::Owned),
            Some(_) => Err(not_strings()),
        }
    }
    fn visit(&self, f: &mut dyn FnMut(&str)) {
        for s in self.iter() {
            s.as_str().visit(f)
        }
    }
}

/// The time of the event: RFC 3339 UTC with microseconds; times outside 1970..=9999 are
/// clamped. Always known when written.
impl<'a> FieldValue<'a> for Option<SystemTime> {
    fn is_unknown(&self) -> bool {
        self.is_none()
    }
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Last microsecond of the year 9999, the latest time RFC 3339 can write.
        const MAX: Duration = Duration::new(253_402_300_799, 999_999_000);
        let time = self.unwrap_or(UNIX_EPOCH);
        let t = match time.duration_since(UNIX_EPOCH) {
            Err(_) => UNIX_EPOCH,
            Ok(d) if d > MAX => UNIX_EPOCH + MAX,
            Ok(_) => time,
        };
        s.collect_str(&humantime::format_rfc3339_micros(t))
    }
    fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String> {
        string(json, key)?
            .map(|t| {
                humantime::parse_rfc3339(t)
                    .map_err(|e| format!("'{key}' is not an RFC 3339 time ('{t}'): {e}"))
            })
            .transpose()
    }
    /// A time is not text: messages and allowlists cannot name it.
    fn visit(&self, _: &mut dyn FnMut(&str)) {}
    const TEXT: bool = false;
}

/// `Query` or `Response`; absent reads as a query.
impl<'a> FieldValue<'a> for DnsMessageType {
    fn is_unknown(&self) -> bool {
        false
    }
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
    fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String> {
        match string(json, key)? {
            Some("Query") | None => Ok(DnsMessageType::Query),
            Some("Response") => Ok(DnsMessageType::Response),
            Some(other) => Err(format!(
                "unknown message_type '{other}' (Query or Response)"
            )),
        }
    }
    fn visit(&self, f: &mut dyn FnMut(&str)) {
        f(self.as_str())
    }
}

/// `udp` or `tcp`, or empty when unknown (left out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transport(pub &'static str);

impl<'a> FieldValue<'a> for Transport {
    fn is_unknown(&self) -> bool {
        self.0.is_empty()
    }
    fn write<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
    fn read(json: Option<&'a Value>, key: &str) -> Result<Self, String> {
        match string(json, key)? {
            None | Some("") => Ok(Transport("")),
            Some("udp") => Ok(Transport("udp")),
            Some("tcp") => Ok(Transport("tcp")),
            Some(other) => Err(format!("unknown transport '{other}' (udp or tcp)")),
        }
    }
    fn visit(&self, f: &mut dyn FnMut(&str)) {
        self.0.visit(f)
    }
}
