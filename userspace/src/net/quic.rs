//! The ClientHello inside a QUIC client's Initial packets (QUIC v1, RFC 9000/9001, and v2,
//! RFC 9369). Initial packets are protected with keys that anyone can derive from the
//! Destination Connection ID of the client's first Initial (RFC 9001, section 5.2): HKDF
//! (hkdf, sha2), AES-128 header protection (aes) and AES-128-GCM (aes-gcm), all RustCrypto.
//! The CRYPTO frames of every Initial in the flow's first datagrams (coalesced packets, a
//! ClientHello split over several frames, out of order, or over two packets, as Chrome sends
//! them) are put back in order and read by `tls::client_hello_from_handshake`.
//!
//! Hostile input: every length is checked against what is there, a packet that does not
//! decrypt is skipped, frames other than those an Initial may carry end the packet's reading,
//! and the reassembled stream is bounded by `tls::MAX_HANDSHAKE`. Nothing panics.

use aes::{
    Aes128,
    cipher::{BlockEncrypt, KeyInit as _, generic_array::GenericArray},
};
use aes_gcm::{
    Aes128Gcm,
    aead::{AeadInPlace, Nonce, Tag},
};
use hkdf::Hkdf;
use sha2::Sha256;

use crate::net::tls::{self, ClientHello, MAX_HANDSHAKE};

/// QUIC version 1 (RFC 9000).
pub const VERSION_1: u32 = 0x0000_0001;
/// QUIC version 2 (RFC 9369).
pub const VERSION_2: u32 = 0x6b33_43cf;
/// Initial salts (RFC 9001, section 5.2; RFC 9369, section 3.3.1).
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// Connection IDs are at most 20 bytes (RFC 9000, section 17.2).
const MAX_CID_LEN: usize = 20;
/// AEAD tag and header-protection sample lengths.
const TAG_LEN: usize = 16;
const SAMPLE_LEN: usize = 16;
/// Packets read per datagram at most (coalesced packets).
const MAX_PACKETS: usize = 8;
/// Frame types an Initial packet may carry (RFC 9000, section 12.4).
const FRAME_PADDING: u64 = 0x00;
const FRAME_PING: u64 = 0x01;
const FRAME_ACK: u64 = 0x02;
const FRAME_ACK_ECN: u64 = 0x03;
const FRAME_CRYPTO: u64 = 0x06;
const FRAME_CONNECTION_CLOSE: u64 = 0x1c;

/// Why no ClientHello could be read from a flow's first datagrams.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuicError {
    #[error("not a QUIC long-header packet")]
    NotQuic,
    #[error("QUIC version {0:#010x}, not one this sensor can read")]
    Version(u32),
    #[error("no client Initial packet")]
    NoInitial,
    #[error("malformed QUIC packet")]
    Malformed,
    #[error("the Initial packet does not decrypt")]
    Decrypt,
    #[error("the CRYPTO stream does not start at offset 0")]
    Gap,
    #[error("TLS: {0}")]
    Tls(#[from] tls::TlsError),
}

/// The keys that protect a client's Initial packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialKeys {
    pub key: [u8; 16],
    pub iv: [u8; 12],
    pub hp: [u8; 16],
}

impl InitialKeys {
    /// The client's keys for `version`, from the Destination Connection ID of its first
    /// Initial packet; `None` for a version whose keys are not known here.
    pub fn client(version: u32, dcid: &[u8]) -> Option<InitialKeys> {
        let (salt, prefix): (&[u8], &[u8]) = match version {
            VERSION_1 => (&SALT_V1, b"quic "),
            VERSION_2 => (&SALT_V2, b"quicv2 "),
            _ => return None,
        };
        let (initial, _) = Hkdf::<Sha256>::extract(Some(salt), dcid);
        let mut client = [0u8; 32];
        expand_label(&initial, b"client in", &mut client)?;
        let mut keys = InitialKeys {
            key: [0; 16],
            iv: [0; 12],
            hp: [0; 16],
        };
        expand_label(&client, &[prefix, b"key"].concat(), &mut keys.key)?;
        expand_label(&client, &[prefix, b"iv"].concat(), &mut keys.iv)?;
        expand_label(&client, &[prefix, b"hp"].concat(), &mut keys.hp)?;
        Some(keys)
    }
}

/// TLS 1.3's HKDF-Expand-Label (RFC 8446, section 7.1) with an empty context.
fn expand_label(secret: &[u8], label: &[u8], out: &mut [u8]) -> Option<()> {
    let prk = Hkdf::<Sha256>::from_prk(secret).ok()?;
    let mut info = Vec::with_capacity(4 + 6 + label.len());
    info.extend((out.len() as u16).to_be_bytes());
    info.push((6 + label.len()) as u8);
    info.extend(b"tls13 ");
    info.extend(label);
    info.push(0);
    prk.expand(&info, out).ok()
}

/// Reads a variable-length integer (RFC 9000, section 16).
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let first = *b.get(*at)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*at..at.checked_add(len)?)?;
    let mut v = (first & 0x3f) as u64;
    for &x in &bytes[1..] {
        v = (v << 8) | x as u64;
    }
    *at += len;
    Some(v)
}

/// The long header of a packet, up to its (protected) packet number.
struct LongHeader<'a> {
    version: u32,
    initial: bool,
    dcid: &'a [u8],
    /// Offset of the packet number.
    pn_offset: usize,
    /// Offset just past the packet (where a coalesced packet may begin).
    end: usize,
}

fn long_header(p: &[u8]) -> Result<LongHeader<'_>, QuicError> {
    let first = *p.first().ok_or(QuicError::NotQuic)?;
    if first & 0x80 == 0 {
        return Err(QuicError::NotQuic);
    }
    let version = u32::from_be_bytes(
        p.get(1..5)
            .ok_or(QuicError::Malformed)?
            .try_into()
            .unwrap_or_default(),
    );
    let kind = (first >> 4) & 0x03;
    let initial = match version {
        VERSION_1 => kind == 0,
        VERSION_2 => kind == 1,
        0 => return Err(QuicError::Version(0)), // version negotiation
        v => return Err(QuicError::Version(v)),
    };
    let retry = match version {
        VERSION_1 => kind == 3,
        _ => kind == 0,
    };
    let mut at = 5;
    let dcid_len = *p.get(at).ok_or(QuicError::Malformed)? as usize;
    at += 1;
    if dcid_len > MAX_CID_LEN {
        return Err(QuicError::Malformed);
    }
    let dcid = p.get(at..at + dcid_len).ok_or(QuicError::Malformed)?;
    at += dcid_len;
    let scid_len = *p.get(at).ok_or(QuicError::Malformed)? as usize;
    at += 1 + scid_len;
    if scid_len > MAX_CID_LEN || at > p.len() {
        return Err(QuicError::Malformed);
    }
    if retry {
        // No length: a Retry fills the rest of the datagram.
        return Ok(LongHeader {
            version,
            initial: false,
            dcid,
            pn_offset: p.len(),
            end: p.len(),
        });
    }
    if initial {
        let token_len = varint(p, &mut at).ok_or(QuicError::Malformed)?;
        at = at
            .checked_add(usize::try_from(token_len).map_err(|_| QuicError::Malformed)?)
            .filter(|&a| a <= p.len())
            .ok_or(QuicError::Malformed)?;
    }
    let length = varint(p, &mut at).ok_or(QuicError::Malformed)?;
    let end = usize::try_from(length)
        .ok()
        .and_then(|l| at.checked_add(l))
        .filter(|&e| e <= p.len())
        .ok_or(QuicError::Malformed)?;
    Ok(LongHeader {
        version,
        initial,
        dcid,
        pn_offset: at,
        end,
    })
}

/// Removes the protection of the Initial packet `p` (whose header is `h`) and returns its
/// frames.
fn open(p: &[u8], h: &LongHeader<'_>, keys: &InitialKeys) -> Result<Vec<u8>, QuicError> {
    let sample_at = h.pn_offset + 4;
    let sample = p
        .get(sample_at..sample_at + SAMPLE_LEN)
        .filter(|_| sample_at + SAMPLE_LEN <= h.end)
        .ok_or(QuicError::Malformed)?;
    let mut mask = GenericArray::clone_from_slice(sample);
    Aes128::new(GenericArray::from_slice(&keys.hp)).encrypt_block(&mut mask);
    let first = p[0] ^ (mask[0] & 0x0f);
    let pn_len = (first & 0x03) as usize + 1;
    let payload_at = h.pn_offset + pn_len;
    if payload_at + TAG_LEN > h.end {
        return Err(QuicError::Malformed);
    }
    let mut header = p[..payload_at].to_vec();
    header[0] = first;
    let mut pn: u64 = 0;
    for i in 0..pn_len {
        header[h.pn_offset + i] ^= mask[1 + i];
        pn = (pn << 8) | header[h.pn_offset + i] as u64;
    }
    let mut nonce = keys.iv;
    for (n, b) in nonce[4..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= b;
    }
    let (ciphertext, tag) = p[payload_at..h.end].split_at(h.end - payload_at - TAG_LEN);
    let mut buffer = ciphertext.to_vec();
    Aes128Gcm::new(GenericArray::from_slice(&keys.key))
        .decrypt_in_place_detached(
            Nonce::<Aes128Gcm>::from_slice(&nonce),
            &header,
            &mut buffer,
            Tag::<Aes128Gcm>::from_slice(tag),
        )
        .map_err(|_| QuicError::Decrypt)?;
    Ok(buffer)
}

/// The CRYPTO frames of a decrypted Initial payload, as (offset, data). Reading stops at a
/// frame an Initial may not carry.
pub fn crypto_frames(payload: &[u8]) -> Result<Vec<(u64, &[u8])>, QuicError> {
    let mut out = Vec::new();
    let mut at = 0;
    let bad = QuicError::Malformed;
    while at < payload.len() {
        let kind = varint(payload, &mut at).ok_or(bad.clone())?;
        match kind {
            FRAME_PADDING | FRAME_PING => {}
            FRAME_ACK | FRAME_ACK_ECN => {
                // Largest acknowledged, delay, range count, first range, then the ranges.
                for _ in 0..2 {
                    varint(payload, &mut at).ok_or(bad.clone())?;
                }
                let ranges = varint(payload, &mut at).ok_or(bad.clone())?;
                varint(payload, &mut at).ok_or(bad.clone())?;
                // Each range is two varints of at least a byte: a count beyond that is a lie.
                if ranges > (payload.len() - at) as u64 / 2 {
                    return Err(bad);
                }
                for _ in 0..ranges * 2 {
                    varint(payload, &mut at).ok_or(bad.clone())?;
                }
                if kind == FRAME_ACK_ECN {
                    for _ in 0..3 {
                        varint(payload, &mut at).ok_or(bad.clone())?;
                    }
                }
            }
            FRAME_CRYPTO => {
                let offset = varint(payload, &mut at).ok_or(bad.clone())?;
                let len = varint(payload, &mut at).ok_or(bad.clone())?;
                let data = usize::try_from(len)
                    .ok()
                    .and_then(|l| payload.get(at..at.checked_add(l)?))
                    .ok_or(bad.clone())?;
                at += data.len();
                out.push((offset, data));
            }
            FRAME_CONNECTION_CLOSE => {
                for _ in 0..2 {
                    varint(payload, &mut at).ok_or(bad.clone())?;
                }
                let len = varint(payload, &mut at).ok_or(bad.clone())?;
                at = usize::try_from(len)
                    .ok()
                    .and_then(|l| at.checked_add(l))
                    .filter(|&a| a <= payload.len())
                    .ok_or(bad.clone())?;
            }
            _ => break,
        }
    }
    Ok(out)
}

/// The CRYPTO stream from offset 0, as far as it is contiguous, from `pieces` (any order,
/// overlaps allowed), at most `MAX_HANDSHAKE` bytes.
fn reassemble(mut pieces: Vec<(u64, Vec<u8>)>) -> Vec<u8> {
    pieces.sort_by_key(|(offset, _)| *offset);
    let mut stream: Vec<u8> = Vec::new();
    for (offset, data) in pieces {
        let Ok(offset) = usize::try_from(offset) else {
            break;
        };
        if offset > stream.len() || offset >= MAX_HANDSHAKE {
            break;
        }
        let end = offset.saturating_add(data.len()).min(MAX_HANDSHAKE);
        if end > stream.len() {
            stream.extend_from_slice(&data[stream.len() - offset..end - offset]);
        }
    }
    stream
}

/// What the client Initial packets of a flow's first datagrams say: its QUIC version and
/// ClientHello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initial {
    pub version: u32,
    pub client_hello: ClientHello,
}

/// Reads the ClientHello from a UDP flow's first datagrams (client to server, in order).
pub fn client_hello(datagrams: &[&[u8]]) -> Result<Initial, QuicError> {
    let mut keys: Option<(u32, InitialKeys)> = None;
    let mut pieces: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut first_error = None;
    let mut seen_quic = false;
    for datagram in datagrams {
        let mut rest: &[u8] = datagram;
        for _ in 0..MAX_PACKETS {
            // Padding after the last packet, or a short-header packet.
            if rest.first().is_none_or(|b| b & 0x80 == 0) {
                break;
            }
            let h = match long_header(rest) {
                Ok(h) => h,
                Err(e) => {
                    first_error.get_or_insert(e);
                    break;
                }
            };
            seen_quic = true;
            if h.initial {
                // The keys come from the first Initial's Destination Connection ID.
                if keys.is_none() {
                    keys = InitialKeys::client(h.version, h.dcid).map(|k| (h.version, k));
                }
                if let Some((version, k)) = &keys
                    && *version == h.version
                {
                    match open(rest, &h, k) {
                        Ok(payload) => match crypto_frames(&payload) {
                            Ok(frames) => {
                                pieces.extend(frames.into_iter().map(|(o, d)| (o, d.to_vec())))
                            }
                            Err(e) => {
                                first_error.get_or_insert(e);
                            }
                        },
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
            }
            rest = &rest[h.end..];
        }
    }
    let Some((version, _)) = keys else {
        return Err(if seen_quic {
            QuicError::NoInitial
        } else {
            first_error.unwrap_or(QuicError::NotQuic)
        });
    };
    if pieces.is_empty() {
        return Err(first_error.unwrap_or(QuicError::NoInitial));
    }
    let stream = reassemble(pieces);
    if stream.is_empty() {
        return Err(QuicError::Gap);
    }
    Ok(Initial {
        version,
        client_hello: tls::client_hello_from_handshake(&stream)?,
    })
}

/// Builds a client Initial packet holding `frames` (the inverse of the reading above), padded
/// to `pad_to` bytes: for tests and fuzzing, which need packets that decrypt.
pub fn protect_client_initial(
    version: u32,
    dcid: &[u8],
    packet_number: u32,
    frames: &[u8],
    pad_to: usize,
) -> Option<Vec<u8>> {
    let keys = InitialKeys::client(version, dcid)?;
    let kind: u8 = if version == VERSION_2 { 1 } else { 0 };
    let pn_len = 4;
    let mut header = vec![0xc0 | (kind << 4) | (pn_len as u8 - 1)];
    header.extend(version.to_be_bytes());
    header.push(dcid.len() as u8);
    header.extend(dcid);
    header.push(0); // no source connection id
    header.push(0); // no token
    // Padding frames (zeros) up to `pad_to`, with a 2-byte length field.
    let fixed = header.len() + 2 + pn_len + TAG_LEN;
    let mut plain = frames.to_vec();
    if fixed + plain.len() < pad_to {
        plain.resize(pad_to - fixed, 0);
    }
    let length = pn_len + plain.len() + TAG_LEN;
    if length >= 1 << 14 {
        return None;
    }
    header.extend((0x4000 | length as u16).to_be_bytes());
    let pn_offset = header.len();
    header.extend(packet_number.to_be_bytes());
    let mut nonce = keys.iv;
    for (n, b) in nonce[4..]
        .iter_mut()
        .zip((packet_number as u64).to_be_bytes())
    {
        *n ^= b;
    }
    let tag = Aes128Gcm::new(GenericArray::from_slice(&keys.key))
        .encrypt_in_place_detached(Nonce::<Aes128Gcm>::from_slice(&nonce), &header, &mut plain)
        .ok()?;
    let mut packet = header;
    packet.extend(plain);
    packet.extend(tag);
    let sample_at = pn_offset + 4;
    let mut mask = GenericArray::clone_from_slice(packet.get(sample_at..sample_at + SAMPLE_LEN)?);
    Aes128::new(GenericArray::from_slice(&keys.hp)).encrypt_block(&mut mask);
    packet[0] ^= mask[0] & 0x0f;
    for i in 0..pn_len {
        packet[pn_offset + i] ^= mask[1 + i];
    }
    Some(packet)
}

/// A CRYPTO frame of `data` at `offset`.
pub fn crypto_frame(offset: u64, data: &[u8]) -> Vec<u8> {
    let mut f = vec![FRAME_CRYPTO as u8];
    put_varint(&mut f, offset);
    put_varint(&mut f, data.len() as u64);
    f.extend(data);
    f
}

fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend((0x4000 | v as u16).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend((0x8000_0000 | v as u32).to_be_bytes());
    } else {
        out.extend((0xc000_0000_0000_0000 | v).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tls::tests::{alpn, client_hello as hello_msg, sni};

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 9001, appendix A.1, and RFC 9369, appendix A.1: the client's keys for the
    /// connection ID 0x8394c8f03e515708.
    #[test]
    fn keys_of_the_rfc_examples() {
        let dcid = hex("8394c8f03e515708");
        let v1 = InitialKeys::client(VERSION_1, &dcid).unwrap();
        assert_eq!(v1.key.to_vec(), hex("1f369613dd76d5467730efcbe3b1a22d"));
        assert_eq!(v1.iv.to_vec(), hex("fa044b2f42a3fd3b46fb255c"));
        assert_eq!(v1.hp.to_vec(), hex("9f50449e04a0e810283a1e9933adedd2"));
        let v2 = InitialKeys::client(VERSION_2, &dcid).unwrap();
        assert_eq!(v2.key.to_vec(), hex("8b1a0bc121284290a29e0971b5cd045d"));
        assert_eq!(v2.iv.to_vec(), hex("91f73e2351d8fa91660e909f"));
        assert_eq!(v2.hp.to_vec(), hex("45b95e15235d6f45a6b19cbcb0294ba9"));
        assert_eq!(InitialKeys::client(0xff00_001d, &dcid), None);
    }

    fn chrome_like(name: &str) -> Vec<u8> {
        // A ClientHello larger than one packet (a post-quantum key share).
        hello_msg(&[
            (
                51,
                vec![0x04, 0xc4, 0x11, 0xec, 0x04, 0xc0]
                    .into_iter()
                    .chain(vec![1; 1216])
                    .collect(),
            ),
            alpn(&["h3"]),
            sni(name),
        ])
    }

    #[test]
    fn client_hello_over_two_packets_in_scrambled_frames() {
        let msg = chrome_like("Agent.Example.NET");
        assert!(msg.len() > 1300);
        let dcid = [0x11; 8];
        // Frames out of order, with PING and PADDING between, over two datagrams; the second
        // datagram carries its Initial coalesced with a (0-RTT-like) long-header packet.
        let (a, b) = msg.split_at(700);
        let (b1, b2) = b.split_at(300);
        let mut frames1 = crypto_frame(700, b1);
        frames1.extend([FRAME_PING as u8, 0, 0]);
        frames1.extend(crypto_frame(0, a));
        let p1 = protect_client_initial(VERSION_1, &dcid, 0, &frames1, 1200).unwrap();
        let mut frames2 = vec![FRAME_ACK as u8, 0, 0, 0, 0];
        frames2.extend(crypto_frame(1000, b2));
        let mut d2 = protect_client_initial(VERSION_1, &dcid, 1, &frames2, 0).unwrap();
        d2.extend(protect_client_initial(VERSION_1, &dcid, 2, &[1], 0).unwrap()); // another
        let got = client_hello(&[&p1, &d2]).unwrap();
        assert_eq!(got.version, VERSION_1);
        assert_eq!(
            got.client_hello.server_name.as_deref(),
            Some("agent.example.net")
        );
        assert_eq!(got.client_hello.alpn, ["h3"]);
        assert!(got.client_hello.complete);
        // The first datagram alone: a ClientHello cut short, whose name (at its end) is not
        // there yet.
        let first = client_hello(&[&p1]).unwrap();
        assert!(!first.client_hello.complete);
        assert_eq!(first.client_hello.server_name, None);
    }

    #[test]
    fn version_2_and_errors() {
        let msg = hello_msg(&[sni("v2.example")]);
        let dcid = [7u8; 20];
        let p = protect_client_initial(VERSION_2, &dcid, 0, &crypto_frame(0, &msg), 1200).unwrap();
        let got = client_hello(&[&p]).unwrap();
        assert_eq!(got.version, VERSION_2);
        assert_eq!(got.client_hello.server_name.as_deref(), Some("v2.example"));
        // A flipped bit anywhere in the protected part: no decryption, no name.
        for i in [30, p.len() / 2, p.len() - 1] {
            let mut bad = p.clone();
            bad[i] ^= 1;
            assert!(client_hello(&[&bad]).is_err(), "bit flipped at {i}");
        }
        assert_eq!(client_hello(&[b"\x12\x34"]), Err(QuicError::NotQuic));
        assert_eq!(client_hello(&[]), Err(QuicError::NotQuic));
        let mut unknown = p.clone();
        unknown[1..5].copy_from_slice(&0x5a5a_5a5au32.to_be_bytes());
        assert_eq!(
            client_hello(&[&unknown]),
            Err(QuicError::Version(0x5a5a_5a5a))
        );
        // A CRYPTO stream that starts past offset 0.
        let late = protect_client_initial(VERSION_1, &dcid, 0, &crypto_frame(5, &msg), 0).unwrap();
        assert_eq!(client_hello(&[&late]), Err(QuicError::Gap));
        // Cut at every byte: never a panic; whole packets only decrypt.
        for n in 0..p.len() {
            assert!(client_hello(&[&p[..n]]).is_err(), "cut at {n}");
        }
    }

    /// tests/fixtures/quic/initial.bin: curl's ClientHello (tests/fixtures/client_hello/) in
    /// a QUIC v1 client Initial, as `protect_client_initial` builds it (deterministic: the keys
    /// come from the connection id). The bench's QUIC storm sends it. Rewritten when
    /// TUNNELWATCH_WRITE_FIXTURES is set.
    #[test]
    fn initial_fixture() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
        let hello = std::fs::read(format!("{dir}/client_hello/curl.bin")).unwrap();
        let dcid = hex("c0ffee0123456789");
        let built =
            protect_client_initial(VERSION_1, &dcid, 0, &crypto_frame(0, &hello[5..]), 1200)
                .unwrap();
        let path = format!("{dir}/quic/initial.bin");
        if std::env::var_os("TUNNELWATCH_WRITE_FIXTURES").is_some() {
            std::fs::create_dir_all(format!("{dir}/quic")).unwrap();
            std::fs::write(&path, &built).unwrap();
        }
        let fixture = std::fs::read(&path).unwrap();
        assert_eq!(fixture, built);
        let got = client_hello(&[&fixture]).unwrap();
        assert_eq!(
            got.client_hello.server_name.as_deref(),
            Some("connect.ngrok-agent.com")
        );
        assert_eq!(fixture.len(), 1200);
    }

    #[test]
    fn frames_with_lying_lengths() {
        assert_eq!(
            crypto_frames(&[FRAME_CRYPTO as u8, 0, 0x40]),
            Err(QuicError::Malformed)
        );
        // An ACK claiming 2^30 ranges.
        assert_eq!(
            crypto_frames(&[FRAME_ACK as u8, 0, 0, 0xbf, 0xff, 0xff, 0xff, 0]),
            Err(QuicError::Malformed)
        );
        // A CRYPTO frame at offset 2^62 - 1 is read, and then ignored by the reassembly.
        let mut f = vec![FRAME_CRYPTO as u8];
        put_varint(&mut f, (1 << 62) - 1);
        put_varint(&mut f, 1);
        f.push(0x01);
        let frames = crypto_frames(&f).unwrap();
        assert_eq!(frames, [((1u64 << 62) - 1, &[1u8][..])]);
        assert!(reassemble(vec![(frames[0].0, vec![1])]).is_empty());
        // Overlapping pieces.
        assert_eq!(
            reassemble(vec![
                (2, b"cdef".to_vec()),
                (0, b"abc".to_vec()),
                (1, b"b".to_vec())
            ]),
            b"abcdef"
        );
    }
}
