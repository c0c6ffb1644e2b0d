//! The kernel side of connections, through the loader alone (no engine): the real programs
//! on the running kernel, real sockets of real child processes (python) on loopback, and
//! the records they write, decoded. Needs root (it loads eBPF programs): not root, it fails
//! and says why, unless TUNNELWATCH_SKIP_E2E=1 is set, which skips it loudly.
//!
//! The test process is the "sensor" here (its own traffic is not reported), so every flow
//! comes from a child; records are told apart by the child's pid and the socket cookies of
//! its flows, so other activity on the host does not matter.
#![cfg(target_os = "linux")]

use std::{
    collections::HashSet,
    io::{Read as _, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use tunnelwatch::linux::{
    btf_offsets,
    decode::{self, Record},
    loader::{self, KernelClock, KernelStats, LoadOptions, Probes},
    preflight,
};
use tunnelwatch_common::{
    ConnRecord,
    limits::{FLIGHT_TCP_BYTES, FLIGHT_UDP_DATAGRAMS},
    records::{conn_flags, conn_origin, flight_flags},
    stats,
};

/// A port treated as DNS by the programs loaded here (no one needs to listen on it).
const DNS_PORT: u16 = 5399;

fn require_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("TUNNELWATCH_SKIP_E2E").as_deref() == Ok("1") {
        eprintln!("SKIPPED: kernel tests need root (TUNNELWATCH_SKIP_E2E=1 is set)");
        return false;
    }
    panic!(
        "kernel tests load eBPF programs and need root: run `cargo xtask test` as root \
         (or set TUNNELWATCH_SKIP_E2E=1 to skip them explicitly)"
    );
}

/// A flight record, owned.
#[derive(Clone, Debug)]
struct Flight {
    cookie: u64,
    flags: u8,
    index: u8,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    payload_len: u32,
    payload: Vec<u8>,
}

/// The programs, loaded and attached, and their ring.
struct Kernel {
    /// Keeps the programs attached.
    _probes: Probes,
    clock: KernelClock,
    ring: RingBuf<MapData>,
    stats: KernelStats,
    conns: Vec<ConnRecord>,
    flights: Vec<Flight>,
}

impl Kernel {
    fn load() -> Kernel {
        let host = preflight::check().expect("preflight");
        let offsets = btf_offsets::read(&host.btf).expect("BTF offsets");
        let mut probes = loader::load(&LoadOptions {
            offsets,
            cgroup_root: host.cgroup_root,
            ring_buffer_bytes: 8 << 20,
            dns_ports: vec![53, DNS_PORT],
            kernel_log_level: 0,
        })
        .expect("load and attach");
        let ring = probes.take_events().expect("events ring");
        let stats = probes.take_stats().expect("stats");
        let clock = probes.take_clock().expect("clock");
        Kernel {
            _probes: probes,
            clock,
            ring,
            stats,
            conns: Vec::new(),
            flights: Vec::new(),
        }
    }

    /// Reads the ring until `done` holds for what `pid` did, or fails after 10 s.
    fn wait(&mut self, pid: u32, what: &str, done: impl Fn(&[ConnRecord], &[Flight]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            self.clock.tick().expect("tick");
            while let Some(item) = self.ring.next() {
                match decode::decode(&item) {
                    Ok(Record::Conn(c)) => self.conns.push(c),
                    Ok(Record::Flight(f)) => self.flights.push(Flight {
                        cookie: f.cookie,
                        flags: f.flags,
                        index: f.index,
                        src: addr(f.ip_version, &f.src_addr, f.src_port),
                        dst: addr(f.ip_version, &f.dst_addr, f.dst_port),
                        seq: f.seq,
                        payload_len: f.payload_len,
                        payload: f.payload.to_vec(),
                    }),
                    Ok(_) => {}
                    Err(e) => panic!("undecodable record: {e}"),
                }
            }
            let (conns, flights) = self.of(pid);
            if done(&conns, &flights) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: flows {conns:#?}, flights {flights:#?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The flows of `pid` and their flights.
    fn of(&self, pid: u32) -> (Vec<ConnRecord>, Vec<Flight>) {
        let conns: Vec<ConnRecord> = self
            .conns
            .iter()
            .filter(|c| c.task.tgid == pid)
            .copied()
            .collect();
        let cookies: HashSet<u64> = conns.iter().map(|c| c.cookie).collect();
        let flights = self
            .flights
            .iter()
            .filter(|f| cookies.contains(&f.cookie))
            .cloned()
            .collect();
        (conns, flights)
    }

    /// Reads the ring a little longer, for records that must not come.
    fn settle(&mut self, pid: u32) -> (Vec<ConnRecord>, Vec<Flight>) {
        thread::sleep(Duration::from_millis(300));
        self.wait(pid, "nothing", |_, _| true);
        self.of(pid)
    }

    fn stat(&self, index: u32) -> u64 {
        self.stats.read()[index as usize]
    }
}

fn addr(version: u8, a: &[u8; 16], port: u16) -> SocketAddr {
    let ip = if version == 4 {
        IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*a))
    };
    SocketAddr::new(ip, port)
}

fn conn_dst(c: &ConnRecord) -> SocketAddr {
    addr(c.ip_version, &c.dst_addr, c.dst_port)
}

/// Runs a python client (`script`, with `args`), feeding it `stdin`; returns its pid once it
/// exited successfully.
fn python(script: &str, args: &[String], stdin: &[u8]) -> u32 {
    run(Command::new("python3"), script, args, stdin)
}

/// As [`python`], in a network namespace of its own (`unshare -n`, which execs python: the
/// same pid), where it may set the namespace's sysctls; its loopback is down until it brings
/// it up.
fn python_in_netns(script: &str, args: &[String], stdin: &[u8]) -> u32 {
    let mut cmd = Command::new("unshare");
    cmd.args(["-n", "python3"]);
    run(cmd, script, args, stdin)
}

fn run(mut cmd: Command, script: &str, args: &[String], stdin: &[u8]) -> u32 {
    let mut child = cmd
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pid
}

/// A TCP server on `ip` that reads every connection to its end; returns its address.
fn tcp_sink(ip: &str) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).expect("listen");
    let local = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    local
}

/// A UDP socket on `ip` that receives (and drops) what comes; returns its address.
fn udp_sink(ip: &str) -> SocketAddr {
    let sock = UdpSocket::bind((ip, 0)).expect("bind");
    let local = sock.local_addr().unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while sock.recv(&mut buf).is_ok() {}
    });
    local
}

/// A TLS handshake record of `len` bytes in all holding a ClientHello (the body is filler:
/// the kernel side only reads the record and handshake headers).
fn client_hello_record(len: usize) -> Vec<u8> {
    let body = len - 5;
    let hello = body - 4;
    let mut v = vec![
        0x16,
        0x03,
        0x01,
        (body >> 8) as u8,
        body as u8,
        0x01,
        (hello >> 16) as u8,
        (hello >> 8) as u8,
        hello as u8,
    ];
    v.extend((0..hello).map(|i| (i % 251) as u8));
    v
}

/// Connects to `dst`, sends stdin's bytes cut at the given offsets as separate segments
/// (TCP_NODELAY, a pause between), then `after`, then closes.
const TCP_CLIENT: &str = r#"
import socket, sys, time
host, port, after = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
cuts = [int(c) for c in sys.argv[4:]]
data = sys.stdin.buffer.read()
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.connect((host, port))
start = 0
for c in cuts + [len(data)]:
    s.sendall(data[start:c]); start = c
    time.sleep(0.05)
if after:
    s.sendall(after); time.sleep(0.05)
s.close()
"#;

fn tcp_client(dst: SocketAddr, data: &[u8], cuts: &[usize], after: &str) -> u32 {
    let mut args = vec![
        dst.ip().to_string(),
        dst.port().to_string(),
        after.to_string(),
    ];
    args.extend(cuts.iter().map(usize::to_string));
    python(TCP_CLIENT, &args, data)
}

/// The data flights of a TCP flow, in order, and the bytes they hold put back by sequence.
/// The stream starts at the first data segment captured (index 0): no SYN is sent without
/// Fast Open data.
fn tcp_stream(flights: &[Flight]) -> (Vec<&Flight>, Vec<u8>) {
    assert!(
        flights.iter().all(|f| f.flags & flight_flags::SYN == 0),
        "{flights:#?}"
    );
    let mut data: Vec<&Flight> = flights.iter().collect();
    data.sort_by_key(|f| f.index);
    assert_eq!(data.first().map(|f| f.index), Some(0), "{data:#?}");
    let start = data[0].seq;
    let mut stream = Vec::new();
    for f in &data {
        let at = f.seq.wrapping_sub(start) as usize;
        assert_eq!(at, stream.len(), "a gap or overlap before segment {f:?}");
        stream.extend_from_slice(&f.payload);
    }
    (data, stream)
}

#[test]
fn tcp_connect_reports_the_flow_and_a_client_hello_split_over_segments() {
    if !require_root() {
        return;
    }
    let mut k = Kernel::load();
    for ip in ["127.0.0.1", "::1"] {
        let dst = tcp_sink(ip);
        let hello = client_hello_record(3000);
        let pid = tcp_client(dst, &hello, &[1000, 2200], "after the first flight");
        k.wait(pid, "a TCP flow and its first flight", |c, f| {
            c.len() == 1 && f.iter().any(|f| f.flags & flight_flags::LAST != 0)
        });
        let (conns, flights) = k.settle(pid);
        assert_eq!(conns.len(), 1, "{conns:#?}");
        let c = conns[0];
        assert_eq!(c.origin, conn_origin::CONNECT);
        assert_eq!(c.protocol, 6);
        assert_eq!(conn_dst(&c), dst);
        assert_eq!(c.flags & conn_flags::SRC_BOUND, 0);
        assert_ne!(c.flags & conn_flags::CAPTURING, 0);
        assert_eq!(
            tunnelwatch::linux::decode::comm(&c.task.comm),
            "python3",
            "{:?}",
            c.task
        );
        // Three data segments hold the ClientHello exactly, and name the source.
        let (data, stream) = tcp_stream(&flights);
        assert_eq!(data.len(), 3, "{data:#?}");
        assert_eq!(stream, hello, "the first flight, byte for byte");
        let src = data[0].src;
        assert_eq!(src.ip(), dst.ip());
        assert_ne!(src.port(), 0);
        assert!(data.iter().all(|f| f.src == src && f.dst == dst));
        assert_eq!(data[2].flags & flight_flags::LAST, flight_flags::LAST);
        assert_eq!(data[0].flags & flight_flags::LAST, 0);
    }
}

#[test]
fn tcp_first_flight_that_is_not_tls_is_its_first_segment() {
    if !require_root() {
        return;
    }
    let mut k = Kernel::load();
    let dst = tcp_sink("127.0.0.1");
    let request = b"GET / HTTP/1.1\r\nHost: tunnel.example\r\n\r\n";
    let pid = tcp_client(dst, request, &[], "more data");
    k.wait(pid, "a TCP flow", |c, f| {
        c.len() == 1 && f.iter().any(|f| f.flags & flight_flags::LAST != 0)
    });
    let (_, flights) = k.settle(pid);
    let (data, stream) = tcp_stream(&flights);
    assert_eq!(data.len(), 1, "{data:#?}");
    assert_eq!(stream, request);
    assert_ne!(data[0].flags & flight_flags::LAST, 0);
}

#[test]
fn tcp_client_hello_longer_than_the_budget_is_cut_at_it() {
    if !require_root() {
        return;
    }
    let mut k = Kernel::load();
    let dst = tcp_sink("127.0.0.1");
    let hello = client_hello_record(12_000);
    let before = k.stat(stats::FLIGHT_TRUNCATED);
    let pid = tcp_client(dst, &hello, &[3000, 6000, 9000], "");
    k.wait(pid, "a TCP flow", |c, f| {
        c.len() == 1 && f.iter().any(|f| f.flags & flight_flags::LAST != 0)
    });
    let (_, flights) = k.settle(pid);
    let (data, stream) = tcp_stream(&flights);
    assert_eq!(stream.len(), FLIGHT_TCP_BYTES as usize, "{data:#?}");
    assert_eq!(stream, hello[..FLIGHT_TCP_BYTES as usize]);
    // 3000 + 3000 + 2192 of the third segment.
    assert_eq!(data.len(), 3);
    assert_eq!(data[2].payload_len, 3000);
    assert!(k.stat(stats::FLIGHT_TRUNCATED) > before);
}

#[test]
fn udp_connected_and_unconnected_flows() {
    if !require_root() {
        return;
    }
    let mut k = Kernel::load();
    let a = udp_sink("127.0.0.1");
    let b = udp_sink("::1");
    let c = udp_sink("::1");
    // Connected: three datagrams, the first two captured. Unconnected: b, c, b, c: one flow
    // per destination.
    let script = r#"
import socket, sys
a, b, c = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(('127.0.0.1', a))
for i in range(3):
    s.send(b'connected %d' % i)
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for i, port in enumerate([b, c, b, c]):
    u.sendto(b'unconnected %d' % i, ('::1', port))
"#;
    let args = [a.port(), b.port(), c.port()].map(|p| p.to_string());
    let pid = python(script, &args, b"");
    k.wait(pid, "three UDP flows", |c, f| c.len() == 3 && f.len() >= 6);
    let (conns, flights) = k.settle(pid);
    assert_eq!(conns.len(), 3, "{conns:#?}");
    let connected = conns
        .iter()
        .find(|c| c.origin == conn_origin::CONNECT)
        .expect("the connect");
    assert_eq!(conn_dst(connected), a);
    assert_eq!(connected.protocol, 17);
    let of = |cookie: u64, dst: SocketAddr| -> Vec<Vec<u8>> {
        flights
            .iter()
            .filter(|f| f.cookie == cookie && f.dst == dst)
            .map(|f| f.payload.clone())
            .collect()
    };
    assert_eq!(
        of(connected.cookie, a),
        [b"connected 0".to_vec(), b"connected 1".to_vec()],
        "the first {FLIGHT_UDP_DATAGRAMS} datagrams"
    );
    let last: Vec<&Flight> = flights
        .iter()
        .filter(|f| f.cookie == connected.cookie)
        .collect();
    assert_ne!(last[1].flags & flight_flags::LAST, 0);
    let sent: Vec<&ConnRecord> = conns
        .iter()
        .filter(|c| c.origin == conn_origin::SENDMSG)
        .collect();
    assert_eq!(
        sent.iter().map(|c| conn_dst(c)).collect::<Vec<_>>(),
        [b, c],
        "one flow per destination"
    );
    for s in &sent {
        assert_eq!(s.ip_version, 6);
        assert_ne!(s.flags & conn_flags::SRC_BOUND, 0, "sendmsg binds first");
        assert_ne!(s.src_port, 0);
    }
    // Each destination's first datagrams, interleaved as they were sent.
    assert_eq!(
        of(sent[0].cookie, b),
        [b"unconnected 0".to_vec(), b"unconnected 2".to_vec()]
    );
    assert_eq!(
        of(sent[0].cookie, c),
        [b"unconnected 1".to_vec(), b"unconnected 3".to_vec()]
    );
}

#[test]
fn flows_to_a_dns_port_are_reported_without_capture() {
    if !require_root() {
        return;
    }
    let mut k = Kernel::load();
    let sink = UdpSocket::bind(("127.0.0.1", DNS_PORT));
    let script = r#"
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(('127.0.0.1', port))
s.send(b'\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01')
"#;
    let pid = python(script, &[DNS_PORT.to_string()], b"");
    k.wait(pid, "a UDP flow to a DNS port", |c, _| c.len() == 1);
    let (conns, flights) = k.settle(pid);
    assert_eq!(conns[0].dst_port, DNS_PORT);
    assert_eq!(conns[0].flags & conn_flags::CAPTURING, 0);
    assert!(flights.is_empty(), "{flights:#?}");
    drop(sink);
}

#[test]
fn tcp_fast_open_data_in_the_syn() {
    if !require_root() {
        return;
    }
    let mut k = Kernel::load();
    // In a network namespace of its own, with Fast Open on for clients and servers: the
    // client's first connection gets a cookie, its second sends the ClientHello in the SYN.
    let script = r#"
import socket, subprocess, sys, threading, time
subprocess.run(['ip', 'link', 'set', 'lo', 'up'], check=True)
open('/proc/sys/net/ipv4/tcp_fastopen', 'w').write('3')
data = sys.stdin.buffer.read()
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
srv.bind(('127.0.0.1', 0)); srv.listen(8)
port = srv.getsockname()[1]
def serve():
    for _ in range(2):
        c, _ = srv.accept()
        while c.recv(65536): pass
        c.close()
t = threading.Thread(target=serve); t.start()
for _ in range(2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.sendto(data, socket.MSG_FASTOPEN, ('127.0.0.1', port))
    time.sleep(0.05)
    s.close()
t.join()
"#;
    let hello = client_hello_record(600);
    let pid = python_in_netns(script, &[], &hello);
    k.wait(pid, "two TCP flows", |c, f| {
        c.len() == 2
            && f.iter()
                .filter(|f| f.flags & flight_flags::LAST != 0)
                .count()
                == 2
    });
    let (conns, flights) = k.settle(pid);
    assert!(conns.iter().all(|c| c.origin == conn_origin::CONNECT));
    let second = conns.iter().max_by_key(|c| c.header.boot_ns).unwrap();
    let syn = flights
        .iter()
        .find(|f| f.cookie == second.cookie && f.flags & flight_flags::SYN != 0)
        .expect("the SYN");
    assert_eq!(syn.payload, hello, "the ClientHello rode in the SYN");
    assert_ne!(syn.flags & flight_flags::LAST, 0);
}
