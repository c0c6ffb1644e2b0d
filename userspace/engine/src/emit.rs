//! Alert and event output: one JSON object per line with Splunk CIM field names, flushed per
//! line. The emitter is the only writer of stdout; it takes any [`Write`] so tests and other
//! sinks can use it too. Fields whose value is unknown (empty string, `None`) are left out.
//!
//! Key order: `time`, `host`, `kind`; for alerts `rule_id`, `rule_name`, `rule_type`,
//! `severity`, `mitre_technique_id`, `risk_score`, `message`, `falsepositives` (the rule's
//! Sigma `falsepositives`, for the analyst); then `datamodel`,
//! `vendor_product` and the event's CIM fields (Endpoint.Processes or Network_Resolution).

use std::{
    io::{self, Write},
    net::IpAddr,
    sync::LazyLock,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Serialize, Serializer};

use crate::{
    alert::Alert,
    event::{DnsEvent, DnsMessageType, Event, Process, ProcessEvent},
    field::Category,
};

/// `vendor_product` of every line.
pub const VENDOR_PRODUCT: &str = "tunnelwatch";

/// Writes JSON lines to `W`.
pub struct Emitter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> Emitter<W> {
    /// An emitter writing to `out`.
    pub fn new(out: W) -> Self {
        Emitter {
            out,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Writes and flushes the line of `alert`, raised on `event`.
    pub fn write_alert(&mut self, event: &Event, alert: &Alert<'_>) -> io::Result<()> {
        let rule = alert.rule;
        let view = AlertView {
            rule_id: rule.id.as_deref(),
            rule_name: &rule.title,
            rule_type: rule.analytic_type.as_deref(),
            severity: rule.level.map(|l| l.as_str()),
            mitre_technique_id: &rule.mitre_technique_ids,
            risk_score: rule.risk_score,
            message: &alert.message,
            falsepositives: &rule.falsepositives,
        };
        self.write_line(event, "alert", Some(view))
    }

    /// Writes and flushes the line of `event` (for `--all-events`).
    pub fn write_event(&mut self, event: &Event) -> io::Result<()> {
        self.write_line(event, "event", None)
    }

    /// The writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Gives the writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn write_line(
        &mut self,
        event: &Event,
        kind: &'static str,
        alert: Option<AlertView<'_>>,
    ) -> io::Result<()> {
        self.buf.clear();
        let head = Head {
            time: Rfc3339Micros(event.time()),
            host: event.host(),
            kind,
        };
        let datamodel = Category::of(event).datamodel();
        let res = match event {
            Event::Process(e) => serde_json::to_writer(
                &mut self.buf,
                &Line {
                    head,
                    alert,
                    datamodel,
                    vendor_product: VENDOR_PRODUCT,
                    body: ProcessView::new(e),
                },
            ),
            Event::Dns(e) => serde_json::to_writer(
                &mut self.buf,
                &Line {
                    head,
                    alert,
                    datamodel,
                    vendor_product: VENDOR_PRODUCT,
                    body: DnsView::new(e),
                },
            ),
        };
        res.map_err(io::Error::other)?;
        self.buf.push(b'\n');
        self.out.write_all(&self.buf)?;
        self.out.flush()
    }
}

fn empty(s: &&str) -> bool {
    s.is_empty()
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// RFC 3339 UTC with microseconds; times outside 1970..=9999 are clamped.
struct Rfc3339Micros(SystemTime);

impl Serialize for Rfc3339Micros {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Last microsecond of the year 9999, the latest time RFC 3339 can write.
        const MAX: Duration = Duration::new(253_402_300_799, 999_999_000);
        let t = match self.0.duration_since(UNIX_EPOCH) {
            Err(_) => UNIX_EPOCH,
            Ok(d) if d > MAX => UNIX_EPOCH + MAX,
            Ok(_) => self.0,
        };
        s.collect_str(&humantime::format_rfc3339_micros(t))
    }
}

#[derive(Serialize)]
struct Head<'a> {
    time: Rfc3339Micros,
    #[serde(skip_serializing_if = "empty")]
    host: &'a str,
    kind: &'static str,
}

#[derive(Serialize)]
struct AlertView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_id: Option<&'a str>,
    rule_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    severity: Option<&'static str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    mitre_technique_id: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    risk_score: Option<u32>,
    message: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    falsepositives: &'a [String],
}

#[derive(Serialize)]
struct Line<'a, B: Serialize> {
    #[serde(flatten)]
    head: Head<'a>,
    #[serde(flatten)]
    alert: Option<AlertView<'a>>,
    datamodel: &'static str,
    vendor_product: &'static str,
    #[serde(flatten)]
    body: B,
}

/// CIM Endpoint.Processes fields of a process event.
#[derive(Serialize)]
struct ProcessView<'a> {
    #[serde(skip_serializing_if = "empty")]
    dest: &'a str,
    #[serde(skip_serializing_if = "empty")]
    user: &'a str,
    #[serde(skip_serializing_if = "empty")]
    user_id: &'a str,
    #[serde(skip_serializing_if = "empty")]
    process: &'a str,
    #[serde(skip_serializing_if = "empty")]
    process_name: &'a str,
    #[serde(skip_serializing_if = "empty")]
    process_path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    process_id: Option<u32>,
    #[serde(skip_serializing_if = "empty")]
    parent_process: &'a str,
    #[serde(skip_serializing_if = "empty")]
    parent_process_name: &'a str,
    #[serde(skip_serializing_if = "empty")]
    parent_process_path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_process_id: Option<u32>,
    #[serde(skip_serializing_if = "empty")]
    original_file_name: &'a str,
    #[serde(skip_serializing_if = "is_false")]
    args_truncated: bool,
}

/// A pid, or `None` for 0 (unknown).
fn pid(p: u32) -> Option<u32> {
    (p != 0).then_some(p)
}

impl<'a> ProcessView<'a> {
    fn new(e: &'a ProcessEvent) -> Self {
        ProcessView {
            dest: &e.host,
            user: &e.process.user,
            user_id: &e.process.user_id,
            process: &e.process.command_line,
            process_name: &e.process.name,
            process_path: &e.process.path,
            process_id: pid(e.process.pid),
            parent_process: &e.parent.command_line,
            parent_process_name: &e.parent.name,
            parent_process_path: &e.parent.path,
            parent_process_id: pid(e.parent.pid),
            original_file_name: &e.process.original_file_name,
            args_truncated: e.args_truncated,
        }
    }
}

/// CIM Network_Resolution fields of a DNS event, then its process.
#[derive(Serialize)]
struct DnsView<'a> {
    #[serde(skip_serializing_if = "empty")]
    query: &'a str,
    #[serde(skip_serializing_if = "empty")]
    query_type: &'a str,
    message_type: &'static str,
    transaction_id: u16,
    #[serde(skip_serializing_if = "empty")]
    reply_code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_code_id: Option<u16>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    answer: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    answer_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    #[serde(skip_serializing_if = "empty")]
    transport: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    process_id: Option<u32>,
    #[serde(skip_serializing_if = "empty")]
    process_name: &'a str,
    #[serde(skip_serializing_if = "empty")]
    process_path: &'a str,
    #[serde(skip_serializing_if = "empty")]
    process: &'a str,
    #[serde(skip_serializing_if = "empty")]
    user: &'a str,
    #[serde(skip_serializing_if = "empty")]
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_process_id: Option<u32>,
    #[serde(skip_serializing_if = "empty")]
    parent_process_name: &'a str,
    #[serde(skip_serializing_if = "empty")]
    parent_process_path: &'a str,
}

impl<'a> DnsView<'a> {
    fn new(e: &'a DnsEvent) -> Self {
        static NONE: LazyLock<Process> = LazyLock::new(Process::default);
        let p = e.process.as_ref().unwrap_or(&NONE);
        let pp = e.parent.as_ref().unwrap_or(&NONE);
        DnsView {
            query: &e.query,
            query_type: &e.query_type,
            message_type: e.message_type.as_str(),
            transaction_id: e.transaction_id,
            reply_code: &e.reply_code,
            reply_code_id: e.reply_code_id,
            answer: &e.answers,
            answer_count: (e.message_type == DnsMessageType::Response).then_some(e.answers.len()),
            src: e.src.map(|a| a.ip()),
            src_port: e.src.map(|a| a.port()),
            dest: e.dest.map(|a| a.ip()),
            dest_port: e.dest.map(|a| a.port()),
            transport: e.transport,
            process_id: pid(p.pid),
            process_name: &p.name,
            process_path: &p.path,
            process: &p.command_line,
            user: &p.user,
            user_id: &p.user_id,
            parent_process_id: pid(pp.pid),
            parent_process_name: &pp.name,
            parent_process_path: &pp.path,
        }
    }
}
