//! The TCP bulk worker: one connection on 127.0.0.1 (an ephemeral port, never 53), a writer of
//! 128 KiB chunks and a reader, counting the bytes that arrive between the start and end
//! times and the segments the host sent meanwhile.
//!
//! May use: clap, serde, worker/sys, worker/window, bench/clock.

use std::{
    io::{ErrorKind, Read as _, Write as _},
    net::{TcpListener, TcpStream},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::{
    sys::{LOOPBACK, pin},
    window::Window,
};
use crate::bench::clock::mono_ns;

#[derive(Clone, Debug, PartialEq, clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Args {
    #[command(flatten)]
    #[serde(flatten)]
    pub window: Window,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Report {
    pub bytes: u64,
    pub segments: u64,
    pub secs: f64,
}

/// TCP segments sent by the whole host (`Tcp: OutSegs` of /proc/net/snmp).
fn tcp_out_segs() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "OutSegs")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

pub fn run(a: &Args) -> Result<Report> {
    let Window { start, end } = a.window;
    let listener = TcpListener::bind((LOOPBACK, 0))?;
    let addr = listener.local_addr()?;
    let reader = thread::spawn(move || -> std::io::Result<u64> {
        pin(1);
        let (mut s, _) = listener.accept()?;
        s.set_read_timeout(Some(Duration::from_millis(20)))?;
        let mut buf = vec![0u8; 256 << 10];
        let mut bytes = 0u64;
        loop {
            let r = s.read(&mut buf);
            let now = mono_ns();
            if now >= end {
                return Ok(bytes);
            }
            match r {
                Ok(0) => return Ok(bytes),
                Ok(n) if now >= start => bytes += n as u64,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => return Err(e),
            }
        }
    });
    let mut w = TcpStream::connect(addr)?;
    w.set_write_timeout(Some(Duration::from_millis(20)))?;
    let chunk = vec![0xa5u8; 128 << 10];
    pin(0);
    a.window.wait_for_start();
    let segs_before = tcp_out_segs();
    while !a.window.ended() {
        match w.write(&chunk) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e).context("TCP write"),
        }
    }
    let segments = tcp_out_segs().saturating_sub(segs_before);
    drop(w);
    let bytes = reader.join().expect("reader thread").context("TCP read")?;
    Ok(Report {
        bytes,
        segments,
        secs: a.window.secs(),
    })
}
