//! Go build information: finding the blob the Go linker writes into every binary and decoding
//! it, in every layout Go has written since 1.13 (Go's `debug/buildinfo.readRawBuildInfo`
//! describes them; `cmd/link/internal/ld.(*Link).buildinfo` writes them):
//!
//! - a 32-byte header at a 16-byte aligned address: the magic `\xff Go buildinf:` (14 bytes),
//!   the pointer size (4 or 8) and a flags byte;
//! - Go 1.13 to 1.17 (flags bit 1 clear): two pointers follow, in the byte order of flags bit
//!   0 (1 = big endian), to the Go string headers (pointer, length) of `runtime.buildVersion`
//!   and `runtime.modinfo`, which are read through the executable's address mappings;
//! - Go 1.18 and later (flags bit 1 set): the two strings follow the header inline, each
//!   prefixed by its length as an unsigned varint.
//!
//! The module information is text framed by two 16-byte sentinels; its `path` line names the
//! main package and its `mod` line the main module.
//!
//! Where the blob is looked for comes from the format's reader (`elf.rs`, `pe.rs`); at most
//! [`SCAN_MAX`] bytes are scanned for it, and each string read is capped.

use crate::{
    Error,
    bounded::{Bounded, ReadAt},
    image::{Image, Mapping},
};

pub const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// Size of the header (magic, pointer size, flags, two pointers or padding).
pub const HEADER: usize = 32;
/// The header's address is a multiple of this.
pub const ALIGN: u64 = 16;
/// Flags: the pointers are big endian (pointer layout).
pub const FLAG_BIG_ENDIAN: u8 = 0x1;
/// Flags: the strings follow the header inline (Go 1.18+).
pub const FLAG_INLINE: u8 = 0x2;

/// Bytes of candidate data scanned for the header, in all. Go's own reader scans 64 KiB from
/// the start of the data; a binary linked by an external linker (cgo) may have it further in
/// (886 KiB into the data segment of a Go 1.17 c-shared library seen here).
pub const SCAN_MAX: u64 = 1 << 20;
/// Scanning reads this much at a time.
const CHUNK: u64 = 64 << 10;
/// Bytes read from the header on (the header and, inline, both strings).
pub const BLOB_MAX: u64 = 64 << 10;
/// Longest Go version string kept (`go1.16.15`; development builds run to about 80 bytes).
pub const VERSION_MAX: u64 = 256;
/// Longest module information read; its `path` and `mod` lines come first, so a longer one is
/// read in part.
pub const MODINFO_MAX: u64 = 64 << 10;
/// Size of each sentinel around the module information.
const SENTINEL: usize = 16;

/// The two strings of the blob.
#[derive(Debug, PartialEq, Eq)]
pub struct RawBuildInfo {
    pub version: String,
    /// The module information without its sentinels (empty for a binary built outside module
    /// mode).
    pub modinfo: String,
}

/// Finds and decodes the build information of `image`.
pub fn read<R: ReadAt + ?Sized>(
    image: &Image,
    f: &mut Bounded<'_, R>,
) -> Result<RawBuildInfo, Error> {
    let mut budget = SCAN_MAX;
    for window in &image.candidates {
        match scan(image, window, f, &mut budget)? {
            Some(found) => return Ok(found),
            None if budget == 0 => break,
            None => {}
        }
    }
    Err(Error::NotGo)
}

/// Scans `window` for a header that decodes, at most `budget` bytes (decremented).
fn scan<R: ReadAt + ?Sized>(
    image: &Image,
    window: &Mapping,
    f: &mut Bounded<'_, R>,
    budget: &mut u64,
) -> Result<Option<RawBuildInfo>, Error> {
    let mut pos = 0u64;
    while pos < window.size && *budget > 0 {
        // Chunks end on aligned addresses, so that a header never straddles two.
        let addr = window.vaddr.wrapping_add(pos);
        let to_aligned = CHUNK - addr % ALIGN;
        let want = to_aligned.min(window.size - pos).min(*budget);
        let Some(at) = window.offset.checked_add(pos) else {
            return Ok(None);
        };
        let chunk = f.read(at, want)?;
        if chunk.is_empty() {
            return Ok(None);
        }
        *budget -= chunk.len() as u64;
        let mut i = ((ALIGN - addr % ALIGN) % ALIGN) as usize;
        while i + MAGIC.len() <= chunk.len() {
            if chunk[i..i + MAGIC.len()] == MAGIC[..] {
                let into = pos + i as u64;
                match decode(image, f, at + i as u64, window.size - into) {
                    Ok(found) => return Ok(Some(found)),
                    // A decoy or a damaged blob: keep looking.
                    Err(Error::Malformed(_) | Error::NotGo) => {}
                    Err(other) => return Err(other),
                }
            }
            i += ALIGN as usize;
        }
        pos += chunk.len() as u64;
    }
    Ok(None)
}

/// Decodes the blob at file offset `at`, with `avail` bytes of its window from there.
fn decode<R: ReadAt + ?Sized>(
    image: &Image,
    f: &mut Bounded<'_, R>,
    at: u64,
    avail: u64,
) -> Result<RawBuildInfo, Error> {
    let blob = f.read(at, avail.min(BLOB_MAX))?;
    if blob.len() < HEADER {
        return Err(Error::Malformed("build information header"));
    }
    let ptr_size = blob[MAGIC.len()];
    let flags = blob[MAGIC.len() + 1];
    let (version, modinfo) = if flags & FLAG_INLINE != 0 {
        let (mut version, rest) = varint_string(&blob[HEADER..])
            .filter(|(v, _)| !v.truncated)
            .ok_or(Error::Malformed("build information version"))?;
        // Capped as in the pointer layout (found by the fuzz target).
        version.bytes.truncate(VERSION_MAX as usize);
        let (modinfo, _) = varint_string(rest).unwrap_or_default();
        (version, modinfo)
    } else {
        let ptr = Pointers::new(ptr_size, flags)?;
        let version = ptr.string(image, f, ptr.get(&blob[16..]), VERSION_MAX)?;
        let modinfo = ptr.string(image, f, ptr.get(&blob[16 + ptr.size..]), MODINFO_MAX)?;
        (version, modinfo)
    };
    if version.bytes.is_empty() {
        return Err(Error::NotGo);
    }
    Ok(RawBuildInfo {
        version: String::from_utf8_lossy(&version.bytes).into_owned(),
        modinfo: unframe(&modinfo),
    })
}

/// A string as read: its bytes, and whether it was longer than what was read.
#[derive(Debug, Default)]
struct Bytes {
    bytes: Vec<u8>,
    truncated: bool,
}

/// The module information without its sentinels, as Go's reader strips them (a complete one
/// must end with a newline 17 bytes from its end, or it is taken as absent); of one read in
/// part, everything after the first sentinel.
fn unframe(modinfo: &Bytes) -> String {
    let m = &modinfo.bytes;
    let text = if modinfo.truncated && m.len() > SENTINEL {
        &m[SENTINEL..]
    } else if m.len() > 2 * SENTINEL && m[m.len() - SENTINEL - 1] == b'\n' {
        &m[SENTINEL..m.len() - SENTINEL]
    } else {
        &[][..]
    };
    String::from_utf8_lossy(text).into_owned()
}

/// A uvarint length and that many bytes (fewer, flagged truncated, when the data ends
/// first); the rest.
fn varint_string(data: &[u8]) -> Option<(Bytes, &[u8])> {
    let mut len: u64 = 0;
    let mut n = 0;
    loop {
        let b = *data.get(n)?;
        if n == 9 && b > 1 {
            return None; // over 64 bits
        }
        len |= u64::from(b & 0x7f) << (7 * n);
        n += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    let rest = &data[n..];
    let take = usize::try_from(len).unwrap_or(usize::MAX).min(rest.len());
    Some((
        Bytes {
            bytes: rest[..take].to_vec(),
            truncated: (take as u64) < len,
        },
        &rest[take..],
    ))
}

/// Pointers of the pre-1.18 layout.
struct Pointers {
    size: usize,
    big_endian: bool,
}

impl Pointers {
    fn new(size: u8, flags: u8) -> Result<Self, Error> {
        if size != 4 && size != 8 {
            return Err(Error::Malformed("build information pointer size"));
        }
        Ok(Pointers {
            size: usize::from(size),
            big_endian: flags & FLAG_BIG_ENDIAN != 0,
        })
    }

    /// The pointer at the start of `b` (which holds at least one).
    fn get(&self, b: &[u8]) -> u64 {
        let mut v = [0u8; 8];
        if self.big_endian {
            v[8 - self.size..].copy_from_slice(&b[..self.size]);
            u64::from_be_bytes(v)
        } else {
            v[..self.size].copy_from_slice(&b[..self.size]);
            u64::from_le_bytes(v)
        }
    }

    /// The Go string whose header (data pointer, length) is at `addr`, at most `max` bytes.
    fn string<R: ReadAt + ?Sized>(
        &self,
        image: &Image,
        f: &mut Bounded<'_, R>,
        addr: u64,
        max: u64,
    ) -> Result<Bytes, Error> {
        let header_len = 2 * self.size as u64;
        let (at, _) = image
            .locate(addr)
            .filter(|&(_, avail)| avail >= header_len)
            .ok_or(Error::Malformed("Go string header address"))?;
        let header = f.read_exact(at, header_len, "Go string header")?;
        let (data, len) = (self.get(&header), self.get(&header[self.size..]));
        if len == 0 {
            return Ok(Bytes::default());
        }
        let (at, avail) = image
            .locate(data)
            .ok_or(Error::Malformed("Go string address"))?;
        let take = len.min(max);
        if avail < take {
            return Err(Error::Malformed("Go string length"));
        }
        Ok(Bytes {
            bytes: f.read_exact(at, take, "Go string")?,
            truncated: take < len,
        })
    }
}

/// The main package path and main module of the module information text.
pub fn main_package(modinfo: &str) -> (String, String) {
    let mut path = String::new();
    let mut module = String::new();
    for line in modinfo.lines() {
        let mut fields = line.split('\t');
        match (fields.next(), fields.next()) {
            (Some("path"), Some(p)) if path.is_empty() => path = p.to_owned(),
            (Some("mod"), Some(m)) if module.is_empty() => module = m.to_owned(),
            _ => {}
        }
    }
    (path, module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_their_bounds() {
        let (s, rest) = varint_string(b"\x03abcde").unwrap();
        assert_eq!(
            (s.bytes.as_slice(), s.truncated, rest),
            (&b"abc"[..], false, &b"de"[..])
        );
        let (s, rest) = varint_string(b"\x05abc").unwrap();
        assert_eq!(
            (s.bytes.as_slice(), s.truncated, rest),
            (&b"abc"[..], true, &b""[..])
        );
        let (s, _) = varint_string(b"\x00").unwrap();
        assert!(s.bytes.is_empty() && !s.truncated);
        // 300 = 0xac 0x02
        let mut long = vec![0xac, 0x02];
        long.extend(std::iter::repeat_n(b'x', 300));
        assert_eq!(varint_string(&long).unwrap().0.bytes.len(), 300);
        assert!(varint_string(&[0xff; 10]).is_none(), "more than 64 bits");
        assert!(varint_string(&[0x80, 0x80]).is_none(), "cut in the middle");
        assert!(varint_string(&[]).is_none());
        let max = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, b'a',
        ];
        let (s, _) = varint_string(&max).unwrap();
        assert!(s.truncated && s.bytes == b"a");
    }

    #[test]
    fn module_text_lines() {
        let (p, m) = main_package(
            "path\tgo.ngrok.com/cmd/ngrok\nmod\tgo.ngrok.com\t(devel)\t\ndep\tx\tv1\th1:\npath\tother\n",
        );
        assert_eq!(
            (p.as_str(), m.as_str()),
            ("go.ngrok.com/cmd/ngrok", "go.ngrok.com")
        );
        assert_eq!(main_package(""), (String::new(), String::new()));
        assert_eq!(main_package("path"), (String::new(), String::new()));
    }

    #[test]
    fn framing_as_go_strips_it() {
        let framed = |body: &str| {
            let mut m = vec![b'<'; SENTINEL];
            m.extend_from_slice(body.as_bytes());
            m.extend_from_slice(&[b'>'; SENTINEL]);
            m
        };
        let whole = Bytes {
            bytes: framed("path\tp\n"),
            truncated: false,
        };
        assert_eq!(unframe(&whole), "path\tp\n");
        let no_newline = Bytes {
            bytes: framed("path\tp"),
            truncated: false,
        };
        assert_eq!(unframe(&no_newline), "");
        let cut = Bytes {
            bytes: framed("path\tp\n")[..20].to_vec(),
            truncated: true,
        };
        assert_eq!(unframe(&cut), "path");
        assert_eq!(unframe(&Bytes::default()), "");
    }
}
