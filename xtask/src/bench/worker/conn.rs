//! The connection storms' worker: new flows to 127.0.0.1, each closed at once, as fast as one
//! core opens them or at a given rate (open loop): a TCP connect and close; a TCP connect, a
//! TLS ClientHello a real client sent (curl's, userspace/tests/fixtures/client_hello/) and a
//! close; a UDP datagram from a new socket; a QUIC Initial (the same ClientHello,
//! userspace/tests/fixtures/quic/) from a new connected UDP socket. A server thread on the
//! other side accepts and reads (TCP) or receives (UDP). TCP connections end with a reset
//! (SO_LINGER 0), so that a storm does not run out of ports in TIME_WAIT.
//!
//! May use: clap, serde, libc, worker/sys, worker/window, bench/clock.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::AsRawFd as _,
    thread,
    time::Duration,
};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{
    sys::{LOOPBACK, pin, set_int_opt, sleep_until},
    window::Window,
};
use crate::bench::clock::mono_ns;

/// A TLS ClientHello curl sent (for `connect.ngrok-agent.com`).
const CLIENT_HELLO: &[u8] =
    include_bytes!("../../../../userspace/tests/fixtures/client_hello/curl.bin");
/// The same ClientHello in a QUIC v1 client Initial.
const QUIC_INITIAL: &[u8] = include_bytes!("../../../../userspace/tests/fixtures/quic/initial.bin");
/// The datagram of a UDP flow (not a DNS query, not QUIC).
const DATAGRAM: [u8; 64] = [0x5a; 64];

/// What each new flow is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// TCP connect, then close.
    Tcp,
    /// TCP connect, a TLS ClientHello, then close.
    Tls,
    /// A datagram from a new UDP socket (sendto).
    Udp,
    /// A QUIC Initial from a new connected UDP socket.
    Quic,
}

#[derive(Clone, Debug, PartialEq, clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Args {
    #[command(flatten)]
    #[serde(flatten)]
    pub window: Window,
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// New flows per second (open loop); 0: as fast as one core opens them.
    #[arg(long)]
    pub rate: u64,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct Report {
    /// Flows opened (and their first flight sent) within the window.
    pub opened: u64,
    pub errors: u64,
    /// What the server side took in: connections accepted or datagrams received.
    pub served: u64,
    pub secs: f64,
}

pub fn run(a: &Args) -> Result<Report> {
    let Window { start, end } = a.window;
    let (dst, server) = match a.kind {
        Kind::Tcp | Kind::Tls => {
            let l = TcpListener::bind((LOOPBACK, 0))?;
            let dst = l.local_addr()?;
            l.set_nonblocking(true)?;
            (dst, thread::spawn(move || serve_tcp(l, end)))
        }
        Kind::Udp | Kind::Quic => {
            let rx = UdpSocket::bind((LOOPBACK, 0))?;
            let dst = rx.local_addr()?;
            set_int_opt(
                rx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                8 << 20,
            );
            rx.set_read_timeout(Some(Duration::from_millis(20)))?;
            (dst, thread::spawn(move || serve_udp(rx, start, end)))
        }
    };
    pin(0);
    a.window.wait_for_start();
    let interval = (a.rate > 0).then(|| 1e9 / a.rate as f64);
    let (mut opened, mut errors) = (0u64, 0u64);
    while !a.window.ended() {
        if let Some(i) = interval {
            sleep_until(start + ((opened + errors) as f64 * i) as u64);
            if a.window.ended() {
                break;
            }
        }
        match open(a.kind, dst) {
            Ok(()) => opened += 1,
            Err(_) => errors += 1,
        }
    }
    let served = server.join().expect("server thread");
    Ok(Report {
        opened,
        errors,
        served,
        secs: a.window.secs(),
    })
}

/// Opens one flow and sends its first flight.
fn open(kind: Kind, dst: SocketAddr) -> std::io::Result<()> {
    match kind {
        Kind::Tcp | Kind::Tls => {
            let mut s = TcpStream::connect(dst)?;
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid socket and option of the right size.
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            if kind == Kind::Tls {
                s.write_all(CLIENT_HELLO)?;
            }
            Ok(())
        }
        Kind::Udp => {
            let s = UdpSocket::bind((LOOPBACK, 0))?;
            s.send_to(&DATAGRAM, dst).map(drop)
        }
        Kind::Quic => {
            let s = UdpSocket::bind((LOOPBACK, 0))?;
            s.connect(dst)?;
            s.send(QUIC_INITIAL).map(drop)
        }
    }
}

/// Accepts until `end`, reading what each connection sent until it closes.
fn serve_tcp(l: TcpListener, end: u64) -> u64 {
    pin(1);
    let mut served = 0u64;
    let mut buf = [0u8; 4096];
    while mono_ns() < end {
        match l.accept() {
            Ok((mut s, _)) => {
                served += 1;
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_millis(5)));
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            }
            Err(_) => thread::sleep(Duration::from_micros(200)),
        }
    }
    served
}

/// Counts the datagrams received between `start` and `end`.
fn serve_udp(rx: UdpSocket, start: u64, end: u64) -> u64 {
    pin(1);
    let mut buf = vec![0u8; 65536];
    let mut served = 0u64;
    loop {
        let r = rx.recv_from(&mut buf);
        let now = mono_ns();
        if now >= end {
            return served;
        }
        if r.is_ok() && now >= start {
            served += 1;
        }
    }
}
