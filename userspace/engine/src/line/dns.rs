//! The body of a DNS line: CIM Network_Resolution and the process behind the message,
//! declared once (see `line/mod.rs`).
//!
//! Floor 1 (events, fields and lines): may use `event` and the line types.

use std::{
    borrow::Cow,
    net::{IpAddr, SocketAddr},
    sync::LazyLock,
};

use crate::{
    event::{DnsEvent, DnsMessageType, Process},
    line::{Context, Transport, line_fields, pid},
};

line_fields! {
    /// CIM Network_Resolution fields of a DNS query or response, then its process, in the
    /// order lines carry them.
    pub struct DnsLine<'a> {
        query: &'a str,
        query_type: &'a str,
        message_type: DnsMessageType,
        transaction_id: u16,
        reply_code: &'a str,
        reply_code_id: Option<u16>,
        answer: Cow<'a, [String]>,
        /// On responses.
        answer_count: Option<u32>,
        /// The client.
        src: Option<IpAddr>,
        src_port: Option<u16>,
        /// The server.
        dest: Option<IpAddr>,
        dest_port: Option<u16>,
        transport: Transport,
        process_id: Option<u32>,
        process_name: &'a str,
        process_path: &'a str,
        process: &'a str,
        user: &'a str,
        user_id: &'a str,
        parent_process_id: Option<u32>,
        parent_process_name: &'a str,
        parent_process_path: &'a str,
        /// A query built from its response (the query itself was not seen).
        inferred_from_response: bool,
    }
}

impl<'a> From<&'a DnsEvent> for DnsLine<'a> {
    fn from(e: &'a DnsEvent) -> Self {
        static NONE: LazyLock<Process> = LazyLock::new(Process::default);
        let p = e.process.as_ref().unwrap_or(&NONE);
        let pp = e.parent.as_ref().unwrap_or(&NONE);
        DnsLine {
            query: &e.query,
            query_type: &e.query_type,
            message_type: e.message_type,
            transaction_id: e.transaction_id,
            reply_code: &e.reply_code,
            reply_code_id: e.reply_code_id,
            answer: Cow::Borrowed(&e.answers),
            answer_count: (e.message_type == DnsMessageType::Response)
                .then_some(e.answers.len() as u32),
            src: e.src.map(|a| a.ip()),
            src_port: e.src.map(|a| a.port()),
            dest: e.dest.map(|a| a.ip()),
            dest_port: e.dest.map(|a| a.port()),
            transport: Transport(e.transport),
            process_id: pid(p.pid),
            process_name: &p.name,
            process_path: &p.path,
            process: &p.command_line,
            user: &p.user,
            user_id: &p.user_id,
            parent_process_id: pid(pp.pid),
            parent_process_name: &pp.name,
            parent_process_path: &pp.path,
            inferred_from_response: e.inferred_from_response,
        }
    }
}

impl DnsLine<'_> {
    /// The event. `answer_count` follows from the answers; the line does not carry the
    /// process's original file name nor the parent's command line and user.
    pub(crate) fn into_event(self, c: &Context<'_>) -> Result<DnsEvent, String> {
        let addr = |ip: Option<IpAddr>, port: Option<u16>, ip_key: &str, port_key: &str| match ip {
            Some(ip) => Ok(Some(SocketAddr::new(ip, port.unwrap_or(0)))),
            None if port.is_some() => Err(format!("'{port_key}' without '{ip_key}'")),
            None => Ok(None),
        };
        let process = Process {
            user: self.user.into(),
            user_id: self.user_id.into(),
            ..c.process(
                self.process_id,
                self.process_name,
                self.process_path,
                self.process,
            )
        };
        let parent = c.process(
            self.parent_process_id,
            self.parent_process_name,
            self.parent_process_path,
            "",
        );
        let known = |p: &Process| *p != Process::default();
        Ok(DnsEvent {
            time: c.time,
            host: c.host.into(),
            platform: c.platform(
                &[&process.path, &parent.path],
                &[&process.name, &parent.name],
            ),
            message_type: self.message_type,
            query: self.query.to_owned(),
            query_type: self.query_type.to_owned(),
            transaction_id: self.transaction_id,
            reply_code: self.reply_code.to_owned(),
            reply_code_id: self.reply_code_id,
            answers: self.answer.into_owned(),
            src: addr(self.src, self.src_port, "src", "src_port")?,
            dest: addr(self.dest, self.dest_port, "dest", "dest_port")?,
            transport: self.transport.0,
            process: known(&process).then_some(process),
            parent: known(&parent).then_some(parent),
            inferred_from_response: self.inferred_from_response,
        })
    }
}
