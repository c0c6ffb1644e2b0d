//! A DNS responder for the tests, on 127.0.0.1 and ::1 only, UDP and TCP, on one port.
//! It answers A with 127.0.0.1 and AAAA with ::1 for every name, except names under
//! `nxdomain.` which get NXDomain. It never forwards anything anywhere.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::{
        RData, Record, RecordType,
        rdata::{A, AAAA},
    },
};

pub struct Responder {
    pub port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

const V4: Ipv4Addr = Ipv4Addr::LOCALHOST;
const V6: Ipv6Addr = Ipv6Addr::LOCALHOST;

impl Responder {
    /// Binds UDP and TCP on 127.0.0.1 and ::1 at `port` (0: a free port, the same for all four).
    pub fn start(port: u16) -> Responder {
        for _ in 0..50 {
            if let Some(r) = Self::try_start(port) {
                return r;
            }
            if port != 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("cannot bind a DNS responder on 127.0.0.1/::1 port {port}");
    }

    fn try_start(port: u16) -> Option<Responder> {
        let u4 = UdpSocket::bind((V4, port)).ok()?;
        let port = u4.local_addr().ok()?.port();
        let u6 = UdpSocket::bind((V6, port)).ok()?;
        let t4 = TcpListener::bind((V4, port)).ok()?;
        let t6 = TcpListener::bind((V6, port)).ok()?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for u in [u4, u6] {
            let stop = stop.clone();
            u.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            threads.push(std::thread::spawn(move || serve_udp(u, &stop)));
        }
        for t in [t4, t6] {
            let stop = stop.clone();
            t.set_nonblocking(true).unwrap();
            threads.push(std::thread::spawn(move || serve_tcp(t, &stop)));
        }
        Some(Responder {
            port,
            stop,
            threads,
        })
    }

    pub fn v4(&self) -> SocketAddr {
        SocketAddr::from((V4, self.port))
    }

    pub fn v6(&self) -> SocketAddr {
        SocketAddr::from((V6, self.port))
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The answer to `query` (None for garbage).
pub fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.metadata.message_type = MessageType::Response;
    for query in &q.queries {
        r.add_query(query.clone());
        let name = query.name().clone();
        if name.to_ascii().to_ascii_lowercase().contains("nxdomain.") {
            r.metadata.response_code = ResponseCode::NXDomain;
            continue;
        }
        match query.query_type() {
            RecordType::A => {
                r.add_answer(Record::from_rdata(name, 60, RData::A(A(V4))));
            }
            RecordType::AAAA => {
                r.add_answer(Record::from_rdata(name, 60, RData::AAAA(AAAA(V6))));
            }
            _ => {}
        }
    }
    r.to_vec().ok()
}

fn serve_udp(sock: UdpSocket, stop: &AtomicBool) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = answer(&buf[..n]) {
            let _ = sock.send_to(&reply, peer);
        }
    }
}

fn serve_tcp(listener: TcpListener, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                std::thread::spawn(move || serve_tcp_conn(stream));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn serve_tcp_conn(mut stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        if stream.read_exact(&mut msg).is_err() {
            return;
        }
        let Some(reply) = answer(&msg) else { return };
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
}
