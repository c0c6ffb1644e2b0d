//! The DNS workers: a responder on 127.0.0.1:PORT (UDP, SO_REUSEPORT threads; A -> 127.0.0.1,
//! AAAA -> ::1 for every name) that says `ready` once bound and serves until its stdin closes;
//! and a client sending A and AAAA queries in turn (varied names) with `send_to`, closed loop
//! (a window of queries in flight per socket, as fast as answers come) or open loop at a rate.
//!
//! May use: clap, serde, worker/sys, worker/window, worker/dnswire, bench/clock.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::{
    dnswire,
    sys::{LOOPBACK, reuseport_udp, set_int_opt},
    window::Window,
};
use crate::bench::clock::mono_ns;

#[derive(Clone, Debug, PartialEq, clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServerArgs {
    #[arg(long)]
    pub port: u16,
    /// CLOCK_MONOTONIC ns to stop at, if stdin is still open then.
    #[arg(long)]
    pub end: u64,
    /// Serving threads (one socket each).
    #[arg(long)]
    pub threads: usize,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct ServerReport {
    pub served: u64,
}

#[derive(Clone, Debug, PartialEq, clap::Args, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClientArgs {
    #[arg(long)]
    pub port: u16,
    #[command(flatten)]
    #[serde(flatten)]
    pub window: Window,
    /// Sockets, one thread each.
    #[arg(long)]
    pub threads: usize,
    /// Closed loop: queries in flight per socket.
    #[arg(long)]
    pub in_flight: usize,
    /// Open loop: queries per second in all (0: closed loop).
    #[arg(long)]
    pub rate: u64,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Serialize)]
pub struct ClientReport {
    pub sent: u64,
    pub answered: u64,
    /// Closed loop: refills after a timeout; open loop: send errors.
    pub timeouts: u64,
    pub secs: f64,
}

/// A DNS responder on 127.0.0.1:`port` (UDP): A -> 127.0.0.1, AAAA -> ::1, for every name.
/// Prints `ready` once bound, serves until `end`.
pub fn serve(a: &ServerArgs) -> Result<ServerReport> {
    let end = a.end;
    let socks = (0..a.threads.max(1))
        .map(|_| reuseport_udp(a.port))
        .collect::<Result<Vec<_>>>()?;
    println!("ready");
    std::io::stdout().flush()?;
    // Stop when stdin closes (or at `end`).
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop.clone();
    thread::spawn(move || {
        let mut sink = [0u8; 64];
        while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        stopper.store(true, Ordering::Relaxed);
    });
    let served = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = socks
        .into_iter()
        .map(|s| {
            let served = served.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
                let mut buf = [0u8; 2048];
                let mut out = Vec::with_capacity(2048);
                let mut n = 0u64;
                while mono_ns() < end && !stop.load(Ordering::Relaxed) {
                    let Ok((len, peer)) = s.recv_from(&mut buf) else {
                        continue;
                    };
                    if dnswire::answer(&buf[..len], &mut out) && s.send_to(&out, peer).is_ok() {
                        n += 1;
                    }
                }
                served.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Ok(ServerReport {
        served: served.load(Ordering::Relaxed),
    })
}

/// DNS queries (A and AAAA in turn, varied names) from `threads` sockets with `send_to` to
/// 127.0.0.1:`port`, either closed-loop (`in_flight` per socket, as fast as answers
/// come) or open-loop at `rate` queries/s in all.
pub fn query(c: &ClientArgs) -> Result<ClientReport> {
    let dst = SocketAddr::from((LOOPBACK, c.port));
    let threads = c.threads.max(1);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let sock = UdpSocket::bind((LOOPBACK, 0))?;
            set_int_opt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                4 << 20,
            );
            let (window, in_flight) = (c.window, c.in_flight.max(1));
            let rate = c.rate / threads as u64;
            Ok(thread::spawn(move || {
                if rate == 0 {
                    closed_loop(&sock, dst, t as u32, window, in_flight)
                } else {
                    open_loop(&sock, dst, t as u32, window, rate)
                }
            }))
        })
        .collect::<Result<_>>()?;
    let (mut sent, mut answered, mut timeouts) = (0u64, 0u64, 0u64);
    for h in handles {
        let (s, a, t) = h.join().expect("client thread")?;
        sent += s;
        answered += a;
        timeouts += t;
    }
    Ok(ClientReport {
        sent,
        answered,
        timeouts,
        secs: c.window.secs(),
    })
}

/// The `i`-th query of client `t`: A and AAAA in turn, names varied.
fn make_query(buf: &mut Vec<u8>, t: u32, i: u64) {
    let qtype = if i.is_multiple_of(2) {
        dnswire::TYPE_A
    } else {
        dnswire::TYPE_AAAA
    };
    let name = format!("host{}.t{t}.bench.tunnelwatch.test", (i / 2) % 997);
    dnswire::query(buf, i as u16, &name, qtype);
}

fn closed_loop(
    sock: &UdpSocket,
    dst: SocketAddr,
    t: u32,
    window: Window,
    in_flight: usize,
) -> std::io::Result<(u64, u64, u64)> {
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut q = Vec::with_capacity(512);
    let mut rbuf = [0u8; 2048];
    let (mut sent, mut answered, mut timeouts) = (0u64, 0u64, 0u64);
    window.wait_for_start();
    let mut fill = |sent: &mut u64, n: usize| {
        for _ in 0..n {
            make_query(&mut q, t, *sent);
            if sock.send_to(&q, dst).is_ok() {
                *sent += 1;
            }
        }
    };
    fill(&mut sent, in_flight);
    loop {
        let r = sock.recv_from(&mut rbuf);
        if window.ended() {
            break;
        }
        match r {
            Ok(_) => {
                answered += 1;
                fill(&mut sent, 1);
            }
            Err(_) => {
                // Lost in the machine (a full socket buffer): refill what is in flight.
                timeouts += 1;
                fill(&mut sent, in_flight);
            }
        }
    }
    Ok((sent, answered, timeouts))
}

fn open_loop(
    sock: &UdpSocket,
    dst: SocketAddr,
    t: u32,
    window: Window,
    rate: u64,
) -> std::io::Result<(u64, u64, u64)> {
    sock.set_nonblocking(true)?;
    let mut q = Vec::with_capacity(512);
    let mut rbuf = [0u8; 2048];
    let (mut sent, mut answered, mut send_errors) = (0u64, 0u64, 0u64);
    window.wait_for_start();
    loop {
        let now = mono_ns();
        if now >= window.end {
            break;
        }
        let due = ((now - window.start) as u128 * rate as u128 / 1_000_000_000) as u64;
        let mut burst = 0;
        while sent < due && burst < 64 {
            make_query(&mut q, t, sent);
            match sock.send_to(&q, dst) {
                Ok(_) => sent += 1,
                Err(_) => {
                    send_errors += 1;
                    break;
                }
            }
            burst += 1;
        }
        let mut drained = 0;
        while sock.recv_from(&mut rbuf).is_ok() {
            answered += 1;
            drained += 1;
        }
        if sent >= due && drained == 0 {
            thread::sleep(Duration::from_micros(50));
        }
    }
    // Answers still on their way.
    let until = mono_ns() + 100_000_000;
    while mono_ns() < until {
        match sock.recv_from(&mut rbuf) {
            Ok(_) => answered += 1,
            Err(_) => thread::sleep(Duration::from_millis(1)),
        }
    }
    Ok((sent, answered, send_errors))
}
