//! DNS wire-format decoding for captured packets.
//!
//! The sensor copies the transport payload of packets to and from DNS ports (at most 2048 bytes)
//! and this module turns those bytes into a small, owned [`DnsMessage`]: header fields, the
//! questions and the answer records, with names as normalized presentation text. The parsing of
//! the wire format itself (header, names with compression pointers, record data) is done by
//! `hickory-proto`; this module walks the sections itself so that it can
//!
//! * decode a message that was cut short by the capture limit (`complete == false`) as far as
//!   the bytes go, and say so ([`DnsMessage::partial`]);
//! * keep going past a record whose data hickory cannot decode (the data is then shown in the
//!   generic RFC 3597 form `\# <len> <hex>`), since the record's length says where the next one
//!   starts;
//! * bound the work a hostile packet can cause: at most [`MAX_QUESTIONS`] questions and
//!   [`MAX_ANSWERS`] answers are returned, at most [`MAX_ENTRIES_WALKED`] questions and records
//!   are looked at in all, record data strings are cut at [`MAX_DATA_LEN`] bytes and input beyond
//!   [`MAX_MESSAGE_LEN`] bytes is ignored. hickory itself rejects compression pointers that do
//!   not point strictly backwards (so pointer loops cannot happen), labels over 63 bytes and names
//!   over 255 bytes; record data is decoded from a view of the message that ends where the
//!   record's data ends, so it can never read into the next record.
//!
//! Names come out as ASCII presentation text: labels are not converted from punycode, bytes
//! that need it are escaped (`\.` for a dot inside a label, `\DDD` in decimal as in RFC 1035
//! for other bytes; hickory writes those in octal, which is converted), then lower-cased with the
//! trailing dot removed ([`normalize_name`]).
//!
//! Limits: the authority section is skipped and the additional section is only searched for the
//! EDNS OPT record (to complete the response code). DNSSEC record types (DS, RRSIG, ...) are
//! shown in the generic form, since hickory's DNSSEC support is not compiled in. Over TCP, a
//! segment that does not start at a message boundary is recognized by plausibility checks on the
//! length prefix and header ([`parse_tcp_segment`]), which is a heuristic: it rejects nearly all
//! such segments but cannot be perfect.
//!
//! Apart from the floors: DNS wire decoding (the Linux sensor's) and the names of record types
//! and response codes (both sensors'); it uses nothing of the engine, and the engine's floors do
//! not use it.

use std::fmt::Write as _;

use hickory_proto::{
    op::{Header, HeaderCounts, MessageType, Query, ResponseCode},
    rr::{
        Name, RData, RecordType,
        rdata::{HTTPS, SVCB, TXT, svcb::SvcParamValue},
    },
    serialize::binary::{BinDecodable, BinDecoder, DecodeError, Restrict},
};

/// The most questions [`parse_message`] returns for one message.
pub const MAX_QUESTIONS: usize = 64;
/// The most answer records [`parse_message`] returns for one message.
pub const MAX_ANSWERS: usize = 64;
/// The most questions and records (all sections together) [`parse_message`] looks at in one
/// message; anything beyond is left undecoded and the message is marked [`partial`](DnsMessage::partial).
pub const MAX_ENTRIES_WALKED: usize = 256;
/// The longest [`DnsAnswer::data`] string, in bytes; longer ones are cut and end in `...`.
pub const MAX_DATA_LEN: usize = 1024;
/// The longest DNS message there can be (TCP's length prefix is 16 bits); [`parse_message`]
/// treats longer input as a message cut short at this length.
pub const MAX_MESSAGE_LEN: usize = 65535;
/// The most messages [`parse_tcp_segment`] returns for one segment.
pub const MAX_TCP_MESSAGES: usize = 64;

/// Length of the fixed DNS header.
const HEADER_LEN: usize = 12;
/// Smallest possible question on the wire: root name (1 byte), type and class.
const MIN_QUESTION_LEN: usize = 5;
/// Smallest possible resource record on the wire: root name, type, class, TTL, rdata length.
const MIN_RECORD_LEN: usize = 11;
/// Record type of the EDNS OPT pseudo-record.
const TYPE_OPT: u16 = 41;
/// Record type of DNAME, whose data hickory does not decode.
const TYPE_DNAME: u16 = 39;
/// The code hickory gives its ANAME type, which is really a private-use code.
const TYPE_HICKORY_ANAME: u16 = 65305;

/// One decoded DNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMessage {
    /// Transaction id.
    pub id: u16,
    /// QR bit: true for a response.
    pub response: bool,
    /// Opcode (0 = standard query).
    pub opcode: u8,
    /// TC bit: the sender truncated the message (the client should retry over TCP).
    pub truncated: bool,
    /// Response code, including the EDNS extended bits when an OPT record was found.
    pub rcode: u16,
    /// The questions, at most [`MAX_QUESTIONS`].
    pub questions: Vec<DnsQuestion>,
    /// The answer-section records, at most [`MAX_ANSWERS`].
    pub answers: Vec<DnsAnswer>,
    /// True when not all of the message could be decoded: the bytes were cut short (the
    /// caller said so, or the sections ran past the end), a later part was malformed, or a cap
    /// was hit. The header and the fields above are still right as far as they go.
    pub partial: bool,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuestion {
    /// Normalized name (see [`normalize_name`]).
    pub name: String,
    /// Query type (see [`type_name`]).
    pub qtype: u16,
    /// Query class (1 = IN).
    pub qclass: u16,
}

/// One answer-section record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// Normalized owner name (see [`normalize_name`]).
    pub name: String,
    /// Record type (see [`type_name`]).
    pub rtype: u16,
    /// Time to live, in seconds.
    pub ttl: u32,
    /// The record data as printable ASCII text: `1.2.3.4` for A, `::1` for AAAA, the normalized
    /// target name for CNAME, NS, PTR and DNAME, `<preference> <name>` for MX, quoted strings for
    /// TXT, presentation format for other types hickory knows, `\# <len> <hex>` (RFC 3597) for
    /// the rest and for data hickory could not decode, and an empty string for empty data.
    pub data: String,
}

/// Why a DNS message could not be decoded at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// Fewer bytes than the 12-byte header.
    #[error("DNS message too short: {0} bytes, a header needs 12")]
    TooShort(usize),
    /// The bytes end before the end of the first question.
    #[error("DNS message cut short before the end of its first question")]
    Truncated,
    /// The first question is not valid DNS.
    #[error("malformed DNS question: {0}")]
    Malformed(String),
}

impl From<DecodeError> for DnsError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::InsufficientBytes => Self::Truncated,
            other => Self::Malformed(other.to_string()),
        }
    }
}

/// Decodes one whole DNS message (e.g. a UDP payload, or a TCP message without its length
/// prefix).
///
/// `complete == false` means `bytes` is only the start of a longer message (capture limit): the
/// header, the questions and as many answers as fit are decoded and [`DnsMessage::partial`] is
/// set. In either case later parts that cannot be decoded only make the result partial; the
/// call fails only when the header or the first question (if the header announces one) cannot
/// be read.
pub fn parse_message(bytes: &[u8], complete: bool) -> Result<DnsMessage, DnsError> {
    let (bytes, complete) = if bytes.len() > MAX_MESSAGE_LEN {
        (&bytes[..MAX_MESSAGE_LEN], false)
    } else {
        (bytes, complete)
    };
    if bytes.len() < HEADER_LEN {
        return Err(DnsError::TooShort(bytes.len()));
    }
    let mut dec = BinDecoder::new(bytes);
    let Header { metadata, counts } = Header::read(&mut dec)?;
    let mut msg = DnsMessage {
        id: metadata.id,
        response: metadata.message_type == MessageType::Response,
        opcode: u8::from(metadata.op_code),
        truncated: metadata.truncation,
        rcode: u16::from(metadata.response_code),
        questions: Vec::new(),
        answers: Vec::new(),
        partial: false,
    };

    let mut walk = Walk {
        bytes,
        dec,
        budget: MAX_ENTRIES_WALKED,
    };
    let walked_all = match walk.sections(&mut msg, counts) {
        Ok(()) => true,
        Err(Stop::FirstQuestion(e)) => return Err(e.into()),
        Err(Stop::Incomplete) => false,
    };
    msg.partial = !complete
        || !walked_all
        || msg.questions.len() < usize::from(counts.queries)
        || msg.answers.len() < usize::from(counts.answers);
    Ok(msg)
}

/// Why the walk through a message's sections stopped early.
enum Stop {
    /// The first question could not be read: the message is not decodable.
    FirstQuestion(DecodeError),
    /// Something after the first question could not be read, or the budget ran out.
    Incomplete,
}

/// A record's fixed part, with its data located but not decoded.
struct RawRecord {
    name: Name,
    rtype: u16,
    ttl: u32,
    rdata_start: usize,
    rdata_len: u16,
}

/// State of the walk through a message's sections.
struct Walk<'a> {
    bytes: &'a [u8],
    dec: BinDecoder<'a>,
    budget: usize,
}

impl<'a> Walk<'a> {
    /// Walks the questions and the three record sections, filling in `msg`.
    fn sections(&mut self, msg: &mut DnsMessage, counts: HeaderCounts) -> Result<(), Stop> {
        for i in 0..counts.queries {
            self.spend()?;
            match Query::read(&mut self.dec) {
                Ok(q) => {
                    if msg.questions.len() < MAX_QUESTIONS {
                        msg.questions.push(DnsQuestion {
                            name: name_text(q.name()),
                            qtype: u16::from(q.query_type()),
                            qclass: u16::from(q.query_class()),
                        });
                    }
                }
                Err(e) if i == 0 => return Err(Stop::FirstQuestion(e)),
                Err(_) => return Err(Stop::Incomplete),
            }
        }
        for _ in 0..counts.answers {
            let rec = self.record()?;
            if msg.answers.len() < MAX_ANSWERS {
                msg.answers.push(DnsAnswer {
                    name: name_text(&rec.name),
                    rtype: rec.rtype,
                    ttl: rec.ttl,
                    data: rdata_text(self.bytes, rec.rdata_start, rec.rdata_len, rec.rtype),
                });
            }
        }
        for _ in 0..counts.authorities {
            self.record()?;
        }
        let mut opt_seen = false;
        for _ in 0..counts.additionals {
            let rec = self.record()?;
            if rec.rtype == TYPE_OPT && rec.name.is_root() && !opt_seen {
                // EDNS: the TTL field holds the upper 8 bits of the 12-bit response code.
                opt_seen = true;
                let low = (msg.rcode & 0x000F) as u8;
                let high = (rec.ttl >> 24) as u8;
                msg.rcode = u16::from(ResponseCode::from(high, low));
            }
        }
        Ok(())
    }

    /// Takes one entry from the budget of questions and records to look at.
    fn spend(&mut self) -> Result<(), Stop> {
        if self.budget == 0 {
            return Err(Stop::Incomplete);
        }
        self.budget -= 1;
        Ok(())
    }

    /// Reads one resource record's fixed part and steps over its data.
    fn record(&mut self) -> Result<RawRecord, Stop> {
        self.spend()?;
        read_record(&mut self.dec).map_err(|_| Stop::Incomplete)
    }
}

fn read_record(dec: &mut BinDecoder<'_>) -> Result<RawRecord, DecodeError> {
    let name = Name::read(dec)?;
    let rtype = dec.read_u16()?.unverified(/* any type is fine */);
    let _class = dec.read_u16()?.unverified(/* not used */);
    let ttl = dec.read_u32()?.unverified(/* any TTL is fine */);
    let rdata_len = dec.read_u16()?.unverified(/* checked by read_slice below */);
    let rdata_start = dec.index();
    dec.read_slice(usize::from(rdata_len))?;
    Ok(RawRecord {
        name,
        rtype,
        ttl,
        rdata_start,
        rdata_len,
    })
}

/// Turns a record's data into text (see [`DnsAnswer::data`]). `bytes` is the whole message, which
/// compressed names in the data may point into; the caller has checked that the data lies
/// within it.
fn rdata_text(bytes: &[u8], start: usize, len: u16, rtype: u16) -> String {
    if len == 0 {
        return String::new();
    }
    let end = start + usize::from(len);
    let Some(data) = bytes.get(start..end) else {
        return String::new();
    };
    // A view of the message that ends with this record's data: nothing can be read past it.
    let view = &bytes[..end];
    let mut dec = BinDecoder::new(view);
    if dec.read_slice(start).is_err() {
        return generic_rdata(data);
    }
    let text = match rtype {
        TYPE_DNAME => match Name::read(&mut dec) {
            Ok(name) if dec.index() == end => Some(name_text(&name)),
            _ => None,
        },
        // hickory's OPT has no text form, and its ANAME code is really a private-use code.
        0 | TYPE_OPT | TYPE_HICKORY_ANAME => None,
        _ => RData::read(&mut dec, RecordType::from(rtype), Restrict::new(len))
            .ok()
            .and_then(|rdata| known_rdata_text(&rdata)),
    };
    match text {
        Some(text) => cap(printable_ascii(&text)),
        None => generic_rdata(data),
    }
}

/// Text for data hickory decoded, or `None` where the generic form is better.
fn known_rdata_text(rdata: &RData) -> Option<String> {
    let text = match rdata {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(aaaa) => aaaa.0.to_string(),
        RData::CNAME(name) => name_text(&name.0),
        RData::NS(name) => name_text(&name.0),
        RData::PTR(name) => name_text(&name.0),
        RData::MX(mx) => format!("{} {}", mx.preference, name_text(&mx.exchange)),
        RData::SRV(srv) => format!(
            "{} {} {} {}",
            srv.priority,
            srv.weight,
            srv.port,
            name_text(&srv.target)
        ),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            name_text(&soa.mname),
            name_text(&soa.rname),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        RData::TXT(txt) => txt_text(txt),
        RData::SVCB(svcb) | RData::HTTPS(HTTPS(svcb)) => svcb_text(svcb)?,
        RData::NULL(_) | RData::Unknown { .. } | RData::OPT(_) | RData::Update0(_) => return None,
        other => {
            // hickory's presentation form; its Display may fail (OPT does), so no to_string().
            let mut s = String::new();
            write!(s, "{other}").ok()?;
            s
        }
    };
    Some(text)
}

/// TXT data as space-separated quoted strings with `"` and `\` escaped and other bytes outside
/// printable ASCII as `\DDD`.
fn txt_text(txt: &TXT) -> String {
    let mut out = String::new();
    for (i, part) in txt.txt_data.iter().enumerate() {
        if out.len() > MAX_DATA_LEN {
            break;
        }
        if i > 0 {
            out.push(' ');
        }
        out.push('"');
        for &b in part.iter() {
            match b {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                0x20..=0x7e => out.push(char::from(b)),
                _ => push_decimal_escape(&mut out, b),
            }
        }
        out.push('"');
    }
    out
}

/// SVCB/HTTPS data: `<priority> <target> key=value...`, the target as a normalized name.
fn svcb_text(svcb: &SVCB) -> Option<String> {
    let mut out = format!("{} {}", svcb.svc_priority, name_text(&svcb.target_name));
    for (key, value) in &svcb.svc_params {
        match value {
            SvcParamValue::NoDefaultAlpn => write!(out, " {key}").ok()?,
            SvcParamValue::Alpn(alpn) => write!(out, " {key}={}", alpn.0.join(",")).ok()?,
            other => write!(out, " {key}={other}").ok()?,
        }
    }
    Some(out)
}

/// RFC 3597 generic form: `\# <len> <hex>`, the hex cut to fit [`MAX_DATA_LEN`].
fn generic_rdata(data: &[u8]) -> String {
    let shown = &data[..data.len().min(MAX_DATA_LEN / 2)];
    let mut out = format!("\\# {} ", data.len());
    for b in shown {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    cap(out)
}

/// Keeps printable ASCII and writes every other byte of the UTF-8 text as `\DDD`.
fn printable_ascii(s: &str) -> String {
    if s.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (0x20..=0x7e).contains(&b) {
            out.push(char::from(b));
        } else {
            push_decimal_escape(&mut out, b);
        }
    }
    out
}

/// Cuts an ASCII string to [`MAX_DATA_LEN`] bytes, marking the cut with `...`.
fn cap(mut s: String) -> String {
    if s.len() > MAX_DATA_LEN {
        let mut at = MAX_DATA_LEN - 3;
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
        s.push_str("...");
    }
    s
}

fn push_decimal_escape(out: &mut String, b: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "\\{b:03}");
}

/// A wire name as normalized ASCII presentation text.
fn name_text(name: &Name) -> String {
    normalize_name(&octal_escapes_to_decimal(&name.to_ascii()))
}

/// hickory's `to_ascii` writes bytes that are not printable ASCII as `\` and three *octal*
/// digits; RFC 1035 (and dig, BIND, Wireshark) use decimal. It never escapes a digit by itself
/// (digits are safe in labels), so a backslash followed by three digits is always such an escape.
fn octal_escapes_to_decimal(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1..i + 4) {
            Some(&[d0, d1, d2])
                if [d0, d1, d2].iter().all(|d| (b'0'..=b'7').contains(d)) && d0 <= b'3' =>
            {
                let value = (d0 - b'0') * 64 + (d1 - b'0') * 8 + (d2 - b'0');
                out.extend_from_slice(format!("\\{value:03}").as_bytes());
                i += 4;
            }
            _ => {
                // A single-character escape such as `\.` or `\\`: copy both characters.
                out.push(b'\\');
                if let Some(&next) = b.get(i + 1) {
                    out.push(next);
                }
                i += 2;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Splits a TCP segment payload into DNS messages by their 2-byte length prefixes.
///
/// Returns the messages found, in order: every message that lies wholly in `bytes`, and a last
/// message that runs past the end of `bytes` (cut by the end of the segment or by the capture
/// limit) decoded with `complete == false` if at least its header and first question are there.
/// Stops at the first thing that does not look like the start of a message, so a segment that
/// does not start at a message boundary (a continuation of a large message) yields nothing in
/// nearly all cases. A message is only accepted when its length prefix is at least 12, its
/// header counts fit in that length, it has at least one question, its opcode is assigned, the
/// reserved Z bit is clear and its first question decodes with a known class.
///
/// `complete` says whether `bytes` is the whole segment payload; a message running past the end
/// of `bytes` is partial either way, so it does not change the result today and is taken so the
/// caller can pass the capture flag through.
pub fn parse_tcp_segment(bytes: &[u8], complete: bool) -> Vec<DnsMessage> {
    let _ = complete;
    let mut out = Vec::new();
    let mut rest = bytes;
    while out.len() < MAX_TCP_MESSAGES {
        let Some((prefix, body)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*prefix));
        let whole = body.len() >= len;
        let msg_bytes = if whole { &body[..len] } else { body };
        match parse_tcp_message(len, msg_bytes) {
            Some(msg) => out.push(msg),
            None => break,
        }
        if !whole {
            break;
        }
        rest = &body[len..];
    }
    out
}

/// Decodes one DNS-over-TCP message whose length prefix said `declared_len`, from `bytes`
/// (the message without its prefix: all of it, or its first part when it was cut short),
/// with the checks [`parse_tcp_segment`] applies to tell a message from something else.
/// `None` when it does not look like a message.
pub fn parse_tcp_message(declared_len: usize, bytes: &[u8]) -> Option<DnsMessage> {
    let whole = bytes.len() >= declared_len;
    let bytes = if whole { &bytes[..declared_len] } else { bytes };
    if !plausible_tcp_message(declared_len, bytes) {
        return None;
    }
    parse_message(bytes, whole)
        .ok()
        .filter(|msg| msg.questions.first().is_some_and(|q| known_class(q.qclass)))
}

/// Whether `bytes` may start a DNS-over-TCP message: its length prefix and header pass the
/// checks [`parse_tcp_segment`] applies; `true` when it is too short to tell (less than the
/// prefix and a header).
pub fn may_start_tcp_message(bytes: &[u8]) -> bool {
    match bytes.split_first_chunk::<2>() {
        Some((prefix, body)) if body.len() >= HEADER_LEN => {
            plausible_tcp_message(usize::from(u16::from_be_bytes(*prefix)), body)
        }
        _ => true,
    }
}

/// Checks a TCP message's declared length and header before decoding it.
fn plausible_tcp_message(declared_len: usize, bytes: &[u8]) -> bool {
    if declared_len < HEADER_LEN || bytes.len() < HEADER_LEN {
        return false;
    }
    let opcode = (bytes[2] >> 3) & 0x0F;
    // 0 Query, 1 IQuery, 2 Status, 4 Notify, 5 Update, 6 DSO.
    if !matches!(opcode, 0 | 1 | 2 | 4 | 5 | 6) || bytes[3] & 0x40 != 0 {
        return false;
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
    let questions = count(4);
    let records = count(6) + count(8) + count(10);
    questions >= 1
        && HEADER_LEN + questions * MIN_QUESTION_LEN + records * MIN_RECORD_LEN <= declared_len
}

/// IN, CH, HS, NONE, ANY.
fn known_class(class: u16) -> bool {
    matches!(class, 1 | 3 | 4 | 254 | 255)
}

/// The mnemonic of a record type: `A`, `AAAA`, `CNAME`, `TXT`, `HTTPS`, ..., and `TYPE<n>`
/// (RFC 3597) for types without one.
pub fn type_name(rtype: u16) -> String {
    match RecordType::from(rtype) {
        // hickory names 0 "ZERO" and gives "ANAME" a private-use code.
        RecordType::Unknown(_) | RecordType::ZERO | RecordType::ANAME => extra_type_name(rtype)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("TYPE{rtype}")),
        known => known.to_string(),
    }
}

/// IANA mnemonics for types hickory does not know.
fn extra_type_name(rtype: u16) -> Option<&'static str> {
    Some(match rtype {
        3 => "MD",
        4 => "MF",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        11 => "WKS",
        14 => "MINFO",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        22 => "NSAP",
        23 => "NSAP-PTR",
        26 => "PX",
        27 => "GPOS",
        29 => "LOC",
        30 => "NXT",
        31 => "EID",
        32 => "NIMLOC",
        34 => "ATMA",
        36 => "KX",
        38 => "A6",
        40 => "SINK",
        42 => "APL",
        45 => "IPSECKEY",
        49 => "DHCID",
        55 => "HIP",
        56 => "NINFO",
        57 => "RKEY",
        58 => "TALINK",
        63 => "ZONEMD",
        99 => "SPF",
        100 => "UINFO",
        101 => "UID",
        102 => "GID",
        103 => "UNSPEC",
        104 => "NID",
        105 => "L32",
        106 => "L64",
        107 => "LP",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY",
        253 => "MAILB",
        254 => "MAILA",
        256 => "URI",
        258 => "AVC",
        259 => "DOA",
        260 => "AMTRELAY",
        32768 => "TA",
        32769 => "DLV",
        _ => return None,
    })
}

/// The IANA mnemonic of a response code (`NoError`, `NXDomain`, ...), `Unknown` for codes
/// without one. 16 is `BADVERS` (its meaning in a message's header/EDNS response code;
/// `BADSIG` shares the number inside TSIG records).
pub fn rcode_name(rcode: u16) -> &'static str {
    match rcode {
        0 => "NoError",
        1 => "FormErr",
        2 => "ServFail",
        3 => "NXDomain",
        4 => "NotImp",
        5 => "Refused",
        6 => "YXDomain",
        7 => "YXRRSet",
        8 => "NXRRSet",
        9 => "NotAuth",
        10 => "NotZone",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => "Unknown",
    }
}

/// Normalizes a name for matching and output: ASCII lower case (undoing DNS 0x20 mixed case)
/// and no trailing dot; an escaped dot at the end (`\.`) is part of the last label and is kept.
/// The root name (`.`) stays `.`.
pub fn normalize_name(name: &str) -> String {
    if name == "." {
        return ".".to_owned();
    }
    let mut s = name.to_ascii_lowercase();
    if s.ends_with('.') {
        let backslashes = s[..s.len() - 1]
            .bytes()
            .rev()
            .take_while(|&b| b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            s.pop();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::str::FromStr;

    use hickory_proto::{
        op::{Edns, Message, OpCode},
        rr::{
            Label, Record,
            rdata::{
                A, AAAA, CNAME, MX, NULL,
                svcb::{Alpn, SvcParamKey},
            },
        },
    };

    fn name(s: &str) -> Name {
        Name::from_str(s).expect("test name")
    }

    fn query_bytes(qname: Name, qtype: RecordType, id: u16) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(qname, qtype));
        m.to_vec().expect("encode")
    }

    fn response(qname: &str, qtype: RecordType, rcode: ResponseCode) -> Message {
        let mut m = Message::new(0xbeef, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.add_query(Query::query(name(qname), qtype));
        m
    }

    fn with_prefix(msg: &[u8]) -> Vec<u8> {
        let mut v = (msg.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(msg);
        v
    }

    /// A response with many TXT answers, larger than the 2048-byte capture.
    fn big_response() -> Vec<u8> {
        let mut m = response("big.ngrok.io.", RecordType::TXT, ResponseCode::NoError);
        for i in 0..60 {
            let text = format!("record {i:02} {}", "x".repeat(60));
            m.add_answer(Record::from_rdata(
                name("big.ngrok.io."),
                60,
                RData::TXT(TXT::new(vec![text])),
            ));
        }
        m.to_vec().expect("encode")
    }

    /// A response mixing record types, used as the seed for mutation fuzzing.
    fn mixed_response() -> Vec<u8> {
        let mut m = response("www.Example.com.", RecordType::A, ResponseCode::NoError);
        m.add_answer(Record::from_rdata(
            name("www.example.com."),
            300,
            RData::CNAME(CNAME(name("edge.Tunnel.ngrok.io."))),
        ));
        m.add_answer(Record::from_rdata(
            name("edge.tunnel.ngrok.io."),
            60,
            RData::A(A(Ipv4Addr::new(3, 4, 5, 6))),
        ));
        m.add_answer(Record::from_rdata(
            name("edge.tunnel.ngrok.io."),
            60,
            RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
        ));
        m.add_answer(Record::from_rdata(
            name("example.com."),
            60,
            RData::MX(MX::new(10, name("mail.example.com."))),
        ));
        m.add_answer(Record::from_rdata(
            name("example.com."),
            60,
            RData::TXT(TXT::new(vec!["v=spf1 -all".into()])),
        ));
        m.add_answer(Record::from_rdata(
            name("example.com."),
            60,
            RData::HTTPS(HTTPS(SVCB::new(
                1,
                Name::root(),
                vec![(
                    SvcParamKey::Alpn,
                    SvcParamValue::Alpn(Alpn(vec!["h2".into(), "h3".into()])),
                )],
            ))),
        ));
        m.set_edns(Edns::new());
        m.to_vec().expect("encode")
    }

    /// Tiny deterministic PRNG (xorshift64*) for the fuzz loops.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.next() as u8;
            }
        }
    }

    /// Multiplies the fuzz loops' rounds: `DNS_FUZZ_SCALE=100 cargo test --release ...` runs a
    /// long fuzz session; the default keeps the debug test run short.
    fn fuzz_scale() -> usize {
        std::env::var("DNS_FUZZ_SCALE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// The fuzz loops' PRNG seed: `base`, changed by `DNS_FUZZ_SEED` for a different run.
    fn fuzz_seed(base: u64) -> Rng {
        let extra: u64 = std::env::var("DNS_FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Rng((base ^ extra.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1)
    }

    /// Every string a decoded message holds must be printable ASCII and bounded.
    fn assert_sane(msg: &DnsMessage) {
        assert!(msg.questions.len() <= MAX_QUESTIONS);
        assert!(msg.answers.len() <= MAX_ANSWERS);
        let printable = |s: &str| s.bytes().all(|b| (0x20..=0x7e).contains(&b));
        for q in &msg.questions {
            assert!(printable(&q.name), "{:?}", q.name);
            assert!(q.name.len() <= 4 * 255, "{:?}", q.name);
        }
        for a in &msg.answers {
            assert!(printable(&a.name), "{:?}", a.name);
            assert!(printable(&a.data), "{:?}", a.data);
            assert!(a.data.len() <= MAX_DATA_LEN);
        }
    }

    #[test]
    fn query_a() {
        let bytes = query_bytes(name("abc.ngrok.io."), RecordType::A, 0x1234);
        let msg = parse_message(&bytes, true).unwrap();
        assert_eq!(msg.id, 0x1234);
        assert!(!msg.response);
        assert_eq!(msg.opcode, 0);
        assert!(!msg.truncated);
        assert!(!msg.partial);
        assert_eq!(msg.rcode, 0);
        assert_eq!(
            msg.questions,
            vec![DnsQuestion {
                name: "abc.ngrok.io".into(),
                qtype: 1,
                qclass: 1
            }]
        );
        assert!(msg.answers.is_empty());
        assert_eq!(type_name(msg.questions[0].qtype), "A");
    }

    #[test]
    fn query_aaaa_mixed_case_and_trailing_dot() {
        let bytes = query_bytes(name("AbC.NgRoK.Io"), RecordType::AAAA, 7);
        let msg = parse_message(&bytes, true).unwrap();
        assert_eq!(&*msg.questions[0].name, "abc.ngrok.io");
        assert_eq!(msg.questions[0].qtype, 28);
        assert_eq!(type_name(28), "AAAA");
        // Whether or not the name given to the encoder was fully qualified, the wire form is.
        let fqdn = query_bytes(name("AbC.NgRoK.Io."), RecordType::AAAA, 7);
        assert_eq!(fqdn, bytes);
    }

    #[test]
    fn query_root() {
        let bytes = query_bytes(Name::root(), RecordType::NS, 1);
        let msg = parse_message(&bytes, true).unwrap();
        assert_eq!(&*msg.questions[0].name, ".");
        assert_eq!(type_name(msg.questions[0].qtype), "NS");
    }

    #[test]
    fn query_unknown_type() {
        let bytes = query_bytes(name("x.example."), RecordType::Unknown(65534), 1);
        let msg = parse_message(&bytes, true).unwrap();
        assert_eq!(msg.questions[0].qtype, 65534);
        assert_eq!(type_name(65534), "TYPE65534");
    }

    #[test]
    fn escaped_label_bytes() {
        // One label holding dots must not read like three labels.
        let dotted = Name::from_labels(vec![
            Label::from_raw_bytes(b"abc.ngrok.io").unwrap(),
            Label::from_raw_bytes(b"Evil").unwrap(),
        ])
        .unwrap();
        let msg = parse_message(&query_bytes(dotted, RecordType::A, 1), true).unwrap();
        assert_eq!(&*msg.questions[0].name, r"abc\.ngrok\.io.evil");

        // Control, space and high bytes come out as decimal \DDD; a backslash as \\.
        let odd = Name::from_labels(vec![
            Label::from_raw_bytes(b"a\x00b c\xff\\").unwrap(),
            Label::from_raw_bytes(b"io").unwrap(),
        ])
        .unwrap();
        let msg = parse_message(&query_bytes(odd, RecordType::A, 1), true).unwrap();
        assert_eq!(&*msg.questions[0].name, r"a\000b\032c\255\\.io");

        // Punycode stays punycode.
        let idn = name("xn--bcher-kva.example.");
        let msg = parse_message(&query_bytes(idn, RecordType::A, 1), true).unwrap();
        assert_eq!(&*msg.questions[0].name, "xn--bcher-kva.example");

        // A label ending in a dot keeps its escaped dot after normalizing.
        let trailing = Name::from_labels(vec![Label::from_raw_bytes(b"end.").unwrap()]).unwrap();
        let msg = parse_message(&query_bytes(trailing, RecordType::A, 1), true).unwrap();
        assert_eq!(&*msg.questions[0].name, r"end\.");
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_name("AbC.NgRoK.Io."), "abc.ngrok.io");
        assert_eq!(normalize_name("abc.ngrok.io"), "abc.ngrok.io");
        assert_eq!(normalize_name("."), ".");
        assert_eq!(normalize_name(""), "");
        assert_eq!(normalize_name(r"a\."), r"a\.");
        assert_eq!(normalize_name(r"a\\."), r"a\\");
        assert_eq!(normalize_name("ÄBC."), "Äbc");
        assert_eq!(
            octal_escapes_to_decimal(r"a\377\040\\101\."),
            r"a\255\032\\101\."
        );
    }

    #[test]
    fn response_answers() {
        let bytes = mixed_response();
        let msg = parse_message(&bytes, true).unwrap();
        assert!(msg.response);
        assert!(!msg.partial);
        assert_eq!(msg.id, 0xbeef);
        assert_eq!(&*msg.questions[0].name, "www.example.com");
        let got: Vec<(&str, String, u32, &str)> = msg
            .answers
            .iter()
            .map(|a| (a.name.as_str(), type_name(a.rtype), a.ttl, a.data.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "www.example.com",
                    "CNAME".into(),
                    300,
                    "edge.tunnel.ngrok.io"
                ),
                ("edge.tunnel.ngrok.io", "A".into(), 60, "3.4.5.6"),
                ("edge.tunnel.ngrok.io", "AAAA".into(), 60, "::1"),
                ("example.com", "MX".into(), 60, "10 mail.example.com"),
                ("example.com", "TXT".into(), 60, "\"v=spf1 -all\""),
                ("example.com", "HTTPS".into(), 60, "1 . alpn=h2,h3"),
            ]
        );
    }

    #[test]
    fn rcodes() {
        for (code, want) in [
            (ResponseCode::NXDomain, "NXDomain"),
            (ResponseCode::ServFail, "ServFail"),
            (ResponseCode::Refused, "Refused"),
        ] {
            let bytes = response("gone.ngrok.io.", RecordType::A, code)
                .to_vec()
                .unwrap();
            let msg = parse_message(&bytes, true).unwrap();
            assert_eq!(rcode_name(msg.rcode), want);
            assert!(msg.answers.is_empty());
        }
        assert_eq!(rcode_name(0), "NoError");
        assert_eq!(rcode_name(1), "FormErr");
        assert_eq!(rcode_name(9), "NotAuth");
        assert_eq!(rcode_name(16), "BADVERS");
        assert_eq!(rcode_name(23), "BADCOOKIE");
        assert_eq!(rcode_name(12), "Unknown");
        assert_eq!(rcode_name(4095), "Unknown");
    }

    #[test]
    fn edns_extended_rcode() {
        // BADVERS (16) only fits with the OPT record's upper bits.
        let mut m = response("x.ngrok.io.", RecordType::A, ResponseCode::BADVERS);
        m.set_edns(Edns::new());
        let msg = parse_message(&m.to_vec().unwrap(), true).unwrap();
        assert_eq!(msg.rcode, 16);
        assert_eq!(rcode_name(msg.rcode), "BADVERS");

        // OPT with NXDomain: the low bits stay.
        let mut m = response("x.ngrok.io.", RecordType::A, ResponseCode::NXDomain);
        m.set_edns(Edns::new());
        let bytes = m.to_vec().unwrap();
        let msg = parse_message(&bytes, true).unwrap();
        assert_eq!(msg.rcode, 3);
        assert!(!msg.partial);

        // Without the OPT record (cut off), only the header's 4 bits are known.
        let mut m = response("x.ngrok.io.", RecordType::A, ResponseCode::BADVERS);
        m.set_edns(Edns::new());
        let bytes = m.to_vec().unwrap();
        let msg = parse_message(&bytes[..bytes.len() - 11], false).unwrap();
        assert_eq!(msg.rcode, 0);
        assert!(msg.partial);
    }

    #[test]
    fn tc_bit() {
        let mut m = response("big.ngrok.io.", RecordType::TXT, ResponseCode::NoError);
        m.metadata.truncation = true;
        let msg = parse_message(&m.to_vec().unwrap(), true).unwrap();
        assert!(msg.truncated);
        assert!(!msg.partial);
    }

    #[test]
    fn other_record_types() {
        let mut m = response("x.example.", RecordType::ANY, ResponseCode::NoError);
        m.add_answer(Record::from_rdata(
            name("x.example."),
            1,
            RData::Unknown {
                code: RecordType::Unknown(65534),
                rdata: NULL::with(vec![1, 2, 0xff]),
            },
        ));
        m.add_answer(Record::from_rdata(
            name("x.example."),
            1,
            RData::TXT(TXT::from_bytes(vec![b"a\"b\\c\x01", b"second"])),
        ));
        // Empty data (the RFC 2136 form).
        m.add_answer(Record::update0(name("x.example."), 1, RecordType::A));
        let msg = parse_message(&m.to_vec().unwrap(), true).unwrap();
        let data: Vec<&str> = msg.answers.iter().map(|a| a.data.as_str()).collect();
        assert_eq!(data, vec![r"\# 3 0102ff", r#""a\"b\\c\001" "second""#, ""]);
    }

    #[test]
    fn bad_record_data_is_shown_generically() {
        // An A record with 5 bytes of data: hickory rejects it, the next record still decodes.
        let mut b = query_bytes(name("a.b."), RecordType::A, 9);
        b[2] |= 0x80; // response
        b[7] = 2; // ancount
        let record = |b: &mut Vec<u8>, rdata: &[u8]| {
            b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5]);
            b.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            b.extend_from_slice(rdata);
        };
        record(&mut b, &[1, 2, 3, 4, 5]);
        record(&mut b, &[9, 9, 9, 9]);
        let msg = parse_message(&b, true).unwrap();
        assert!(!msg.partial);
        assert_eq!(msg.answers[0].data, r"\# 5 0102030405");
        assert_eq!(msg.answers[1].data, "9.9.9.9");
        assert_eq!(&*msg.answers[1].name, "a.b");
    }

    #[test]
    fn answer_cap() {
        let mut m = response("many.example.", RecordType::A, ResponseCode::NoError);
        for i in 0..100u32 {
            m.add_answer(Record::from_rdata(
                name("many.example."),
                1,
                RData::A(A(Ipv4Addr::from(i))),
            ));
        }
        let msg = parse_message(&m.to_vec().unwrap(), true).unwrap();
        assert_eq!(msg.answers.len(), MAX_ANSWERS);
        assert_eq!(msg.answers[63].data, "0.0.0.63");
        assert!(msg.partial);
    }

    #[test]
    fn capture_cut_large_response() {
        let full = big_response();
        assert!(full.len() > 2048);
        let msg = parse_message(&full[..2048], false).unwrap();
        assert!(msg.partial);
        assert_eq!(&*msg.questions[0].name, "big.ngrok.io");
        assert_eq!(type_name(msg.questions[0].qtype), "TXT");
        assert!(!msg.answers.is_empty() && msg.answers.len() < 60);
        for (i, a) in msg.answers.iter().enumerate() {
            assert_eq!(&*a.name, "big.ngrok.io");
            assert!(a.data.starts_with(&format!("\"record {i:02} ")));
        }
        // The full message decodes completely.
        let whole = parse_message(&full, true).unwrap();
        assert!(!whole.partial);
        assert_eq!(whole.answers.len(), 60);
        // complete == false always marks partial, even if everything happened to fit.
        assert!(parse_message(&full, false).unwrap().partial);
    }

    #[test]
    fn every_prefix_of_a_response() {
        let full = mixed_response();
        let question_end = 12 + "www.example.com.".len() + 1 + 4;
        for len in 0..=full.len() {
            let result = parse_message(&full[..len], false);
            if len < 12 {
                assert_eq!(result, Err(DnsError::TooShort(len)), "len {len}");
            } else if len < question_end {
                assert_eq!(result, Err(DnsError::Truncated), "len {len}");
            } else {
                let msg = result.unwrap();
                assert!(msg.partial);
                assert_eq!(msg.questions.len(), 1);
                assert!(msg.answers.len() <= 6);
                assert_sane(&msg);
            }
            // Claiming it is complete must not change anything but the error/partial flags.
            if let Ok(msg) = parse_message(&full[..len], true) {
                assert_eq!(msg.partial, len < full.len());
            }
        }
    }

    #[test]
    fn short_inputs() {
        let q = query_bytes(name("abc.ngrok.io."), RecordType::A, 1);
        for len in 0..=12 {
            for complete in [true, false] {
                let r = parse_message(&q[..len], complete);
                if len < 12 {
                    assert_eq!(r, Err(DnsError::TooShort(len)));
                } else {
                    assert_eq!(r, Err(DnsError::Truncated));
                }
            }
        }
        // A bare header with no questions is a (degenerate) message.
        let msg = parse_message(&[0u8; 12], true).unwrap();
        assert!(msg.questions.is_empty() && !msg.partial);
    }

    fn header(qd: u16, an: u16) -> Vec<u8> {
        let mut b = vec![0xab, 0xcd, 0x81, 0x80];
        b.extend_from_slice(&qd.to_be_bytes());
        b.extend_from_slice(&an.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 0]);
        b
    }

    #[test]
    fn hostile_compression_loops() {
        // Question name is a pointer to itself.
        let mut b = header(1, 0);
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(
            parse_message(&b, true),
            Err(DnsError::Malformed(_))
        ));

        // Two pointers to each other (the first points forward).
        let mut b = header(1, 0);
        b.extend_from_slice(&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(
            parse_message(&b, true),
            Err(DnsError::Malformed(_))
        ));

        // A label followed by a pointer back to that label's start.
        let mut b = header(1, 0);
        b.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(
            parse_message(&b, true),
            Err(DnsError::Malformed(_))
        ));

        // Answer owner names pointing at each other, after a good question.
        let mut b = header(1, 2);
        b.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]); // question at 12..19
        let first = b.len();
        b.extend_from_slice(&[0xc0, (first + 14) as u8, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0]);
        b.extend_from_slice(&[0xc0, first as u8, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0]);
        let msg = parse_message(&b, true).unwrap();
        assert_eq!(&*msg.questions[0].name, "a");
        assert!(msg.answers.is_empty());
        assert!(msg.partial);

        // A CNAME whose data points at itself.
        let mut b = header(1, 1);
        b.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
        b.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 1, 0, 2]);
        let at = b.len() as u8;
        b.extend_from_slice(&[0xc0, at]);
        let msg = parse_message(&b, true).unwrap();
        assert_eq!(msg.answers[0].data, format!(r"\# 2 c0{at:02x}"));
    }

    #[test]
    fn hostile_pointer_out_of_bounds() {
        let mut b = header(1, 0);
        b.extend_from_slice(&[0xff, 0xff, 0, 1, 0, 1]);
        assert!(matches!(
            parse_message(&b, true),
            Err(DnsError::Malformed(_))
        ));
        // A pointer byte at the very end.
        let mut b = header(1, 0);
        b.push(0xc0);
        assert_eq!(parse_message(&b, true), Err(DnsError::Truncated));
        // A CNAME whose data is a pointer past the end of its data.
        let mut b = header(1, 1);
        b.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
        b.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 1, 0, 2, 0x3f, 0xff]);
        let msg = parse_message(&b, true).unwrap();
        assert_eq!(msg.answers[0].data, r"\# 2 3fff");
    }

    #[test]
    fn hostile_labels_and_names() {
        // Label length bytes 64 and up are not labels (0x40 and 0x80 are reserved codes).
        for code in [64u8, 0x80, 0xbf] {
            let mut b = header(1, 0);
            b.push(code);
            b.extend(std::iter::repeat_n(b'a', 70));
            b.extend_from_slice(&[0, 0, 1, 0, 1]);
            assert!(
                matches!(parse_message(&b, true), Err(DnsError::Malformed(_))),
                "code {code}"
            );
        }
        // 63 is fine.
        let mut b = header(1, 0);
        b.push(63);
        b.extend(std::iter::repeat_n(b'a', 63));
        b.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse_message(&b, true).unwrap().questions[0].name.len(), 63);

        // Name longer than 255 bytes: five 63-byte labels.
        let mut b = header(1, 0);
        for _ in 0..5 {
            b.push(63);
            b.extend(std::iter::repeat_n(b'a', 63));
        }
        b.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(matches!(
            parse_message(&b, true),
            Err(DnsError::Malformed(_))
        ));

        // Over 255 bytes only through a pointer: 3 labels (192 bytes) + pointer to 3 more.
        let mut b = header(2, 0);
        for _ in 0..3 {
            b.push(63);
            b.extend(std::iter::repeat_n(b'b', 63));
        }
        b.extend_from_slice(&[0, 0, 1, 0, 1]);
        for _ in 0..2 {
            b.push(63);
            b.extend(std::iter::repeat_n(b'c', 63));
        }
        b.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let msg = parse_message(&b, true).unwrap();
        assert_eq!(msg.questions.len(), 1);
        assert!(msg.partial);
    }

    #[test]
    fn hostile_counts() {
        // qdcount 65535 and nothing else.
        for complete in [true, false] {
            assert_eq!(
                parse_message(&header(65535, 65535), complete),
                Err(DnsError::Truncated)
            );
        }
        // One good question, then absurd answer counts.
        let mut b = header(1, 65535);
        b.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
        let msg = parse_message(&b, true).unwrap();
        assert_eq!(msg.questions.len(), 1);
        assert!(msg.answers.is_empty() && msg.partial);

        // 65535 tiny root questions that are all there: capped (the walk's budget bounds the
        // work; its cost is the bench's and the dns_message fuzz target's to measure, not a
        // test's to time).
        let mut b = header(65535, 0);
        for _ in 0..65535 / 5 {
            b.extend_from_slice(&[0, 0, 1, 0, 1]);
        }
        let msg = parse_message(&b, true).unwrap();
        assert_eq!(msg.questions.len(), MAX_QUESTIONS);
        assert!(msg.partial);
    }

    #[test]
    fn hostile_pointer_chains_are_bounded() {
        // The longest chain of backward pointers the 14-bit pointer range allows (~8k hops),
        // hidden in a record's data, then as many records as fit whose owner names start at the
        // chain's far end. hickory follows each chain in full; MAX_ENTRIES_WALKED bounds how
        // many chains are followed.
        let mut b = header(1, 0);
        b.extend_from_slice(&[0, 0, 1, 0, 1]); // question: the root name, at offset 12
        b.extend_from_slice(&[0xc0, 12, 0, 10, 0, 1, 0, 0, 0, 1]); // NULL record...
        let rdlen_at = b.len();
        b.extend_from_slice(&[0, 0]);
        let chain_start = b.len();
        b.extend_from_slice(&[0xc0, 12]);
        while b.len() < 0x3ffe {
            let prev = (b.len() - 2) as u16;
            b.extend_from_slice(&(0xc000 | prev).to_be_bytes());
        }
        let rdlen = (b.len() - chain_start) as u16;
        b[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        let last = (b.len() - 2) as u16;
        let mut answers: u16 = 1;
        while b.len() + 12 <= MAX_MESSAGE_LEN {
            b.extend_from_slice(&(0xc000 | last).to_be_bytes());
            b.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 10, 0, 0, 1]);
            answers += 1;
        }
        b[6..8].copy_from_slice(&answers.to_be_bytes());
        let msg = parse_message(&b, true).unwrap();
        assert_eq!(&*msg.questions[0].name, ".");
        assert_eq!(msg.answers.len(), MAX_ANSWERS);
        assert!(
            msg.answers[0]
                .data
                .starts_with(&format!("\\# {rdlen} c00c"))
        );
        assert!(msg.answers[0].data.ends_with("..."));
        // Every chain ends at the root name.
        assert_eq!(&*msg.answers[1].name, ".");
        assert_eq!(msg.answers[1].data, "10.0.0.1");
        assert!(msg.partial);
        assert_sane(&msg);
    }

    #[test]
    fn tcp_single_and_double() {
        let q = query_bytes(name("abc.ngrok.io."), RecordType::A, 1);
        let r = mixed_response();
        let one = parse_tcp_segment(&with_prefix(&q), true);
        assert_eq!(one.len(), 1);
        assert_eq!(&*one[0].questions[0].name, "abc.ngrok.io");
        assert!(!one[0].partial);

        let mut two = with_prefix(&q);
        two.extend(with_prefix(&r));
        let msgs = parse_tcp_segment(&two, true);
        assert_eq!(msgs.len(), 2);
        assert!(!msgs[0].response && msgs[1].response);
        assert_eq!(msgs[1].answers.len(), 6);
        assert!(!msgs[1].partial);
    }

    #[test]
    fn tcp_cut_message() {
        let q = query_bytes(name("abc.ngrok.io."), RecordType::A, 1);
        let big = big_response();
        let mut seg = with_prefix(&q);
        seg.extend(with_prefix(&big));
        seg.truncate(1400);
        let msgs = parse_tcp_segment(&seg, true);
        assert_eq!(msgs.len(), 2);
        assert!(!msgs[0].partial);
        assert!(msgs[1].partial);
        assert_eq!(&*msgs[1].questions[0].name, "big.ngrok.io");
        assert!(!msgs[1].answers.is_empty());

        // Cut inside the second message's header or question: only the first comes back.
        let first = 2 + q.len();
        for cut in first..first + 2 + 12 + 14 {
            let msgs = parse_tcp_segment(&seg[..cut], false);
            assert_eq!(msgs.len(), 1, "cut {cut}");
        }
    }

    #[test]
    fn tcp_continuations_and_bad_prefixes() {
        let big = with_prefix(&big_response());
        // Every offset inside the message: a segment starting there is a continuation.
        let mut accepted = 0;
        for off in 1..big.len() - 2 {
            let end = (off + 1400).min(big.len());
            let msgs = parse_tcp_segment(&big[off..end], true);
            accepted += msgs.len();
            for m in &msgs {
                assert_sane(m);
            }
        }
        assert_eq!(accepted, 0);
        assert_eq!(parse_tcp_segment(&big[..], true).len(), 1);

        // Prefix of 0, prefix below 12, prefix larger than the segment with a cut header.
        let q = query_bytes(name("abc.ngrok.io."), RecordType::A, 1);
        let mut zero = vec![0, 0];
        zero.extend_from_slice(&q);
        assert!(parse_tcp_segment(&zero, true).is_empty());
        let mut small = vec![0, 11];
        small.extend_from_slice(&q);
        assert!(parse_tcp_segment(&small, true).is_empty());
        let mut huge = vec![0xff, 0xff];
        huge.extend_from_slice(&q[..10]);
        assert!(parse_tcp_segment(&huge, true).is_empty());
        // Prefix larger than the segment but the question is there: partial.
        let mut huge = vec![0xff, 0xff];
        huge.extend_from_slice(&q);
        // The header counts (1 question) fit in 65535 bytes, so this is a plausible cut message.
        let msgs = parse_tcp_segment(&huge, true);
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].partial);
        // Empty and 1-byte segments.
        assert!(parse_tcp_segment(&[], true).is_empty());
        assert!(parse_tcp_segment(&[0], false).is_empty());
        // Counts that cannot fit in the declared length.
        let mut lying = q.clone();
        lying[6..8].copy_from_slice(&100u16.to_be_bytes());
        assert!(parse_tcp_segment(&with_prefix(&lying), true).is_empty());
    }

    #[test]
    fn type_names() {
        for (code, want) in [
            (1, "A"),
            (2, "NS"),
            (5, "CNAME"),
            (6, "SOA"),
            (12, "PTR"),
            (15, "MX"),
            (16, "TXT"),
            (28, "AAAA"),
            (33, "SRV"),
            (39, "DNAME"),
            (41, "OPT"),
            (64, "SVCB"),
            (65, "HTTPS"),
            (99, "SPF"),
            (255, "ANY"),
            (257, "CAA"),
            (0, "TYPE0"),
            (65305, "TYPE65305"),
            (65534, "TYPE65534"),
            (1000, "TYPE1000"),
        ] {
            assert_eq!(type_name(code), want, "type {code}");
        }
    }

    #[test]
    fn dns_error_display() {
        assert_eq!(
            DnsError::TooShort(3).to_string(),
            "DNS message too short: 3 bytes, a header needs 12"
        );
        let e: Box<dyn std::error::Error> = Box::new(DnsError::Truncated);
        assert!(e.to_string().contains("first question"));
    }

    #[test]
    fn fuzz_random_buffers() {
        let mut rng = fuzz_seed(0x9e37_79b9_7f4a_7c15);
        let mut buf = vec![0u8; 600];
        let mut ok = 0usize;
        let mut tcp_msgs = 0usize;
        for i in 0..200_000 * fuzz_scale() {
            let len = rng.below(601);
            rng.fill(&mut buf[..len]);
            if i % 2 == 0 && len >= 12 {
                // Make some of them look more like DNS: small counts.
                buf[4] = 0;
                buf[5] = 1;
                buf[6] = 0;
                buf[7] = (rng.next() % 4) as u8;
            }
            if let Ok(msg) = parse_message(&buf[..len], rng.next() & 1 == 0) {
                assert_sane(&msg);
                ok += 1;
            }
            let msgs = parse_tcp_segment(&buf[..len], true);
            tcp_msgs += msgs.len();
            msgs.iter().for_each(assert_sane);
        }
        // Random bytes almost never look like a TCP message start.
        assert!(
            tcp_msgs < 200 * fuzz_scale(),
            "{tcp_msgs} random TCP messages accepted"
        );
        assert!(ok > 0);
    }

    #[test]
    fn fuzz_mutations() {
        const ROUNDS: usize = 30_000;
        // Parsing is slow in debug builds (~75 us for the mixed response), so this does fewer
        // rounds than the random-buffer loop, mostly on the small seeds where a mutation is
        // likely to hit a structural byte.
        let seed_msgs = [
            mixed_response(),
            query_bytes(name("abc.ngrok.io."), RecordType::A, 1),
            big_response()[..2048].to_vec(),
        ];
        let mut rng = fuzz_seed(0x0123_4567_89ab_cdef);
        let mut decoded = 0usize;
        for i in 0..ROUNDS * fuzz_scale() {
            let seed = &seed_msgs[[0, 0, 0, 1, 1, 0, 0, 0, 0, 2][i % 10]];
            let mut b = seed.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(b.len());
                match rng.below(4) {
                    0 => b[at] = rng.next() as u8,
                    1 => b[at] ^= 1 << rng.below(8),
                    2 => b[at] = [0, 0x3f, 0x40, 0xc0, 0xff][rng.below(5)],
                    _ => b.truncate(at),
                }
                if b.is_empty() {
                    break;
                }
            }
            if let Ok(msg) = parse_message(&b, i % 3 != 0) {
                assert_sane(&msg);
                decoded += 1;
            }
            if i % 8 == 0 {
                parse_tcp_segment(&with_prefix(&b), true)
                    .iter()
                    .for_each(assert_sane);
            }
        }
        assert!(decoded > ROUNDS * fuzz_scale() / 2, "{decoded}");
    }

    #[test]
    fn fuzz_record_data_per_type() {
        // Random data under every type hickory decodes, to exercise its data readers and
        // Display impls through our formatting.
        let types: Vec<u16> = vec![
            1, 2, 5, 6, 12, 13, 15, 16, 28, 33, 35, 37, 39, 41, 44, 52, 53, 61, 62, 64, 65, 250,
            257, 65305, 0, 10, 255, 251, 252, 46, 48,
        ];
        let mut rng = fuzz_seed(42);
        let mut base = header(1, 1);
        base.extend_from_slice(&[1, b'a', 0, 0, 1, 0, 1]);
        let mut rdata = [0u8; 80];
        let mut count = 0;
        for &t in &types {
            for _ in 0..1000 * fuzz_scale() {
                let len = rng.below(rdata.len() + 1);
                rng.fill(&mut rdata[..len]);
                if len >= 2 && rng.below(4) == 0 {
                    // Sprinkle a valid backward pointer to the question name.
                    let at = rng.below(len - 1);
                    rdata[at] = 0xc0;
                    rdata[at + 1] = 12;
                }
                let mut b = base.clone();
                b.extend_from_slice(&[0xc0, 12]);
                b.extend_from_slice(&t.to_be_bytes());
                b.extend_from_slice(&[0, 1, 0, 0, 0, 9]);
                b.extend_from_slice(&(len as u16).to_be_bytes());
                b.extend_from_slice(&rdata[..len]);
                let msg = parse_message(&b, true).unwrap();
                assert_sane(&msg);
                assert_eq!(msg.answers.len(), 1);
                assert_eq!(msg.answers[0].rtype, t);
                assert!(!msg.partial);
                count += 1;
            }
        }
        assert_eq!(count, types.len() * 1000 * fuzz_scale());
    }
}
