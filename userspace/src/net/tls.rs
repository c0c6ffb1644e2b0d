//! The server name and ALPN of a TLS ClientHello, read with tls-parser (rusticata): from the
//! first flight of a TCP connection (TLS records, [`client_hello_from_records`]) or from the
//! CRYPTO stream of a QUIC Initial (handshake messages without records,
//! [`client_hello_from_handshake`]).
//!
//! Hostile or cut input: a ClientHello spread over several records is put back together; one
//! cut short (the kernel side captures at most `FLIGHT_TCP_BYTES`) is read as far as it goes
//! (an extension that is whole is found wherever it is: browsers shuffle their order); an
//! extension tls-parser cannot read is skipped by its length; lengths that run past the end
//! stop the reading. Work is linear in the input and bounded by [`MAX_HANDSHAKE`].

use tls_parser::{
    TlsExtension, parse_tls_client_hello_extension, parse_tls_extension_unknown,
    parse_tls_handshake_client_hello, parse_tls_record_header,
};
use tunnelwatch_engine::dns::normalize_name;

/// TLS content type of handshake records, handshake type of a ClientHello.
const CONTENT_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
/// Extension type of Encrypted Client Hello (draft-ietf-tls-esni).
const EXT_ECH: u16 = 0xfe0d;
/// Bytes of handshake messages put back together at most.
pub const MAX_HANDSHAKE: usize = 64 * 1024;
/// ALPN protocols kept at most, and bytes of each.
pub const MAX_ALPN: usize = 16;
pub const MAX_ALPN_LEN: usize = 64;

/// What a ClientHello says about where the connection goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    /// The server name (SNI host_name), normalized like a DNS name (lower case, no trailing
    /// dot, other bytes than graphic ASCII escaped as `\DDD`); `None` without one.
    pub server_name: Option<String>,
    /// ALPN protocols offered, in order (printable ASCII; other bytes escaped as `\xHH`).
    pub alpn: Vec<String>,
    /// An Encrypted Client Hello extension is present: `server_name` is then the outer,
    /// public name, and the real one is hidden.
    pub ech: bool,
    /// The ClientHello was whole; when false, only the extensions before the cut were read.
    pub complete: bool,
}

/// Why no ClientHello could be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("not a TLS handshake")]
    NotHandshake,
    #[error("the first handshake message is not a ClientHello")]
    NotClientHello,
    #[error("the ClientHello is cut before its extensions")]
    Short,
    #[error("malformed ClientHello")]
    Malformed,
}

/// Reads the ClientHello from the start of a TCP stream: TLS handshake records, the first of
/// which begins the ClientHello (it may continue in later records).
pub fn client_hello_from_records(stream: &[u8]) -> Result<ClientHello, TlsError> {
    let mut handshake: Vec<u8> = Vec::new();
    let mut rest = stream;
    let mut whole_records = true;
    while !rest.is_empty() && handshake.len() < MAX_HANDSHAKE {
        let Ok((body, header)) = parse_tls_record_header(rest) else {
            // A record header cut short: nothing of its record is here.
            whole_records = rest.len() >= 5;
            break;
        };
        if header.record_type.0 != CONTENT_HANDSHAKE || header.version.0 >> 8 != 3 {
            if handshake.is_empty() {
                return Err(TlsError::NotHandshake);
            }
            break;
        }
        let len = header.len as usize;
        let take = len.min(body.len());
        handshake.extend_from_slice(&body[..take]);
        rest = &body[take..];
        if take < len {
            whole_records = false;
            break;
        }
        // Enough once the first message is whole.
        if message_len(&handshake).is_some_and(|n| handshake.len() >= n) {
            break;
        }
    }
    if handshake.is_empty() {
        return Err(TlsError::NotHandshake);
    }
    handshake.truncate(MAX_HANDSHAKE);
    let mut hello = client_hello_from_handshake(&handshake)?;
    hello.complete &=
        whole_records || message_len(&handshake).is_some_and(|n| handshake.len() >= n);
    Ok(hello)
}

/// Length of the first handshake message (header included), once its header is there.
fn message_len(handshake: &[u8]) -> Option<usize> {
    let h = handshake.get(..4)?;
    Some(4 + ((h[1] as usize) << 16 | (h[2] as usize) << 8 | h[3] as usize))
}

/// Reads the ClientHello from handshake messages (a QUIC CRYPTO stream, or the records'
/// contents): the first message must be a ClientHello; it may be cut short.
pub fn client_hello_from_handshake(handshake: &[u8]) -> Result<ClientHello, TlsError> {
    let Some(&kind) = handshake.first() else {
        return Err(TlsError::Short);
    };
    if kind != HANDSHAKE_CLIENT_HELLO {
        return Err(TlsError::NotClientHello);
    }
    let len = message_len(handshake).ok_or(TlsError::Short)?;
    let available = handshake.len().min(len).min(MAX_HANDSHAKE);
    let complete = handshake.len() >= len && len <= MAX_HANDSHAKE;
    let body = &handshake[4..available.max(4)];
    let (after, contents) = match parse_tls_handshake_client_hello(body) {
        Ok(v) => v,
        Err(tls_parser::Err::Incomplete(_)) => return Err(TlsError::Short),
        Err(_) if !complete => return Err(TlsError::Short),
        Err(_) => return Err(TlsError::Malformed),
    };
    let mut hello = ClientHello {
        complete,
        ..ClientHello::default()
    };
    // Without a whole extension block tls-parser gives none: read the part that is here.
    let (extensions, whole) = match contents.ext {
        Some(ext) => (ext, true),
        None if after.len() >= 2 => (&after[2..], false),
        None => (&[][..], after.is_empty()),
    };
    hello.complete &= whole;
    read_extensions(extensions, &mut hello);
    Ok(hello)
}

/// Reads every extension that is whole; skips, by its length, one tls-parser cannot read.
fn read_extensions(mut i: &[u8], hello: &mut ClientHello) {
    while !i.is_empty() {
        match parse_tls_client_hello_extension(i) {
            Ok((rest, ext)) => {
                take_extension(&ext, hello);
                i = rest;
            }
            // Malformed content: skip it by its framing (type, length).
            Err(_) => match parse_tls_extension_unknown(i) {
                Ok((rest, _)) => i = rest,
                Err(_) => {
                    // Cut short.
                    hello.complete = false;
                    break;
                }
            },
        }
    }
}

fn take_extension(ext: &TlsExtension<'_>, hello: &mut ClientHello) {
    match ext {
        TlsExtension::SNI(names) => {
            if hello.server_name.is_none()
                && let Some((_, name)) = names.iter().find(|(t, _)| t.0 == 0)
            {
                hello.server_name = server_name(name);
            }
        }
        TlsExtension::ALPN(protocols) => {
            for p in protocols
                .iter()
                .take(MAX_ALPN.saturating_sub(hello.alpn.len()))
            {
                hello.alpn.push(printable(p, MAX_ALPN_LEN));
            }
        }
        TlsExtension::Unknown(t, _) if t.0 == EXT_ECH => hello.ech = true,
        _ => {}
    }
}

/// A server name as DNS names are shown (the sensor's DNS decoder's form): lower case, no
/// trailing dot, bytes other than graphic ASCII as `\DDD`, a backslash as `\\`; `None`
/// when nothing is left.
fn server_name(raw: &[u8]) -> Option<String> {
    let mut raw = &raw[..raw.len().min(255)];
    // A fully qualified name's dot, or several: none is kept.
    while let [rest @ .., b'.'] = raw {
        raw = rest;
    }
    let mut text = String::with_capacity(raw.len());
    for &b in raw {
        match b {
            b'\\' => text.push_str("\\\\"),
            b if b.is_ascii_graphic() => text.push(b as char),
            b => text.push_str(&format!("\\{b:03}")),
        }
    }
    let name = normalize_name(&text);
    (!name.is_empty()).then_some(name)
}

/// Printable ASCII, other bytes as `\xHH`, at most `max` input bytes.
fn printable(raw: &[u8], max: usize) -> String {
    let mut s = String::with_capacity(raw.len().min(max));
    for &b in raw.iter().take(max) {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a ClientHello handshake message with the given extensions (type, data).
    pub(crate) fn client_hello(extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]); // random
        body.push(32);
        body.extend([9u8; 32]); // session id
        body.extend([0x00, 0x04, 0x13, 0x01, 0x13, 0x02]); // two cipher suites
        body.extend([0x01, 0x00]); // null compression
        let mut ext = Vec::new();
        for (t, data) in extensions {
            ext.extend(t.to_be_bytes());
            ext.extend((data.len() as u16).to_be_bytes());
            ext.extend(data);
        }
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut msg = vec![HANDSHAKE_CLIENT_HELLO];
        msg.extend(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend(body);
        msg
    }

    pub(crate) fn sni(name: &str) -> (u16, Vec<u8>) {
        let mut d = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        d.push(0);
        d.extend((name.len() as u16).to_be_bytes());
        d.extend(name.as_bytes());
        (0, d)
    }

    pub(crate) fn alpn(protocols: &[&str]) -> (u16, Vec<u8>) {
        let mut list = Vec::new();
        for p in protocols {
            list.push(p.len() as u8);
            list.extend(p.as_bytes());
        }
        let mut d = (list.len() as u16).to_be_bytes().to_vec();
        d.extend(list);
        (16, d)
    }

    fn grease() -> (u16, Vec<u8>) {
        (0x4a4a, vec![])
    }

    fn key_share(len: usize) -> (u16, Vec<u8>) {
        // One X25519MLKEM768-sized share: group 0x11ec, key of `len` bytes.
        let mut shares = vec![0x11, 0xec];
        shares.extend((len as u16).to_be_bytes());
        shares.extend(vec![0x42; len]);
        let mut d = (shares.len() as u16).to_be_bytes().to_vec();
        d.extend(shares);
        (51, d)
    }

    /// The message in TLS records of at most `max` bytes of content each.
    pub(crate) fn records(msg: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in msg.chunks(max) {
            out.extend([CONTENT_HANDSHAKE, 0x03, 0x01]);
            out.extend((chunk.len() as u16).to_be_bytes());
            out.extend(chunk);
        }
        out
    }

    #[test]
    fn name_and_alpn_wherever_they_are() {
        let orders = [
            vec![
                grease(),
                sni("Tunnel.Example.COM."),
                alpn(&["h2", "http/1.1"]),
                key_share(1216),
            ],
            vec![
                key_share(1216),
                alpn(&["h2", "http/1.1"]),
                grease(),
                sni("tunnel.example.com"),
            ],
        ];
        for exts in orders {
            let msg = client_hello(&exts);
            assert!(msg.len() > 1300, "larger than one MTU's segment");
            let want = ClientHello {
                server_name: Some("tunnel.example.com".into()),
                alpn: vec!["h2".into(), "http/1.1".into()],
                ech: false,
                complete: true,
            };
            assert_eq!(client_hello_from_handshake(&msg).unwrap(), want);
            assert_eq!(
                client_hello_from_records(&records(&msg, 16384)).unwrap(),
                want
            );
            // Spread over records of 100 bytes.
            assert_eq!(
                client_hello_from_records(&records(&msg, 100)).unwrap(),
                want
            );
        }
    }

    /// ClientHellos real clients sent (tests/fixtures/client_hello/README.md), read whole and
    /// split at every byte into two records' worth of TCP stream.
    #[test]
    fn real_clients() {
        let cases: [(&[u8], &str, &[&str]); 3] = [
            (
                include_bytes!("../../tests/fixtures/client_hello/openssl.bin"),
                "tunnel.us.ngrok.com",
                &["h2", "http/1.1"],
            ),
            (
                include_bytes!("../../tests/fixtures/client_hello/curl.bin"),
                "connect.ngrok-agent.com",
                &["h2", "http/1.1"],
            ),
            (
                include_bytes!("../../tests/fixtures/client_hello/python.bin"),
                "region1.v2.argotunnel.com",
                &["h2"],
            ),
        ];
        for (bytes, name, alpn) in cases {
            let h = client_hello_from_records(bytes).unwrap();
            assert_eq!(h.server_name.as_deref(), Some(name));
            assert_eq!(h.alpn, alpn);
            assert!(h.complete && !h.ech);
            // The same handshake message, re-cut into records of every size.
            let msg = &bytes[5..];
            for size in [1, 7, 100, 300] {
                assert_eq!(client_hello_from_records(&records(msg, size)).unwrap(), h);
            }
        }
    }

    #[test]
    fn without_name_with_ech_and_odd_bytes() {
        let msg = client_hello(&[alpn(&["cf-tunnel"]), (EXT_ECH, vec![0; 40])]);
        let h = client_hello_from_handshake(&msg).unwrap();
        assert_eq!(h.server_name, None);
        assert!(h.ech);
        assert_eq!(h.alpn, ["cf-tunnel"]);
        let msg = client_hello(&[sni("a b\u{7f}.example"), alpn(&["x\\y\u{1}"])]);
        let h = client_hello_from_handshake(&msg).unwrap();
        assert_eq!(h.server_name.as_deref(), Some("a\\032b\\127.example"));
        // Trailing dots go, all of them; a backslash is escaped; only dots is no name.
        for (raw, want) in [
            ("X.Example..", Some("x.example")),
            ("a\\.", Some("a\\\\")),
            ("...", None),
        ] {
            let h = client_hello_from_handshake(&client_hello(&[sni(raw)])).unwrap();
            assert_eq!(h.server_name.as_deref(), want, "{raw:?}");
        }
        assert_eq!(h.alpn, ["x\\x5cy\\x01"]);
    }

    #[test]
    fn cut_short_at_every_byte() {
        let msg = client_hello(&[alpn(&["h2"]), sni("early.example"), key_share(1216)]);
        let rec = records(&msg, 16384);
        let mut named_from = None;
        for n in 0..rec.len() {
            match client_hello_from_records(&rec[..n]) {
                Ok(h) => {
                    assert!(!h.complete, "cut at {n} of {} says complete", rec.len());
                    if h.server_name.is_some() {
                        named_from.get_or_insert(n);
                        assert_eq!(h.server_name.as_deref(), Some("early.example"));
                    }
                }
                Err(e) => assert!(
                    matches!(e, TlsError::Short | TlsError::NotHandshake),
                    "cut at {n}: {e}"
                ),
            }
        }
        // The name is read as soon as its extension is whole, long before the key share.
        let named_from = named_from.expect("a name from a cut ClientHello");
        assert!(named_from < 200, "{named_from}");
        assert!(client_hello_from_records(&rec).unwrap().complete);
    }

    #[test]
    fn not_tls_and_bogus_lengths() {
        assert_eq!(
            client_hello_from_records(b"GET / HTTP/1.1\r\n"),
            Err(TlsError::NotHandshake)
        );
        assert_eq!(client_hello_from_records(b""), Err(TlsError::NotHandshake));
        // A ServerHello.
        assert_eq!(
            client_hello_from_handshake(&[2, 0, 0, 1, 0]),
            Err(TlsError::NotClientHello)
        );
        // Lengths that claim far more than there is.
        let mut msg = client_hello(&[sni("x.example")]);
        msg[1] = 0xff;
        let h = client_hello_from_handshake(&msg).unwrap();
        assert!(!h.complete);
        assert_eq!(h.server_name.as_deref(), Some("x.example"));
        // A record of 2^16 - 1 bytes announced, 10 present.
        let mut rec = vec![0x16, 3, 1, 0xff, 0xff];
        rec.extend(&client_hello(&[sni("y.example")])[..10]);
        assert_eq!(client_hello_from_records(&rec), Err(TlsError::Short));
        // A malformed known extension is skipped; the name after it is found.
        let bad_alpn = (16, vec![0, 5, 9, 1]);
        let msg = client_hello(&[bad_alpn, sni("after.example")]);
        let h = client_hello_from_handshake(&msg).unwrap();
        assert_eq!(h.server_name.as_deref(), Some("after.example"));
    }
}
