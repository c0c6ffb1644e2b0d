//! Writes small `.etl` files from the documented structures (the inverse of `etl.rs`): for the
//! tests, which replay traces built from the facts of real ones, and for the fuzz corpus.
//! Not used by the sensor.
//!
//! The file: a first buffer holding the `TRACE_LOGFILE_HEADER` record, then buffers of
//! records (8-aligned, padded with 0xFF), optionally "compressed" as [MS-XCA] plain LZ77 made
//! of literals only (valid input for any LZ77 decoder, which is what the reader's compressed
//! path needs). Record times are FILETIMEs (clock type 2, system time).

use crate::etl::{BUFFER_HEADER, Guid};

/// One record to write.
#[derive(Clone, Debug)]
pub enum Rec {
    /// A kernel event with a `SYSTEM_TRACE_HEADER`.
    Kernel {
        group: u8,
        opcode: u8,
        version: u16,
        pid: u32,
        tid: u32,
        time: i64,
        payload: Vec<u8>,
    },
    /// A kernel event with a `PERFINFO_TRACE_HEADER` (no process id), as rundowns are written.
    Perfinfo {
        group: u8,
        opcode: u8,
        version: u16,
        time: i64,
        payload: Vec<u8>,
    },
    /// A manifest provider's event with an `EVENT_HEADER`; `stack` adds an extended data item
    /// (a stack trace of two frames), as traces recorded with stacks have.
    Provider {
        guid: Guid,
        id: u16,
        version: u8,
        opcode: u8,
        pid: u32,
        tid: u32,
        time: i64,
        stack: bool,
        payload: Vec<u8>,
    },
}

/// Builds a trace in memory.
pub struct EtlWriter {
    pointer_size: u8,
    buffer_size: usize,
    compress: bool,
    start_time: i64,
    buffers: Vec<Vec<u8>>,
    current: Vec<u8>,
}

fn marker(header_type: u8, low: u16) -> [u8; 4] {
    (0xC000_0000u32 | u32::from(header_type) << 16 | u32::from(low)).to_le_bytes()
}

impl EtlWriter {
    /// A trace from a kernel with `pointer_size` (4 or 8), started at `start_time` (FILETIME),
    /// in buffers of `buffer_size` bytes.
    pub fn new(pointer_size: u8, start_time: i64, buffer_size: usize) -> EtlWriter {
        EtlWriter {
            pointer_size,
            buffer_size,
            compress: false,
            start_time,
            buffers: Vec::new(),
            current: Vec::new(),
        }
    }

    /// Writes the buffers after the first compressed.
    pub fn compressed(mut self) -> EtlWriter {
        self.compress = true;
        self
    }

    fn system_header(&self, group: u8, opcode: u8, version: u16, size: usize) -> Vec<u8> {
        let t = if self.pointer_size == 4 { 1 } else { 2 };
        let mut b = marker(t, version).to_vec();
        b.extend_from_slice(&(size as u16).to_le_bytes());
        b.extend_from_slice(&[opcode, group]);
        b
    }

    /// Adds a record (starting a new buffer when it does not fit).
    pub fn push(&mut self, rec: &Rec) -> &mut Self {
        let bytes = self.encode(rec);
        if BUFFER_HEADER + self.current.len() + bytes.len() > self.buffer_size
            && !self.current.is_empty()
        {
            self.flush();
        }
        self.current.extend_from_slice(&bytes);
        while !self.current.len().is_multiple_of(8) {
            self.current.push(0);
        }
        self
    }

    fn encode(&self, rec: &Rec) -> Vec<u8> {
        match rec {
            Rec::Kernel {
                group,
                opcode,
                version,
                pid,
                tid,
                time,
                payload,
            } => {
                let mut b = self.system_header(*group, *opcode, *version, 0x20 + payload.len());
                b.extend_from_slice(&tid.to_le_bytes());
                b.extend_from_slice(&pid.to_le_bytes());
                b.extend_from_slice(&time.to_le_bytes());
                b.extend_from_slice(&[0; 8]); // KernelTime, UserTime
                b.extend_from_slice(payload);
                b
            }
            Rec::Perfinfo {
                group,
                opcode,
                version,
                time,
                payload,
            } => {
                let t = if self.pointer_size == 4 { 0x10 } else { 0x11 };
                let mut b = marker(t, *version).to_vec();
                b.extend_from_slice(&((0x10 + payload.len()) as u16).to_le_bytes());
                b.extend_from_slice(&[*opcode, *group]);
                b.extend_from_slice(&time.to_le_bytes());
                b.extend_from_slice(payload);
                b
            }
            Rec::Provider {
                guid,
                id,
                version,
                opcode,
                pid,
                tid,
                time,
                stack,
                payload,
            } => {
                let ext = if *stack { 24 } else { 0 };
                let size = 0x50 + ext + payload.len();
                let t = if self.pointer_size == 4 { 0x12 } else { 0x13 };
                let mut b = marker(t, size as u16).to_vec();
                let mut flags: u16 = if self.pointer_size == 4 { 0x20 } else { 0x40 };
                if *stack {
                    flags |= 0x01;
                }
                b.extend_from_slice(&flags.to_le_bytes());
                b.extend_from_slice(&0u16.to_le_bytes()); // EventProperty
                b.extend_from_slice(&tid.to_le_bytes());
                b.extend_from_slice(&pid.to_le_bytes());
                b.extend_from_slice(&time.to_le_bytes());
                b.extend_from_slice(&guid.0);
                b.extend_from_slice(&id.to_le_bytes());
                b.extend_from_slice(&[*version, 0x10, 4, *opcode]); // channel, level
                b.extend_from_slice(&0u16.to_le_bytes()); // Task
                b.extend_from_slice(&0x8000_0000_0000_0010u64.to_le_bytes()); // Keyword
                b.extend_from_slice(&0u64.to_le_bytes()); // ProcessorTime
                b.extend_from_slice(&[0; 16]); // ActivityId
                if *stack {
                    // Size 24, EVENT_HEADER_EXT_TYPE_STACK_TRACE32 (6), no further item, 16
                    // bytes of data: MatchId and two 32-bit frames.
                    b.extend_from_slice(&24u16.to_le_bytes());
                    b.extend_from_slice(&6u16.to_le_bytes());
                    b.extend_from_slice(&0u16.to_le_bytes());
                    b.extend_from_slice(&16u16.to_le_bytes());
                    b.extend_from_slice(&[0x11; 16]);
                }
                b.extend_from_slice(payload);
                b
            }
        }
    }

    fn flush(&mut self) {
        let records = std::mem::take(&mut self.current);
        let used = BUFFER_HEADER + records.len();
        let (body, flags) = if self.compress {
            let mut c = Vec::new();
            for chunk in records.chunks(32) {
                c.extend_from_slice(&0u32.to_le_bytes());
                c.extend_from_slice(chunk);
            }
            (c, 0x40u16)
        } else {
            let mut r = records;
            r.resize(self.buffer_size - BUFFER_HEADER, 0xff);
            (r, 0)
        };
        let size = BUFFER_HEADER + body.len();
        self.buffers.push(buffer_header(
            size,
            used,
            flags,
            self.start_time,
            self.buffers.len() as u64 + 1,
        ));
        self.buffers.last_mut().unwrap().extend_from_slice(&body);
    }

    /// The whole file.
    pub fn finish(mut self) -> Vec<u8> {
        if !self.current.is_empty() {
            self.flush();
        }
        let mut out = self.first_buffer();
        for b in &self.buffers {
            out.extend_from_slice(b);
        }
        out
    }

    /// The first buffer: the logfile header record.
    fn first_buffer(&self) -> Vec<u8> {
        let p = usize::from(self.pointer_size);
        let mut h = Vec::new();
        let u32s = |h: &mut Vec<u8>, v: &[u32]| {
            for x in v {
                h.extend_from_slice(&x.to_le_bytes());
            }
        };
        u32s(&mut h, &[self.buffer_size as u32, 0x0a00_0005, 19041, 2]);
        h.extend_from_slice(&self.start_time.to_le_bytes()); // EndTime
        u32s(&mut h, &[156_250, 0, 0x1_0000]); // TimerResolution, MaximumFileSize, LogFileMode
        u32s(
            &mut h,
            &[
                self.buffers.len() as u32 + 1,
                1,
                u32::from(self.pointer_size),
                0,
                2_400,
            ],
        );
        h.extend_from_slice(&vec![0; 2 * p]); // LoggerName, LogFileName
        h.extend_from_slice(&[0; 0xB0]); // TimeZone and padding
        h.extend_from_slice(&self.start_time.to_le_bytes()); // BootTime
        h.extend_from_slice(&10_000_000u64.to_le_bytes()); // PerfFreq
        h.extend_from_slice(&self.start_time.to_le_bytes()); // StartTime
        u32s(&mut h, &[2, 0]); // ReservedFlags (system time), BuffersLost
        for s in ["tunnelwatch-test", "test.etl"] {
            for u in s.encode_utf16().chain([0]) {
                h.extend_from_slice(&u.to_le_bytes());
            }
        }
        let mut rec = self.system_header(0, 0, 2, 0x20 + h.len());
        rec.extend_from_slice(&0u32.to_le_bytes());
        rec.extend_from_slice(&0u32.to_le_bytes());
        rec.extend_from_slice(&self.start_time.to_le_bytes());
        rec.extend_from_slice(&[0; 8]);
        rec.extend_from_slice(&h);
        while !rec.len().is_multiple_of(8) {
            rec.push(0);
        }
        let used = BUFFER_HEADER + rec.len();
        let size = used.next_multiple_of(0x200);
        let mut b = buffer_header(size, used, 0x01, self.start_time, 0);
        b.extend_from_slice(&rec);
        b.resize(size, 0xff);
        b
    }
}

fn buffer_header(size: usize, used: usize, flags: u16, time: i64, seq: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(size);
    b.extend_from_slice(&(size as u32).to_le_bytes());
    b.extend_from_slice(&(used as u32).to_le_bytes()); // SavedOffset
    b.extend_from_slice(&(used as u32).to_le_bytes()); // CurrentOffset
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend_from_slice(&time.to_le_bytes());
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&[0, 0, 0, 0]); // processor, alignment, logger id
    b.extend_from_slice(&3u32.to_le_bytes()); // State
    b.extend_from_slice(&(used as u32).to_le_bytes()); // Offset
    b.extend_from_slice(&flags.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes()); // BufferType
    b.extend_from_slice(&[0; 16]);
    debug_assert_eq!(b.len(), BUFFER_HEADER);
    b
}
