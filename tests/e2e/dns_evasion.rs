//! DNS that an unprivileged program could once send past the sensor (issue 12): a TCP query
//! split across segments, pipelined queries straddling segments, two queries in one UDP GSO
//! send, a query carried in a TCP Fast Open SYN; and a query sent on a packet socket, which no
//! hook sees leave, caught when its response comes back (`inferred_from_response`).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream, UdpSocket},
    os::fd::AsRawFd,
    time::Duration,
};

use hickory_proto::{op::Message, rr::RecordType};
use serde_json::Value;

use crate::{
    dns::{alert_for, setup},
    exec::me,
    harness::{
        dns_client, programs, require_root,
        sensor::{Sensor, s},
        unique,
    },
};

/// The alert was raised by the query itself, as this process sent it (not inferred from the
/// response).
fn assert_seen_as_sent(line: &Value, transport: &str) {
    assert_eq!(s(line, "message_type"), "Query", "{line:#}");
    assert_eq!(s(line, "transport"), transport, "{line:#}");
    assert!(line.get("inferred_from_response").is_none(), "{line:#}");
    assert_eq!(line["process_id"], me().pid, "{line:#}");
}

/// `query` with its TCP length prefix.
fn framed(name: &str) -> Vec<u8> {
    let q = dns_client::query(name, RecordType::A);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    framed
}

/// Writes `pieces` on one TCP connection as separate segments (no Nagle, a pause between
/// writes), then reads `answers` answers.
fn tcp_in_pieces(server: SocketAddr, pieces: &[&[u8]], answers: usize) {
    let mut stream = TcpStream::connect(server).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for p in pieces {
        stream.write_all(p).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..answers {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).expect("TCP answer length");
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut msg).expect("TCP answer");
        Message::from_vec(&msg).expect("decodable answer");
    }
}

#[test]
fn a_tcp_query_split_after_its_length_prefix_or_inside_its_name_alerts_on_the_query() {
    if !require_root() {
        return;
    }
    let (dns, mut sensor) = setup();
    let name = format!("{}.ngrok.io", unique("tcpsplit"));
    let q = framed(&name);
    tcp_in_pieces(dns.v4(), &[&q[..2], &q[2..]], 1);
    let line = sensor.wait_for(&name, alert_for(&name));
    assert_seen_as_sent(&line, "tcp");
    // A cut inside the name (12 header bytes, the prefix, and 3 bytes of the first label).
    let name = format!("{}.ngrok.io", unique("tcpname"));
    let q = framed(&name);
    tcp_in_pieces(dns.v6(), &[&q[..17], &q[17..]], 1);
    let line = sensor.wait_for(&name, alert_for(&name));
    assert_seen_as_sent(&line, "tcp");
    sensor.stop();
}

#[test]
fn pipelined_tcp_queries_straddling_segments_all_alert() {
    if !require_root() {
        return;
    }
    let (dns, mut sensor) = setup();
    let first = format!("{}.ngrok.io", unique("pipe1"));
    let second = format!("{}.ngrok.io", unique("pipe2"));
    let third = format!("{}.ngrok.io", unique("pipe3"));
    // The first query whole with the start of the second; the rest of the second with the
    // third.
    let a = [framed(&first), framed(&second)[..7].to_vec()].concat();
    let b = [framed(&second)[7..].to_vec(), framed(&third)].concat();
    tcp_in_pieces(dns.v4(), &[&a, &b], 3);
    for name in [&first, &second, &third] {
        let line = sensor.wait_for(name, alert_for(name));
        assert_seen_as_sent(&line, "tcp");
    }
    sensor.stop();
}

#[test]
fn two_queries_in_one_udp_gso_send_both_alert() {
    if !require_root() {
        return;
    }
    let (dns, mut sensor) = setup();
    let base = unique("gso");
    let (first, second) = (format!("a{base}.ngrok.io"), format!("b{base}.ngrok.io"));
    let (qa, qb) = (
        dns_client::query(&first, RecordType::A),
        dns_client::query(&second, RecordType::A),
    );
    assert_eq!(qa.len(), qb.len());
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sock.connect(dns.v4()).unwrap();
    // UDP_SEGMENT (Linux 4.18): one send() leaves as datagrams of this size.
    let size: libc::c_int = qa.len() as libc::c_int;
    // SAFETY: a valid socket and an int option value.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_SEGMENT,
            (&raw const size).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "UDP_SEGMENT: {}", std::io::Error::last_os_error());
    sock.send(&[qa, qb].concat())
        .expect("one send of two queries");
    let mut buf = [0u8; 512];
    for _ in 0..2 {
        sock.recv(&mut buf)
            .expect("two answers: two datagrams left");
    }
    for name in [&first, &second] {
        let line = sensor.wait_for(name, alert_for(name));
        assert_seen_as_sent(&line, "udp");
    }
    sensor.stop();
}

#[test]
fn a_query_carried_in_a_tcp_fast_open_syn_alerts() {
    if !require_root() {
        return;
    }
    // In a network namespace of its own (Fast Open is set per namespace): clients send data
    // in the SYN without a cookie and the server takes it (0x207), so the query is never
    // sent again after the handshake; the script checks that the SYN carried it.
    let port = 5300 + (std::process::id() % 500) as u16 + 7;
    let name = format!("{}.ngrok.io", unique("tfo"));
    let mut sensor = Sensor::start(&["--dns-port", &port.to_string()]);
    let q = framed(&name);
    let script = format!(
        "import socket,threading,time\n\
         open('/proc/sys/net/ipv4/tcp_fastopen','w').write('519')\n\
         srv=socket.socket(socket.AF_INET,socket.SOCK_STREAM)\n\
         srv.setsockopt(socket.IPPROTO_TCP,socket.TCP_FASTOPEN,16)\n\
         srv.bind(('127.0.0.1',{port}));srv.listen(4)\n\
         got=[]\n\
         def serve():\n\
         \x20c,_=srv.accept();c.settimeout(5);got.append(c.recv(4096));c.close()\n\
         t=threading.Thread(target=serve);t.start()\n\
         c=socket.socket(socket.AF_INET,socket.SOCK_STREAM)\n\
         c.sendto(bytes.fromhex('{hex}'),socket.MSG_FASTOPEN,('127.0.0.1',{port}))\n\
         t.join()\n\
         info=c.getsockopt(socket.IPPROTO_TCP,socket.TCP_INFO,104)\n\
         assert info[5]&32, 'the SYN carried no data'\n\
         assert got[0]==bytes.fromhex('{hex}'), got\n\
         c.close()\n",
        hex = q.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    );
    let status = programs::python_in_own_netns(&script);
    assert!(status.success(), "Fast Open client and server: {status}");
    let line = sensor.wait_for(&name, alert_for(&name));
    assert_eq!(s(&line, "message_type"), "Query", "{line:#}");
    assert!(line.get("inferred_from_response").is_none(), "{line:#}");
    assert!(s(&line, "process_name").starts_with("python3"), "{line:#}");
    sensor.stop();
}

#[test]
fn a_query_sent_on_a_packet_socket_alerts_when_its_response_comes_back() {
    if !require_root() {
        return;
    }
    // An IPv4/UDP packet built by hand and sent on lo through AF_PACKET: no socket sends it,
    // so no hook sees it leave. A UDP socket bound to its source port takes the answer from a
    // responder in the same script. In a network namespace of its own, where lo takes
    // 127.0.0.0/8 packets routed like ones from the wire (a packet socket's packet has no
    // route yet) and from a local source (route_localnet, accept_local).
    let port = 5300 + (std::process::id() % 500) as u16 + 11;
    let name = format!("{}.ngrok.io", unique("rawq"));
    let mut sensor = Sensor::start(&["--dns-port", &port.to_string()]);
    let q = dns_client::query(&name, RecordType::A);
    let script = format!(
        "import socket,struct,threading\n\
         for k in ('all/route_localnet','lo/route_localnet','all/accept_local','lo/accept_local'): open('/proc/sys/net/ipv4/conf/'+k,'w').write('1')\n\
         srv=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);srv.bind(('127.0.0.1',{port}));srv.settimeout(5)\n\
         def serve():\n\
         \x20m,peer=srv.recvfrom(512);srv.sendto(m[:2]+bytes([m[2]|0x80])+m[3:],peer)\n\
         t=threading.Thread(target=serve);t.start()\n\
         c=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);c.bind(('127.0.0.1',0));c.settimeout(5)\n\
         sport=c.getsockname()[1]\n\
         q=bytes.fromhex('{hex}')\n\
         udp=struct.pack('>HHHH',sport,{port},8+len(q),0)+q\n\
         lo=socket.inet_aton('127.0.0.1')\n\
         ip=struct.pack('>BBHHHBBH4s4s',0x45,0,20+len(udp),0x1234,0x4000,64,17,0,lo,lo)\n\
         s=sum(struct.unpack('>10H',ip));s=(s&0xffff)+(s>>16);s=(s&0xffff)+(s>>16)\n\
         ip=ip[:10]+struct.pack('>H',~s&0xffff)+ip[12:]\n\
         p=socket.socket(socket.AF_PACKET,socket.SOCK_RAW);p.bind(('lo',0))\n\
         p.send(bytes(12)+b'\\x08\\x00'+ip+udp)\n\
         c.recvfrom(512);t.join()\n",
        hex = q.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    );
    let status = programs::python_in_own_netns(&script);
    assert!(status.success(), "raw query and its answer: {status}");
    let line = sensor.wait_for(&name, alert_for(&name));
    assert_eq!(s(&line, "message_type"), "Query", "{line:#}");
    assert_eq!(line["inferred_from_response"], true, "{line:#}");
    assert_eq!(s(&line, "src"), "127.0.0.1", "{line:#}");
    assert_eq!(line["dest_port"], port, "{line:#}");
    sensor.stop();
}
