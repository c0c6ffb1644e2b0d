//! The one writer of stdout: a thread fed by a bounded queue of finished JSON lines.
//!
//! The sensor's loop never blocks on stdout. When the reader of stdout is slower than the
//! events (or stopped), the queue fills and further lines are dropped and counted (reported in
//! the stats as `output_dropped`), so memory stays bounded and signals are still handled. A
//! closed stdout (EPIPE) is noticed and ends the sensor cleanly. Lines still queued when the
//! writer is abandoned at exit (a stdout stuck past [`Output::finish`]'s limit) are dropped too,
//! and counted: every line sent is either written or dropped.
//!
//! Uses: nothing of this crate or the engine (a writer thread over lines of bytes).

use std::{
    io::{self, Write},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
};

/// Lines queued at most (about 1 KiB each).
pub const QUEUE_LINES: usize = 8192;

/// Counters shared with the writer thread.
#[derive(Default)]
pub struct OutputStats {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    closed: AtomicBool,
    /// Lines the queue took (written, in the queue, or in the writer's hands).
    queued: AtomicU64,
    /// Set when the writer is abandoned: a line it finishes after that was already counted
    /// dropped, so it no longer counts it written. Held while `written` is bumped, so that the
    /// two counts never both hold a line.
    abandoned: Mutex<bool>,
}

impl OutputStats {
    /// Whether the reader of stdout has gone away.
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

pub struct Output {
    tx: Option<SyncSender<Vec<u8>>>,
    stats: Arc<OutputStats>,
    writer: Option<JoinHandle<()>>,
}

impl Output {
    /// Starts the writer thread over `out` with room for `capacity` lines.
    pub fn start<W: Write + Send + 'static>(out: W, capacity: usize) -> Output {
        let (tx, rx) = sync_channel::<Vec<u8>>(capacity);
        let stats = Arc::new(OutputStats::default());
        let shared = stats.clone();
        let writer = std::thread::Builder::new()
            .name("tunnelwatch-out".into())
            .spawn(move || {
                let mut out = out;
                for line in rx {
                    let done = out.write_all(&line).and_then(|()| out.flush());
                    match done {
                        Ok(()) => {
                            let abandoned =
                                shared.abandoned.lock().unwrap_or_else(|e| e.into_inner());
                            if *abandoned {
                                return;
                            }
                            shared.written.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if e.kind() != io::ErrorKind::BrokenPipe {
                                log::error!("cannot write to stdout: {e}");
                            }
                            shared.closed.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            })
            .expect("spawn the output thread");
        Output {
            tx: Some(tx),
            stats,
            writer: Some(writer),
        }
    }

    /// Queues one line (with its newline). Never blocks: a full queue drops it, counted.
    pub fn send(&self, line: Vec<u8>) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(line) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats.closed.store(true, Ordering::Relaxed);
            }
        }
    }

    pub fn stats(&self) -> &OutputStats {
        &self.stats
    }

    /// Closes the queue and waits up to `limit` for the lines still in it to be written. A
    /// stdout stuck for longer: the lines not written by then are abandoned and counted in
    /// `dropped`.
    pub fn finish(&mut self, limit: std::time::Duration) {
        drop(self.tx.take());
        let Some(writer) = self.writer.take() else {
            return;
        };
        let deadline = std::time::Instant::now() + limit;
        while !writer.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if writer.is_finished() {
            let _ = writer.join();
            if !self.stats.closed() {
                return;
            }
        }
        // Stuck, or stdout closed with lines still queued: what was not written is dropped.
        let mut abandoned = self
            .stats
            .abandoned
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *abandoned = true;
        let left =
            self.stats.queued.load(Ordering::Relaxed) - self.stats.written.load(Ordering::Relaxed);
        self.stats.dropped.fetch_add(left, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Arc, Mutex},
        time::Duration,
    };

    use super::*;

    /// A writer that blocks until released, to play a stuck stdout.
    struct Stuck(Arc<Mutex<()>>, Arc<Mutex<Vec<u8>>>);

    impl Write for Stuck {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _gate = self.0.lock().unwrap();
            self.1.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_reader_drops_and_counts_instead_of_blocking() {
        let gate = Arc::new(Mutex::new(()));
        let sink = Arc::new(Mutex::new(Vec::new()));
        let held = gate.lock().unwrap();
        let mut out = Output::start(Stuck(gate.clone(), sink.clone()), 4);
        for i in 0..100 {
            out.send(format!("{i}\n").into_bytes());
        }
        // At most the queue plus the line in the writer's hands are kept.
        let dropped = out.stats().dropped.load(Ordering::Relaxed);
        assert!((95..=96).contains(&dropped), "dropped {dropped}");
        drop(held);
        out.finish(Duration::from_secs(5));
        let written = String::from_utf8(sink.lock().unwrap().clone()).unwrap();
        assert!(written.starts_with("0\n1\n2\n3\n"), "{written}");
        assert_eq!(written.lines().count() as u64, 100 - dropped);
    }

    #[test]
    fn lines_left_in_the_queue_of_a_stuck_reader_at_exit_count_as_dropped() {
        let gate = Arc::new(Mutex::new(()));
        let sink = Arc::new(Mutex::new(Vec::new()));
        let held = gate.lock().unwrap();
        let mut out = Output::start(Stuck(gate.clone(), sink.clone()), 16);
        for i in 0..10 {
            out.send(format!("{i}\n").into_bytes());
        }
        assert_eq!(out.stats().dropped.load(Ordering::Relaxed), 0);
        // The reader never comes back before the limit: every line is abandoned.
        out.finish(Duration::from_millis(50));
        let (written, dropped) = (
            out.stats().written.load(Ordering::Relaxed),
            out.stats().dropped.load(Ordering::Relaxed),
        );
        assert_eq!((written, dropped), (0, 10));
        // The line in the writer's hands goes out when the reader wakes, but stays counted
        // once, as dropped.
        drop(held);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(out.stats().written.load(Ordering::Relaxed), 0);
        assert_eq!(out.stats().dropped.load(Ordering::Relaxed), 10);
    }

    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_reader_is_noticed() {
        let mut out = Output::start(Closed, 4);
        out.send(b"x\n".to_vec());
        for _ in 0..100 {
            if out.stats().closed() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(out.stats().closed());
        out.finish(Duration::from_secs(5));
    }
}
