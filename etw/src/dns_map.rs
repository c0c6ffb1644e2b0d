//! Microsoft-Windows-DNS-Client events to the engine's [`DnsEvent`] (pure; the process comes
//! from the table in `enrich.rs`):
//!
//! - 3006 (query sent): `QueryName`, `QueryType` -> a Query.
//! - 3008 (query completed): also `QueryStatus` and `QueryResults` -> a Response with
//!   `reply_code`, `reply_code_id` and `answer` (see `dns_results.rs`).
//!
//! Names are normalised and types named as the Linux sensor does (the engine's
//! `dns::normalize_name` and `dns::type_name`). What DNS-Client does not say stays unknown and
//! is left out of the line: `src`, `dest` and their ports, `transport`; `transaction_id` is 0.

use std::sync::Arc;

use tunnelwatch_engine::{
    dns,
    event::{DnsEvent, DnsMessageType, Platform, Process},
};

use crate::{
    dns_results,
    fields::{Fields, Header, filetime_to_system_time},
    schema::dns_client,
};

/// The event for a 3006 or 3008, or `None` for other ids or a missing `QueryName`.
pub fn dns_event(
    h: &Header,
    f: &Fields,
    host: &Arc<str>,
    process: Option<Process>,
    parent: Option<Process>,
) -> Option<DnsEvent> {
    let message_type = match h.event_id {
        dns_client::QUERY => DnsMessageType::Query,
        dns_client::COMPLETED => DnsMessageType::Response,
        _ => return None,
    };
    let name = f.str("QueryName")?.trim();
    if name.is_empty() {
        return None;
    }
    let query_type = match f.u32("QueryType").map(u16::try_from) {
        Some(Ok(t)) => dns::type_name(t),
        Some(Err(_)) | None => String::new(),
    };
    let (reply_code, reply_code_id, answers) = match message_type {
        DnsMessageType::Query => (String::new(), None, Vec::new()),
        DnsMessageType::Response => {
            let (code, id) = match f.u32("QueryStatus") {
                Some(status) => dns_results::reply_code(status),
                None => (String::new(), None),
            };
            (
                code,
                id,
                dns_results::answers(f.str("QueryResults").unwrap_or_default()),
            )
        }
    };
    Some(DnsEvent {
        time: filetime_to_system_time(h.timestamp),
        host: host.clone(),
        platform: Platform::Windows,
        message_type,
        query: dns::normalize_name(name),
        query_type,
        transaction_id: 0,
        reply_code,
        reply_code_id,
        answers,
        src: None,
        dest: None,
        transport: "",
        process,
        parent,
        inferred_from_response: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{Source, Value};

    fn header(id: u16) -> Header {
        Header {
            source: Source::DnsClient,
            event_id: id,
            opcode: 0,
            version: 0,
            pid: 5832,
            timestamp: 134_398_693_231_234_567,
            pointer_size: 8,
        }
    }

    #[test]
    fn a_3006_is_a_query() {
        // Layout: DNS-Client 3006 v0 (QueryName, QueryType, QueryOptions, ServerList, ...).
        let f = Fields::new()
            .with("QueryName", Value::Str("X.Ngrok-Free.App.".into()))
            .with("QueryType", Value::U32(28))
            .with("QueryOptions", Value::U64(0x4000_6000))
            .with("ServerList", Value::Str("192.168.1.1;".into()));
        let host: Arc<str> = "DESKTOP-1".into();
        let e = dns_event(&header(3006), &f, &host, None, None).unwrap();
        assert_eq!(e.message_type, DnsMessageType::Query);
        assert_eq!(e.query, "x.ngrok-free.app");
        assert_eq!(e.query_type, "AAAA");
        assert_eq!(e.platform, Platform::Windows);
        assert_eq!(e.reply_code, "");
        assert_eq!(e.reply_code_id, None);
        assert!(e.answers.is_empty());
        assert_eq!((e.src, e.dest, e.transport), (None, None, ""));
        assert_eq!(
            e.time,
            std::time::UNIX_EPOCH + std::time::Duration::new(1_795_395_723, 123_456_700)
        );
    }

    #[test]
    fn a_3008_is_a_response_with_answers() {
        // Layout: DNS-Client 3008 v0 (QueryName, QueryType, QueryOptions, QueryStatus,
        // QueryResults).
        let f = Fields::new()
            .with("QueryName", Value::Str("x.ngrok.io".into()))
            .with("QueryType", Value::U32(1))
            .with("QueryOptions", Value::U64(0x4000_6000))
            .with("QueryStatus", Value::U32(0))
            .with(
                "QueryResults",
                Value::Str("type: 5 tunnel.us.ngrok.com;::ffff:3.134.125.175;".into()),
            );
        let e = dns_event(&header(3008), &f, &"h".into(), None, None).unwrap();
        assert_eq!(e.message_type, DnsMessageType::Response);
        assert_eq!(e.query_type, "A");
        assert_eq!(
            (e.reply_code.as_str(), e.reply_code_id),
            ("NoError", Some(0))
        );
        assert_eq!(e.answers, ["tunnel.us.ngrok.com", "3.134.125.175"]);

        let nx = Fields::new()
            .with("QueryName", Value::Str("nope.ngrok.io".into()))
            .with("QueryType", Value::U32(1))
            .with("QueryStatus", Value::U32(9003))
            .with("QueryResults", Value::Str(String::new()));
        let e = dns_event(&header(3008), &nx, &"h".into(), None, None).unwrap();
        assert_eq!(
            (e.reply_code.as_str(), e.reply_code_id),
            ("NXDomain", Some(3))
        );
        assert!(e.answers.is_empty());
    }

    #[test]
    fn other_events_and_empty_names_are_not_mapped() {
        let f = Fields::new().with("QueryName", Value::Str("x.ngrok.io".into()));
        assert!(dns_event(&header(3020), &f, &"h".into(), None, None).is_none());
        let empty = Fields::new().with("QueryName", Value::Str(" ".into()));
        assert!(dns_event(&header(3006), &empty, &"h".into(), None, None).is_none());
        assert!(dns_event(&header(3006), &Fields::new(), &"h".into(), None, None).is_none());
        // No type: left empty rather than guessed.
        let e = dns_event(&header(3006), &f, &"h".into(), None, None).unwrap();
        assert_eq!(e.query_type, "");
    }
}
