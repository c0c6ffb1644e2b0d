//! The load generators, each run as `target/release/xtask bench --worker KIND KEY=VALUE...` in
//! a process of its own (an optimised, single-purpose, small process, the same in every
//! configuration). Each waits for an absolute CLOCK_MONOTONIC start time so that the workers of
//! one run start together, stops at the end time, and prints one line of `key=value` results.
//! Every socket is bound to or sends to 127.0.0.1 only.

use std::{
    collections::HashMap,
    ffi::CString,
    io::{ErrorKind, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::fd::{AsRawFd as _, FromRawFd as _},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use super::{clock::mono_ns, dnswire};

const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// Runs worker `args[0]` with `key=value` parameters and prints its result line.
pub fn main(args: &[String]) -> Result<()> {
    let Some((kind, rest)) = args.split_first() else {
        bail!("--worker needs a kind");
    };
    let params: HashMap<&str, &str> = rest.iter().filter_map(|a| a.split_once('=')).collect();
    let num = |k: &str| -> Result<u64> {
        params
            .get(k)
            .with_context(|| format!("worker {kind}: {k}= missing"))?
            .parse::<u64>()
            .with_context(|| format!("worker {kind}: bad {k}="))
    };
    let text = |k: &str| -> Result<&str> {
        params
            .get(k)
            .copied()
            .with_context(|| format!("worker {kind}: {k}= missing"))
    };
    let line = match kind.as_str() {
        "exec" => {
            pin(num("cpu")? as usize);
            exec_storm(num("start")?, num("end")?, text("prog")?)?
        }
        "udp" => udp_storm(
            num("start")?,
            num("end")?,
            num("port")? as u16,
            num("size")? as usize,
        )?,
        "tcp" => tcp_bulk(num("start")?, num("end")?)?,
        "dns-server" => dns_server(num("port")? as u16, num("end")?, num("threads")? as usize)?,
        "dns-client" => dns_client(&DnsClient {
            port: num("port")? as u16,
            start: num("start")?,
            end: num("end")?,
            threads: num("threads")? as usize,
            window: num("window")? as usize,
            rate: num("rate")?,
        })?,
        "latency" => latency(num("count")?, num("gap_us")?, text("prog")?)?,
        other => bail!("unknown worker {other}"),
    };
    println!("{line} cpu={:.6}", cpu_secs());
    Ok(())
}

/// CPU time (user + system) of this process and of its reaped children, in seconds: what the
/// workload cost, kernel work done in its context included (the BPF programs it triggers).
fn cpu_secs() -> f64 {
    let secs = |who| {
        // SAFETY: zeroed rusage is valid; getrusage fills it.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        t(u.ru_utime) + t(u.ru_stime)
    };
    secs(libc::RUSAGE_SELF) + secs(libc::RUSAGE_CHILDREN)
}

/// Pins the calling thread to CPU `cpu` modulo the CPUs there are: the same placement in every
/// configuration, so that runs compare (a failure leaves the thread where it is).
fn pin(cpu: usize) {
    let n = thread::available_parallelism().map_or(1, |n| n.get());
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET stays within it; 0 is this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu % n, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Sleeps until CLOCK_MONOTONIC reaches `ns`.
fn sleep_until(ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: valid timespec; EINTR just ends the sleep early, and then we loop.
    while mono_ns() < ns {
        unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
    }
}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).context("NUL in an argument")
}

/// Forks and execs `argv[0]` with `argv`, returning the child's pid. The child calls `prepare`
/// (which may append arguments) right before exec.
///
/// Workers are single-threaded, so allocating in the child is safe.
fn fork_exec(argv: &[CString], extra: impl FnOnce() -> Option<CString>) -> Result<libc::pid_t> {
    // SAFETY: single-threaded process; the child only builds its argv and execs or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        let extra = extra();
        let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        if let Some(e) = &extra {
            ptrs.push(e.as_ptr());
        }
        ptrs.push(std::ptr::null());
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        // SAFETY: NUL-terminated argv and envp arrays of valid C strings.
        unsafe {
            libc::execve(ptrs[0], ptrs.as_ptr(), envp.as_ptr());
            libc::_exit(127)
        }
    }
    Ok(pid)
}

/// Waits for `pid`; whether it exited with status 0.
fn wait_ok(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// A tight fork + exec + wait loop of `prog` (no arguments, empty environment).
fn exec_storm(start: u64, end: u64, prog: &str) -> Result<String> {
    let argv = [cstring(prog)?];
    sleep_until(start);
    let (mut ok, mut failed) = (0u64, 0u64);
    while mono_ns() < end {
        let pid = fork_exec(&argv, || None)?;
        if wait_ok(pid) {
            ok += 1;
        } else {
            failed += 1;
        }
    }
    let secs = (mono_ns() - start) as f64 / 1e9;
    Ok(format!("execs={ok} failed={failed} secs={secs:.6}"))
}

/// Sets a socket option of type int, ignoring failure (a smaller buffer only costs drops).
fn set_int_opt(fd: i32, level: i32, name: i32, value: i32) {
    // SAFETY: valid fd, pointer to an int of the right size.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            size_of::<i32>() as libc::socklen_t,
        );
    }
}

/// UDP packets of `size` bytes from one socket to 127.0.0.1:`port` as fast as one core sends
/// them, received by a second thread. Counts what was sent and what arrived in [start, end).
fn udp_storm(start: u64, end: u64, port: u16, size: usize) -> Result<String> {
    let rx = UdpSocket::bind((LOOPBACK, port))
        .with_context(|| format!("cannot bind UDP 127.0.0.1:{port}"))?;
    set_int_opt(
        rx.as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        8 << 20,
    );
    rx.set_read_timeout(Some(Duration::from_millis(20)))?;
    let tx = UdpSocket::bind((LOOPBACK, 0))?;
    let dst = SocketAddr::from((LOOPBACK, port));
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
    let buf = vec![0x5au8; size];
    pin(0);
    sleep_until(start);
    let (mut sent, mut errors) = (0u64, 0u64);
    'outer: loop {
        for _ in 0..32 {
            match tx.send_to(&buf, dst) {
                Ok(_) => sent += 1,
                Err(_) => errors += 1,
            }
        }
        if mono_ns() >= end {
            break 'outer;
        }
    }
    let secs = (end - start) as f64 / 1e9;
    let (pkts, bytes) = receiver.join().expect("receiver thread");
    Ok(format!(
        "sent={sent} send_errors={errors} received={pkts} bytes={bytes} secs={secs:.6}"
    ))
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

/// One TCP connection on 127.0.0.1 (an ephemeral port, never 53): a writer of 128 KiB chunks
/// and a reader, counting the bytes that arrive in [start, end).
fn tcp_bulk(start: u64, end: u64) -> Result<String> {
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
    sleep_until(start);
    let segs_before = tcp_out_segs();
    while mono_ns() < end {
        match w.write(&chunk) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e).context("TCP write"),
        }
    }
    let segs = tcp_out_segs().saturating_sub(segs_before);
    drop(w);
    let bytes = reader.join().expect("reader thread").context("TCP read")?;
    let secs = (end - start) as f64 / 1e9;
    Ok(format!("bytes={bytes} segments={segs} secs={secs:.6}"))
}

/// A UDP socket on 127.0.0.1:`port` with SO_REUSEPORT, so that several threads can serve.
fn reuseport_udp(port: u16) -> Result<UdpSocket> {
    // SAFETY: plain socket calls; the fd is handed to UdpSocket, which owns it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        let sock = UdpSocket::from_raw_fd(fd);
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1);
        set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, 4 << 20);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(LOOPBACK).to_be(),
            },
            sin_zero: [0; 8],
        };
        if libc::bind(
            fd,
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        ) != 0
        {
            bail!(
                "cannot bind UDP 127.0.0.1:{port}: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(sock)
    }
}

/// A DNS responder on 127.0.0.1:`port` (UDP): A -> 127.0.0.1, AAAA -> ::1, for every name.
/// Prints `ready` once bound, serves until `end`.
fn dns_server(port: u16, end: u64, threads: usize) -> Result<String> {
    let socks = (0..threads.max(1))
        .map(|_| reuseport_udp(port))
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
    Ok(format!("served={}", served.load(Ordering::Relaxed)))
}

struct DnsClient {
    port: u16,
    start: u64,
    end: u64,
    threads: usize,
    /// Closed loop: queries in flight per socket.
    window: usize,
    /// Open loop: queries per second in all (0: closed loop).
    rate: u64,
}

/// DNS queries (A and AAAA in turn, varied names) from `threads` sockets with `send_to` to
/// 127.0.0.1:`port`, either closed-loop (`window` in flight per socket, as fast as answers
/// come) or open-loop at `rate` queries/s in all.
fn dns_client(c: &DnsClient) -> Result<String> {
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
            let (start, end, window) = (c.start, c.end, c.window.max(1));
            let rate = c.rate / threads as u64;
            Ok(thread::spawn(move || {
                if rate == 0 {
                    closed_loop(&sock, dst, t as u32, start, end, window)
                } else {
                    open_loop(&sock, dst, t as u32, start, end, rate)
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
    let secs = (c.end - c.start) as f64 / 1e9;
    Ok(format!(
        "sent={sent} answered={answered} timeouts={timeouts} secs={secs:.6}"
    ))
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
    start: u64,
    end: u64,
    window: usize,
) -> std::io::Result<(u64, u64, u64)> {
    sock.set_read_timeout(Some(Duration::from_millis(20)))?;
    let mut q = Vec::with_capacity(512);
    let mut rbuf = [0u8; 2048];
    let (mut sent, mut answered, mut timeouts) = (0u64, 0u64, 0u64);
    sleep_until(start);
    let mut fill = |sent: &mut u64, n: usize| {
        for _ in 0..n {
            make_query(&mut q, t, *sent);
            if sock.send_to(&q, dst).is_ok() {
                *sent += 1;
            }
        }
    };
    fill(&mut sent, window);
    loop {
        let r = sock.recv_from(&mut rbuf);
        let now = mono_ns();
        if now >= end {
            break;
        }
        match r {
            Ok(_) => {
                answered += 1;
                fill(&mut sent, 1);
            }
            Err(_) => {
                // Lost in the machine (a full socket buffer): refill the window.
                timeouts += 1;
                fill(&mut sent, window);
            }
        }
    }
    Ok((sent, answered, timeouts))
}

fn open_loop(
    sock: &UdpSocket,
    dst: SocketAddr,
    t: u32,
    start: u64,
    end: u64,
    rate: u64,
) -> std::io::Result<(u64, u64, u64)> {
    sock.set_nonblocking(true)?;
    let mut q = Vec::with_capacity(512);
    let mut rbuf = [0u8; 2048];
    let (mut sent, mut answered, mut send_errors) = (0u64, 0u64, 0u64);
    sleep_until(start);
    loop {
        let now = mono_ns();
        if now >= end {
            break;
        }
        let due = ((now - start) as u128 * rate as u128 / 1_000_000_000) as u64;
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

/// Launches `prog http <t>` `count` times in turn, `gap_us` apart, where `<t>` is the
/// CLOCK_MONOTONIC time in ns taken by the child right before its exec.
fn latency(count: u64, gap_us: u64, prog: &str) -> Result<String> {
    let argv = [cstring(prog)?, cstring("http")?];
    let mut ok = 0u64;
    for _ in 0..count {
        let pid = fork_exec(&argv, || CString::new(mono_ns().to_string()).ok())?;
        if wait_ok(pid) {
            ok += 1;
        }
        thread::sleep(Duration::from_micros(gap_us));
    }
    Ok(format!("launched={ok}"))
}
