//! Reading a file that anyone may have written, within fixed bounds: every read is charged to
//! a byte budget and checked against a deadline before it is made, never goes past the end of
//! the file, and allocates only what it is allowed to read. Headers may claim anything (2^31
//! section headers, a string of 2^64 bytes); what is read is what the budget allows.

use std::{
    io,
    time::{Duration, Instant},
};

use crate::Error;

/// How much of one file may be read, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes read from the file in all.
    pub max_bytes: u64,
    /// Time from the first read to the last.
    pub max_time: Duration,
}

impl Limits {
    /// What the sensors use: 2 MiB and 100 ms per file. A Go binary needs its headers (a few
    /// KiB), up to 1 MiB of its data scanned for the build information and the strings it
    /// points to; from the page cache that takes well under a millisecond, and the deadline
    /// leaves room for a cold disk.
    pub const DEFAULT: Limits = Limits {
        max_bytes: 2 << 20,
        max_time: Duration::from_millis(100),
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Random access to the bytes of a file.
pub trait ReadAt {
    /// Reads into `buf` from `offset`; returns how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// The size of the file in bytes.
    fn size(&self) -> io::Result<u64>;
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_at(self, buf, offset)
        }
        #[cfg(windows)]
        {
            std::os::windows::fs::FileExt::seek_read(self, buf, offset)
        }
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// A file behind a byte budget and a deadline.
pub struct Bounded<'a, R: ReadAt + ?Sized> {
    src: &'a R,
    len: u64,
    left: u64,
    deadline: Instant,
    read: u64,
}

impl<'a, R: ReadAt + ?Sized> Bounded<'a, R> {
    pub fn new(src: &'a R, limits: Limits) -> Result<Self, Error> {
        Ok(Bounded {
            src,
            len: src.size()?,
            left: limits.max_bytes,
            deadline: Instant::now() + limits.max_time,
            read: 0,
        })
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Up to `size` bytes from `offset`: fewer at the end of the file, none past it. Fails
    /// when the budget cannot pay for them or the deadline has passed.
    pub fn read(&mut self, offset: u64, size: u64) -> Result<Vec<u8>, Error> {
        let size = size.min(self.len.saturating_sub(offset));
        if size > self.left {
            return Err(Error::Budget);
        }
        if Instant::now() > self.deadline {
            return Err(Error::Deadline);
        }
        self.left -= size;
        // Fits: `size` is within the budget, itself far below usize::MAX.
        let mut buf = vec![0; size as usize];
        let mut done = 0;
        while done < buf.len() {
            match self.src.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break, // the file shrank
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        buf.truncate(done);
        self.read += done as u64;
        Ok(buf)
    }

    /// Exactly `size` bytes from `offset`, or [`Error::Malformed`] if the file is shorter.
    pub fn read_exact(
        &mut self,
        offset: u64,
        size: u64,
        what: &'static str,
    ) -> Result<Vec<u8>, Error> {
        let buf = self.read(offset, size)?;
        if (buf.len() as u64) < size {
            return Err(Error::Malformed(what));
        }
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_end_and_at_the_budget() {
        let data: Vec<u8> = (0..=255).collect();
        let limits = Limits {
            max_bytes: 100,
            max_time: Duration::from_secs(10),
        };
        let mut b = Bounded::new(&data[..], limits).unwrap();
        assert_eq!(
            b.read(250, 100).unwrap(),
            vec![250, 251, 252, 253, 254, 255]
        );
        assert_eq!(b.read(1 << 40, u64::MAX).unwrap(), Vec::<u8>::new());
        assert_eq!(b.read(0, 94).unwrap().len(), 94);
        assert!(matches!(b.read(0, 1), Err(Error::Budget)));
        assert_eq!(b.bytes_read(), 100);
        assert!(matches!(
            b.read_exact(0, 0, "nothing"),
            Ok(v) if v.is_empty()
        ));
    }

    #[test]
    fn a_claim_past_the_budget_allocates_nothing() {
        let data = [0u8; 64];
        let mut b = Bounded::new(&data[..], Limits::DEFAULT).unwrap();
        // Within the file, past the budget: refused before any allocation.
        let big = vec![0u8; 3 << 20];
        let mut b2 = Bounded::new(&big[..], Limits::DEFAULT).unwrap();
        assert!(matches!(b2.read(0, u64::MAX), Err(Error::Budget)));
        assert!(matches!(
            b.read_exact(0, 65, "header"),
            Err(Error::Malformed("header"))
        ));
    }

    #[test]
    fn the_deadline_stops_reading() {
        let data = [0u8; 64];
        let limits = Limits {
            max_bytes: 1 << 20,
            max_time: Duration::ZERO,
        };
        let mut b = Bounded::new(&data[..], limits).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        assert!(matches!(b.read(0, 8), Err(Error::Deadline)));
    }
}
