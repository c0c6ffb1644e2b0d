//! A reader of `.etl` trace files (what `logman`, `wpr`, `xperf`, PerfView and the relogger
//! write), OS-neutral and streaming: one buffer in memory at a time.
//!
//! Layout (Geoff Chappell's "WMI_BUFFER_HEADER", "TRACE_LOGFILE_HEADER",
//! "SYSTEM_TRACE_HEADER", "PERFINFO_TRACE_HEADER" pages; Microsoft Learn `EVENT_HEADER`,
//! `EVENT_TRACE_HEADER`; cross-checked with dissect.etl and airbus-cert's etl-parser on real
//! traces, see etw/README.md):
//!
//! - The file is a sequence of buffers. Each starts with a 0x48-byte `WMI_BUFFER_HEADER`:
//!   `BufferSize` (0x00, the buffer's size in the file), `SavedOffset` (0x04), `Offset` (0x30,
//!   the bytes in use, header included), `BufferFlag` (0x34; 0x40: the rest of the buffer is
//!   compressed, [MS-XCA] plain LZ77, see `lz77.rs`).
//! - Records follow, each aligned to 8 bytes. Their first 4 bytes say what they are: the top
//!   byte 0xC0 (a trace header), then the header type: 1/2 `SYSTEM_TRACE_HEADER` (32/64-bit,
//!   0x20 bytes: version, size, hook id = group << 8 | type, thread, process, time), 3/4 its
//!   compact form (0x18 bytes), 0x10/0x11 `PERFINFO_TRACE_HEADER` (0x10 bytes, no process),
//!   0x12/0x13 `EVENT_HEADER` (0x50 bytes, manifest and TraceLogging providers, optionally
//!   followed by extended data items), 0x0A/0x14 `EVENT_TRACE_HEADER` (0x30 bytes, classic
//!   providers); a 0xFFFFFFFF marks the end of the buffer's records.
//! - The first record of the first buffer is the `TRACE_LOGFILE_HEADER` (hook 0x0000): the
//!   pointer size, the start time, the clock (`ReservedFlags`: 1 QPC at `PerfFreq`, 2 system
//!   time, 3 CPU cycles at `CpuSpeedInMHz`) by which record times become FILETIMEs.
//!
//! Everything read is bounds-checked. A record that cannot be walked ends its buffer (counted
//! in [`ReadStats::damaged_buffers`]) and reading goes on with the next buffer; a file that
//! is not an `.etl` or ends inside a buffer is an error, after everything before it was
//! delivered.

use std::io::{self, Read};

use crate::lz77;

/// Size of `WMI_BUFFER_HEADER`.
pub const BUFFER_HEADER: usize = 0x48;
/// Buffers larger than this are refused (ETW's own maximum is 16 MiB).
pub const MAX_BUFFER: usize = 64 << 20;
/// `BufferFlag`: the buffer's records are compressed.
const FLAG_COMPRESSED: u16 = 0x40;

/// A GUID as ETW stores it (`Data1` to `Data3` little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// Parses `3d6fa8d0-fe05-11d0-9dda-00c04fd7ba7c`.
    pub const fn parse(s: &str) -> Guid {
        let b = s.as_bytes();
        let mut hex = [0u8; 16];
        let mut i = 0;
        let mut n = 0;
        while i < b.len() && n < 32 {
            let c = b[i];
            let v = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => 16,
            };
            if v < 16 {
                hex[n / 2] |= if n % 2 == 0 { v << 4 } else { v };
                n += 1;
            }
            i += 1;
        }
        // Big-endian text to the stored form.
        Guid([
            hex[3], hex[2], hex[1], hex[0], hex[5], hex[4], hex[7], hex[6], hex[8], hex[9],
            hex[10], hex[11], hex[12], hex[13], hex[14], hex[15],
        ])
    }
}

/// What a record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A kernel logger event (system, compact or perfinfo header): group (the hook id's high
    /// byte, e.g. 3 for Process), type (its low byte: the opcode), version.
    Kernel { group: u8, opcode: u8, version: u16 },
    /// An `EVENT_HEADER` event (manifest or TraceLogging provider).
    Provider {
        guid: Guid,
        id: u16,
        version: u8,
        opcode: u8,
    },
    /// An `EVENT_TRACE_HEADER` event (classic provider): its class type and version.
    Classic {
        guid: Guid,
        opcode: u8,
        version: u16,
    },
    /// Anything else (WPP messages, instance headers, ...).
    Other,
}

/// One record, borrowed from the reader's current buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub kind: Kind,
    /// The process the header names (perfinfo headers name none).
    pub pid: Option<u32>,
    /// FILETIME (100 ns since 1601) of the record.
    pub timestamp: i64,
    /// The pointer size of whoever logged it: 4 or 8.
    pub pointer_size: u8,
    /// The user data.
    pub payload: &'a [u8],
}

/// Facts from the `TRACE_LOGFILE_HEADER`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogfileHeader {
    pub pointer_size: u8,
    pub buffers_written: u32,
    pub events_lost: u32,
    pub buffers_lost: u32,
    /// FILETIME of the trace's start.
    pub start_time: i64,
    /// `ReservedFlags`: the clock of the record times.
    pub clock: u32,
}

/// What reading has met so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    pub buffers: u64,
    pub compressed_buffers: u64,
    pub records: u64,
    /// Buffers whose records could not all be walked (the rest of each was skipped).
    pub damaged_buffers: u64,
}

/// Why reading stopped.
#[derive(Debug)]
pub enum EtlError {
    NotEtl(String),
    /// The file ends inside a buffer.
    Truncated {
        buffer: u64,
    },
    /// A buffer header that cannot be right (the file cannot be walked past it).
    BadBuffer {
        buffer: u64,
        why: String,
    },
    Io(io::Error),
}

impl std::fmt::Display for EtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EtlError::NotEtl(why) => write!(f, "not an .etl trace: {why}"),
            EtlError::Truncated { buffer } => {
                write!(
                    f,
                    "the trace ends inside buffer {buffer} (counting from 0: a file cut short)"
                )
            }
            EtlError::BadBuffer { buffer, why } => write!(f, "buffer {buffer}: {why}"),
            EtlError::Io(e) => write!(f, "cannot read the trace: {e}"),
        }
    }
}

impl std::error::Error for EtlError {}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn guid_at(b: &[u8], at: usize) -> Option<Guid> {
    Some(Guid(b.get(at..at + 16)?.try_into().ok()?))
}

/// Whether `first` (the file's first bytes, 0x60 or more) starts an `.etl` trace: a buffer
/// header with a plausible size, then the logfile header's system record (hook 0x0000).
pub fn is_etl(first: &[u8]) -> bool {
    sniff(first).is_ok()
}

fn sniff(first: &[u8]) -> Result<(), String> {
    let size = u32_at(first, 0).ok_or("shorter than a buffer header")? as usize;
    if !(BUFFER_HEADER + 0x20..=MAX_BUFFER).contains(&size) {
        return Err(format!("first buffer size {size} is implausible"));
    }
    let marker = u32_at(first, BUFFER_HEADER).ok_or("no first record")?;
    let hook = u16_at(first, BUFFER_HEADER + 6).ok_or("no first record")?;
    if marker >> 24 != 0xC0 || !matches!((marker >> 16) & 0xff, 1 | 2) || hook != 0 {
        return Err("the first record is not the trace's logfile header".into());
    }
    Ok(())
}

/// Converts record times (in the trace's clock) to FILETIME.
#[derive(Clone, Copy, Debug)]
struct Clock {
    /// FILETIME = base + raw * num / den.
    base: i128,
    num: i128,
    den: i128,
}

impl Clock {
    fn filetime(&self, raw: u64) -> i64 {
        let t = self.base + i128::from(raw) * self.num / self.den;
        t.clamp(0, i128::from(i64::MAX)) as i64
    }
}

/// Reads records from an `.etl` stream.
pub struct EtlReader<R: Read> {
    input: R,
    header: LogfileHeader,
    clock: Clock,
    /// The current buffer's records (decompressed when it was compressed).
    area: Vec<u8>,
    pos: usize,
    /// Raw bytes of the current buffer.
    raw: Vec<u8>,
    stats: ReadStats,
    done: bool,
}

impl<R: Read> EtlReader<R> {
    /// Reads the first buffer and the logfile header.
    pub fn new(input: R) -> Result<EtlReader<R>, EtlError> {
        let mut r = EtlReader {
            input,
            header: LogfileHeader::default(),
            clock: Clock {
                base: 0,
                num: 1,
                den: 1,
            },
            area: Vec::new(),
            pos: 0,
            raw: Vec::new(),
            stats: ReadStats::default(),
            done: false,
        };
        if !r.next_buffer(true)? {
            return Err(EtlError::NotEtl("empty".into()));
        }
        r.read_logfile_header()?;
        Ok(r)
    }

    pub fn header(&self) -> &LogfileHeader {
        &self.header
    }

    pub fn stats(&self) -> &ReadStats {
        &self.stats
    }

    /// The logfile header is the payload of the first record (a system header, hook 0).
    fn read_logfile_header(&mut self) -> Result<(), EtlError> {
        let a = &self.area;
        let not = |why: &str| EtlError::NotEtl(why.to_owned());
        let marker = u32_at(a, 0).ok_or_else(|| not("no logfile header"))?;
        let header_len = 0x20;
        let size = usize::from(u16_at(a, 4).ok_or_else(|| not("no logfile header"))?);
        let p = u32_at(a, header_len + 0x2C).ok_or_else(|| not("short logfile header"))?;
        let by_header = if (marker >> 16) & 0xff == 1 { 4 } else { 8 };
        let pointer = match p {
            4 | 8 => p as usize,
            _ => by_header,
        };
        let at = header_len + 0x38 + 2 * pointer + 0xB0;
        let h = a
            .get(header_len..size.min(a.len()))
            .ok_or_else(|| not("short logfile header"))?;
        let field = |off: usize| u64_at(a, at + off).ok_or_else(|| not("short logfile header"));
        let perf_freq = field(8)?;
        let start_time = field(16)? as i64;
        let clock = u32_at(a, at + 24).ok_or_else(|| not("short logfile header"))?;
        let buffers_lost = u32_at(a, at + 28).unwrap_or(0);
        let cpu_mhz = u32_at(h, 0x34).unwrap_or(0);
        let raw_start = u64_at(a, 0x10).unwrap_or(0);
        let (num, den): (i128, i128) = match clock {
            1 if perf_freq > 0 => (10_000_000, i128::from(perf_freq)),
            3 if cpu_mhz > 0 => (10, i128::from(cpu_mhz)),
            _ => (1, 1),
        };
        self.clock = Clock {
            base: i128::from(start_time) - i128::from(raw_start) * num / den,
            num,
            den,
        };
        self.header = LogfileHeader {
            pointer_size: pointer as u8,
            buffers_written: u32_at(h, 0x24).unwrap_or(0),
            events_lost: u32_at(h, 0x30).unwrap_or(0),
            buffers_lost,
            start_time,
            clock,
        };
        Ok(())
    }

    /// Reads the next buffer into `area`; `false` at the end of the file.
    fn next_buffer(&mut self, first: bool) -> Result<bool, EtlError> {
        let index = self.stats.buffers;
        self.raw.resize(BUFFER_HEADER, 0);
        let got = read_full(&mut self.input, &mut self.raw)?;
        if got == 0 {
            return Ok(false);
        }
        if got < BUFFER_HEADER {
            return Err(EtlError::Truncated { buffer: index });
        }
        let size = u32_at(&self.raw, 0).unwrap_or(0) as usize;
        if !(BUFFER_HEADER..=MAX_BUFFER).contains(&size) {
            let why = format!("buffer size {size} is implausible");
            return Err(if first {
                EtlError::NotEtl(why)
            } else {
                EtlError::BadBuffer { buffer: index, why }
            });
        }
        // Grown as the bytes arrive: a header claiming a huge buffer in a short file costs
        // only what the file holds.
        let want = (size - BUFFER_HEADER) as u64;
        let got = loop {
            match (&mut self.input).take(want).read_to_end(&mut self.raw) {
                Ok(n) => break n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(EtlError::Io(e)),
            }
        };
        if got < want {
            return Err(if first {
                EtlError::NotEtl("shorter than its first buffer".into())
            } else {
                EtlError::Truncated { buffer: index }
            });
        }
        if first {
            sniff(&self.raw).map_err(EtlError::NotEtl)?;
        }
        self.stats.buffers += 1;
        let saved = u32_at(&self.raw, 0x04).unwrap_or(0) as usize;
        let offset = u32_at(&self.raw, 0x30).unwrap_or(0) as usize;
        let flags = u16_at(&self.raw, 0x34).unwrap_or(0);
        let used = [offset, saved]
            .into_iter()
            .find(|&n| (BUFFER_HEADER..=MAX_BUFFER).contains(&n))
            .unwrap_or(size);
        self.area.clear();
        self.pos = 0;
        if flags & FLAG_COMPRESSED != 0 {
            self.stats.compressed_buffers += 1;
            match lz77::decompress(&self.raw[BUFFER_HEADER..], used - BUFFER_HEADER) {
                Ok(d) => self.area = d,
                Err(e) => {
                    self.stats.damaged_buffers += 1;
                    log::debug!("buffer {index}: {e}");
                }
            }
        } else {
            let end = used.min(size);
            self.area.extend_from_slice(&self.raw[BUFFER_HEADER..end]);
        }
        Ok(true)
    }

    /// The next record; `None` at the end of the trace.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, EtlError> {
        loop {
            if self.done {
                return Ok(None);
            }
            if let Some((start, h)) = self.step() {
                self.stats.records += 1;
                return Ok(Some(Record {
                    kind: h.kind,
                    pid: h.pid,
                    timestamp: self.clock.filetime(h.time),
                    pointer_size: h.pointer_size,
                    payload: &self.area[start + h.header_len..start + h.size],
                }));
            }
            if !self.next_buffer(false)? {
                self.done = true;
            }
        }
    }

    /// Walks to the next record of the current buffer that is worth returning: its start and
    /// header, or `None` when the buffer has no more.
    fn step(&mut self) -> Option<(usize, Walked)> {
        loop {
            let a = &self.area;
            let start = self.pos;
            let marker = u32_at(a, start)?;
            if marker == 0xffff_ffff || marker == 0 {
                self.pos = a.len();
                return None;
            }
            match parse_record(&a[start..], marker) {
                Some(h) => {
                    self.pos = start + h.size.div_ceil(8) * 8;
                    if h.kind == Kind::Other {
                        continue;
                    }
                    return Some((start, h));
                }
                None => {
                    self.stats.damaged_buffers += 1;
                    self.pos = a.len();
                    return None;
                }
            }
        }
    }

    /// Reads the whole stream, for callers that want every record: `f` sees each.
    pub fn for_each(mut self, mut f: impl FnMut(&Record<'_>)) -> Result<ReadStats, EtlError> {
        while let Some(r) = self.next_record()? {
            f(&r);
        }
        Ok(self.stats)
    }
}

/// A record's header, as walked.
#[derive(Clone, Copy, Debug)]
struct Walked {
    /// The whole record's size (before alignment).
    size: usize,
    kind: Kind,
    pid: Option<u32>,
    /// In the trace's clock.
    time: u64,
    pointer_size: u8,
    /// Where the user data starts (extended data items included).
    header_len: usize,
}

/// One record at the start of `b` with its `marker`; `None` when it cannot be walked.
fn parse_record(b: &[u8], marker: u32) -> Option<Walked> {
    let flags = marker >> 24;
    let kind_byte = (marker >> 16) & 0xff;
    let low = (marker & 0xffff) as usize;
    let fit = |size: usize, header: usize| (size >= header && size <= b.len()).then_some(size);
    let other = |size: usize| Walked {
        size,
        kind: Kind::Other,
        pid: None,
        time: 0,
        pointer_size: 8,
        header_len: 0,
    };
    if flags & 0xC0 != 0xC0 {
        // A WPP message (0x90 ...) or anything else with its size in the low half: skipped.
        if flags & 0x80 != 0 && low >= 8 && low <= b.len() {
            return Some(other(low));
        }
        return None;
    }
    match kind_byte {
        // SYSTEM_TRACE_HEADER 32/64 (0x20 bytes), compact 32/64 (0x18), PERFINFO 32/64 (0x10,
        // no process): version in the marker, then size and hook id.
        1..=4 | 0x10 | 0x11 => {
            let (header_len, time_at, pid_at) = match kind_byte {
                1 | 2 => (0x20, 0x10, Some(0x0C)),
                3 | 4 => (0x18, 0x10, Some(0x0C)),
                _ => (0x10, 0x08, None),
            };
            let hook = u16_at(b, 6)?;
            Some(Walked {
                size: fit(usize::from(u16_at(b, 4)?), header_len)?,
                kind: Kind::Kernel {
                    group: (hook >> 8) as u8,
                    opcode: hook as u8,
                    version: low as u16,
                },
                pid: match pid_at {
                    Some(at) => Some(u32_at(b, at)?),
                    None => None,
                },
                time: u64_at(b, time_at)?,
                pointer_size: if matches!(kind_byte, 1 | 3 | 0x10) {
                    4
                } else {
                    8
                },
                header_len,
            })
        }
        // EVENT_HEADER 32/64.
        0x12 | 0x13 => {
            let size = fit(low, 0x50)?;
            let header_flags = u16_at(b, 4)?;
            let mut header_len = 0x50;
            if header_flags & 0x0001 != 0 {
                // Extended data items: each starts with its size (8-aligned) and type; bit 0
                // of the third word says another follows.
                loop {
                    let item = usize::from(u16_at(b, header_len)?);
                    let more = u16_at(b, header_len + 4)? & 1 != 0;
                    if item < 8 || !item.is_multiple_of(8) || header_len + item > size {
                        return None;
                    }
                    header_len += item;
                    if !more {
                        break;
                    }
                }
            }
            let pointer_size = if header_flags & 0x0020 != 0 {
                4
            } else if header_flags & 0x0040 != 0 || kind_byte == 0x13 {
                8
            } else {
                4
            };
            Some(Walked {
                size,
                kind: Kind::Provider {
                    guid: guid_at(b, 0x18)?,
                    id: u16_at(b, 0x28)?,
                    version: *b.get(0x2A)?,
                    opcode: *b.get(0x2D)?,
                },
                pid: Some(u32_at(b, 0x0C)?),
                time: u64_at(b, 0x10)?,
                pointer_size,
                header_len,
            })
        }
        // EVENT_TRACE_HEADER (classic) 32/64.
        0x0A | 0x14 => Some(Walked {
            size: fit(low, 0x30)?,
            kind: Kind::Classic {
                guid: guid_at(b, 0x18)?,
                opcode: *b.get(4)?,
                version: u16_at(b, 6)?,
            },
            pid: Some(u32_at(b, 0x0C)?),
            time: u64_at(b, 0x10)?,
            pointer_size: if kind_byte == 0x0A { 4 } else { 8 },
            header_len: 0x30,
        }),
        _ => Some(other(fit(low, 8)?)),
    }
}

/// Fills `buf` as far as the stream goes; the number of bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, EtlError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(EtlError::Io(e)),
        }
    }
    Ok(n)
}
