//! DNS clients that send the same query through every path a program can take: sendto on an
//! unconnected socket, send and write() on a connected one, sendmmsg (A and AAAA at once, as
//! glibc does), and TCP. Each waits for the answer, so that the exchange is complete when it
//! returns.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    time::Duration,
};

use hickory_proto::{
    op::{Message, Query},
    rr::{Name, RecordType},
};

const WAIT: Duration = Duration::from_secs(5);

/// A query for `name` (sent exactly as given, mixed case included).
pub fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    m.to_vec().expect("encode")
}

/// Refuses any server that is not on loopback: no test may send a packet elsewhere.
fn loopback_only(server: SocketAddr) -> SocketAddr {
    assert!(
        server.ip().is_loopback(),
        "the DNS test clients send to loopback only, not {server}"
    );
    server
}

fn local_for(server: SocketAddr) -> SocketAddr {
    if loopback_only(server).is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    }
}

fn udp(server: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind(local_for(server)).expect("bind");
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

fn recv(s: &UdpSocket) -> Message {
    let mut buf = [0u8; 4096];
    let n = s
        .recv(&mut buf)
        .expect("DNS answer from the test responder");
    Message::from_vec(&buf[..n]).expect("decodable answer")
}

/// sendto(2) on an unconnected socket.
pub fn sendto(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let s = udp(server);
    s.send_to(&query(name, qtype), server).expect("sendto");
    recv(&s)
}

/// send(2) on a connected socket.
pub fn connected_send(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let s = udp(server);
    s.connect(server).unwrap();
    s.send(&query(name, qtype)).expect("send");
    recv(&s)
}

/// write(2) on a connected socket (as Go's resolver does).
pub fn write(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let s = udp(server);
    s.connect(server).unwrap();
    let q = query(name, qtype);
    // SAFETY: valid fd and buffer.
    let n = unsafe { libc::write(s.as_raw_fd(), q.as_ptr().cast(), q.len()) };
    assert_eq!(n, q.len() as isize, "write");
    recv(&s)
}

/// sendmmsg(2) with an A and an AAAA query in one call, on a connected socket (glibc's way).
pub fn sendmmsg(server: SocketAddr, name: &str) -> (Message, Message) {
    let s = udp(server);
    s.connect(server).unwrap();
    let mut qa = query(name, RecordType::A);
    let mut qaaaa = query(name, RecordType::AAAA);
    let mut iov = [
        libc::iovec {
            iov_base: qa.as_mut_ptr().cast(),
            iov_len: qa.len(),
        },
        libc::iovec {
            iov_base: qaaaa.as_mut_ptr().cast(),
            iov_len: qaaaa.len(),
        },
    ];
    // SAFETY: zeroed mmsghdr is valid; pointers stay alive for the call.
    let mut msgs: [libc::mmsghdr; 2] = unsafe { std::mem::zeroed() };
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: as above.
    let n = unsafe { libc::sendmmsg(s.as_raw_fd(), msgs.as_mut_ptr(), 2, 0) };
    assert_eq!(n, 2, "sendmmsg sent both queries");
    (recv(&s), recv(&s))
}

/// DNS over TCP (2-byte length prefix).
pub fn tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut stream = TcpStream::connect_timeout(&loopback_only(server), WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let q = query(name, qtype);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    stream.write_all(&framed).unwrap();
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("TCP answer length");
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut msg).expect("TCP answer");
    Message::from_vec(&msg).expect("decodable answer")
}

/// `dig @127.0.0.1 -p PORT NAME A` as a child process (dnsutils, installed by setup); asserts
/// that it got an answer.
pub fn dig(port: u16, name: &str) {
    let status = std::process::Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &port.to_string(),
            name,
            "A",
            "+tries=1",
            "+time=5",
            "+short",
        ])
        .status()
        .expect("dig (dnsutils) is installed by `cargo xtask setup`");
    assert!(status.success(), "dig {name}: {status}");
}
