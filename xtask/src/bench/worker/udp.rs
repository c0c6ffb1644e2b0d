//! The UDP storm's worker: datagrams of one size from one socket to 127.0.0.1:PORT as fast as
//! one core sends them, received by a second thread; counts what was sent and what arrived
//! between the start and end times.
//!
//! May use: clap, serde, worker/sys, worker/window, bench/clock.

use std::{
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::{
    sys::{LOOPBACK, pin, set_int_opt},
    window::Window,
};
use crate::bench::clock::mono_ns;

#[derive(Clone, Debug, PartialEq, clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Args {
    #[command(flatten)]
    #[serde(flatten)]
    pub window: Window,
    /// The receiver's port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Bytes per datagram.
    #[arg(long)]
    pub size: usize,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Report {
    pub sent: u64,
    pub send_errors: u64,
    pub received: u64,
    pub bytes: u64,
    pub secs: f64,
}

pub fn run(a: &Args) -> Result<Report> {
    let Window { start, end } = a.window;
    let rx = UdpSocket::bind((LOOPBACK, a.port))
        .with_context(|| format!("cannot bind UDP 127.0.0.1:{}", a.port))?;
    set_int_opt(
        rx.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        8 << 20,
    );
    rx.set_read_timeout(Some(Duration::from_millis(20)))?;
    let tx = UdpSocket::bind((LOOPBACK, 0))?;
    let dst = SocketAddr::from((LOOPBACK, a.port));
    let receiver = thread::spawn(move || {
        pin(1);
        let mut buf = vec![0u8; 65536];
        let (mut pkts, mut bytes) = (0u64, 0u64);
        loop {
            let r = rx.recv_from(&mut buf);
            let now = mono_ns();
            if now >= end {
                break;
            }
            if let Ok((n, _)) = r
                && now >= start
            {
                pkts += 1;
                bytes += n as u64;
            }
        }
        (pkts, bytes)
    });
    let buf = vec![0x5au8; a.size];
    pin(0);
    a.window.wait_for_start();
    let (mut sent, mut send_errors) = (0u64, 0u64);
    loop {
        for _ in 0..32 {
            match tx.send_to(&buf, dst) {
                Ok(_) => sent += 1,
                Err(_) => send_errors += 1,
            }
        }
        if a.window.ended() {
            break;
        }
    }
    let (received, bytes) = receiver.join().expect("receiver thread");
    Ok(Report {
        sent,
        send_errors,
        received,
        bytes,
        secs: a.window.secs(),
    })
}
