//! The "Plain LZ77" decompression of [MS-XCA] section 2.4 (Xpress without Huffman), in which
//! Windows writes the buffers of a compressed `.etl` file (`wpr` and relogged traces;
//! the buffer header's flag 0x40).
//!
//! Bounded: the output never grows past the limit the caller gives, and input that ends
//! inside a token or points before the output's start is an error.

/// Why a block did not decompress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lz77Error {
    /// A token reads past the input, or a match starts before the output.
    Corrupt,
    /// The output would pass the limit.
    TooLarge,
}

impl std::fmt::Display for Lz77Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lz77Error::Corrupt => "corrupt Xpress (plain LZ77) data",
            Lz77Error::TooLarge => "Xpress (plain LZ77) data decompresses past the buffer size",
        })
    }
}

fn byte(input: &[u8], at: usize) -> Result<usize, Lz77Error> {
    input
        .get(at)
        .map(|&b| usize::from(b))
        .ok_or(Lz77Error::Corrupt)
}

fn u16_at(input: &[u8], at: usize) -> Result<usize, Lz77Error> {
    Ok(byte(input, at)? | byte(input, at + 1)? << 8)
}

/// Decompresses `input`, producing at most `limit` bytes.
pub fn decompress(input: &[u8], limit: usize) -> Result<Vec<u8>, Lz77Error> {
    let mut out: Vec<u8> = Vec::with_capacity(limit.min(input.len().saturating_mul(4)));
    let mut at = 0usize;
    let mut flags = 0u32;
    let mut flag_count = 0u32;
    // Where the shared half-byte of the last 7-length match was (0: none pending).
    let mut half_byte_at = 0usize;
    loop {
        if flag_count == 0 {
            if at >= input.len() {
                return Ok(out);
            }
            let b = input.get(at..at + 4).ok_or(Lz77Error::Corrupt)?;
            flags = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            at += 4;
            flag_count = 32;
        }
        flag_count -= 1;
        if flags & (1 << flag_count) == 0 {
            // A literal; the input may end here (the flags' unused bits are then literals).
            let Some(&b) = input.get(at) else {
                return Ok(out);
            };
            if out.len() >= limit {
                return Err(Lz77Error::TooLarge);
            }
            out.push(b);
            at += 1;
            continue;
        }
        if at >= input.len() {
            return Ok(out);
        }
        let token = u16_at(input, at)?;
        at += 2;
        let offset = (token >> 3) + 1;
        let mut length = token & 7;
        if length == 7 {
            if half_byte_at == 0 {
                length = byte(input, at)? & 15;
                half_byte_at = at;
                at += 1;
            } else {
                length = byte(input, half_byte_at)? >> 4;
                half_byte_at = 0;
            }
            if length == 15 {
                length = byte(input, at)?;
                at += 1;
                if length == 255 {
                    length = u16_at(input, at)?;
                    at += 2;
                    if length == 0 {
                        let b = input.get(at..at + 4).ok_or(Lz77Error::Corrupt)?;
                        length = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
                        at += 4;
                    }
                    length = length.checked_sub(15 + 7).ok_or(Lz77Error::Corrupt)?;
                }
                length += 15;
            }
            length += 7;
        }
        length += 3;
        let start = out.len().checked_sub(offset).ok_or(Lz77Error::Corrupt)?;
        if out.len().saturating_add(length) > limit {
            return Err(Lz77Error::TooLarge);
        }
        // Byte by byte: a match may overlap what it writes.
        for i in 0..length {
            let b = out[start + i];
            out.push(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_specifications_examples_decompress() {
        // [MS-XCA] 3.1 "abcdefghijklmnopqrstuvwxyz": literals only.
        let mut a = vec![0x3f, 0, 0, 0];
        a.extend_from_slice(b"abcdefghijklmnopqrstuvwxyz");
        assert_eq!(decompress(&a, 1024).unwrap(), b"abcdefghijklmnopqrstuvwxyz");
        // [MS-XCA] 3.2: "abc" repeated to 300 bytes: three literals and one long match.
        let b = [
            0xff, 0xff, 0xff, 0x1f, 0x61, 0x62, 0x63, 0x17, 0x00, 0x0f, 0xff, 0x26, 0x01,
        ];
        let out = decompress(&b, 1024).unwrap();
        assert_eq!(out.len(), 300);
        assert!(out.chunks(3).all(|c| c == &b"abc"[..c.len()]));
    }

    #[test]
    fn hostile_input_is_refused_without_panic() {
        // A match before any output.
        assert_eq!(
            decompress(&[0, 0, 0, 0x80, 0x08, 0x00], 100),
            Err(Lz77Error::Corrupt)
        );
        // A long match past the limit.
        let b = [
            0xff, 0xff, 0xff, 0x1f, 0x61, 0x62, 0x63, 0x17, 0x00, 0x0f, 0xff, 0x26, 0x01,
        ];
        assert_eq!(decompress(&b, 100), Err(Lz77Error::TooLarge));
        // Cut inside a token or the flags.
        assert_eq!(decompress(&b[..9], 1024), Err(Lz77Error::Corrupt));
        assert_eq!(decompress(&b[..2], 1024), Err(Lz77Error::Corrupt));
        assert_eq!(decompress(&[], 1024), Ok(Vec::new()));
        // A 32-bit length below its bias.
        let c = [
            0, 0, 0, 0x40, b'a', 0x07, 0x00, 0x0f, 0xff, 0, 0, 0x05, 0, 0, 0,
        ];
        assert_eq!(decompress(&c, 1 << 20), Err(Lz77Error::Corrupt));
    }
}
