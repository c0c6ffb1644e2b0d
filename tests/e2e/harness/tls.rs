//! What the connection tests run on loopback: a TLS server (`openssl s_server` with a
//! self-signed certificate made for the test), UDP and TCP sinks, the clients (real programs:
//! openssl, curl, python's ssl, aioquic from PyPI in the venv `cargo xtask setup` makes), and
//! a stand-in for a resolver daemon that resolves names for other programs over a Unix socket
//! (as systemd-resolved does for its NSS module). Every address is 127.0.0.1 or ::1.

use std::{
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// The python with aioquic that `cargo xtask setup` installs (`target/e2e-venv`).
pub fn venv_python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run `cargo xtask setup` (it installs aioquic for the QUIC tests)",
        p.display()
    );
    p
}

/// A free TCP port on 127.0.0.1 and ::1 (bound and released).
pub fn free_port() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if TcpListener::bind(("::1", port)).is_ok() {
            return port;
        }
    }
}

/// `openssl s_server` on `addr`, with a certificate made for it; killed when dropped.
pub struct TlsServer {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    pub fn start(addr: SocketAddr) -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let made = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=tunnelwatch-test", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl req");
        assert!(made.success(), "openssl req failed");
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-accept", &addr.to_string()])
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "openssl s_server on {addr} not up"
            );
            thread::sleep(Duration::from_millis(50));
        }
        TlsServer {
            child,
            addr,
            _dir: dir,
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A UDP socket on `ip` (port 0: any free one) that takes datagrams and drops them.
pub fn udp_sink(ip: &str, port: u16) -> SocketAddr {
    let sock = UdpSocket::bind((ip, port)).expect("bind a UDP sink");
    let addr = sock.local_addr().unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while sock.recv(&mut buf).is_ok() {}
    });
    addr
}

/// Runs `cmd` to its end (its output discarded; failures are fine: a client whose server
/// hangs up still sent what the test looks for); returns its pid.
pub fn run_client(cmd: &mut Command) -> u32 {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a client");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    pid
}

/// `openssl s_client` to `addr` sending server name `name` (none when `None`) and ALPN `h2`
/// (its stdin is empty: it closes once the handshake is done).
pub fn s_client(addr: SocketAddr, name: Option<&str>) -> Command {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-connect", &addr.to_string()]);
    match name {
        Some(n) => cmd.args(["-servername", n]),
        None => cmd.arg("-noservername"),
    };
    cmd.args(["-alpn", "h2"]);
    cmd
}

/// A python script that connects with TLS (its `ssl` module) to HOST PORT with server name
/// NAME, certificate checks off (the server's is self-signed).
pub const PYTHON_TLS: &str = r#"
import socket, ssl, sys
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.set_alpn_protocols(["h2", "http/1.1"])
with socket.create_connection((host, port), timeout=5) as s:
    with ctx.wrap_socket(s, server_hostname=name) as t:
        pass
"#;

/// An aioquic client that opens a QUIC connection to HOST PORT with server name NAME and ALPN
/// ALPN, and gives up after a second (a UDP sink never answers: its Initial is what counts).
pub const PYTHON_QUIC: &str = r#"
import asyncio, ssl, sys
from aioquic.asyncio import connect
from aioquic.quic.configuration import QuicConfiguration
host, port, name, alpn = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
async def main():
    cfg = QuicConfiguration(is_client=True, alpn_protocols=[alpn], server_name=name)
    cfg.verify_mode = ssl.CERT_NONE
    async with connect(host, port, configuration=cfg) as c:
        await c.ping()
try:
    asyncio.run(asyncio.wait_for(main(), 1.5))
except Exception:
    pass
"#;

/// A stand-in for a resolver daemon: serves SOCKET (a Unix socket); for each name a client
/// sends, asks the DNS server at 127.0.0.1:PORT for its A record (its own query, over UDP)
/// and sends back the address. Prints `ready` once listening.
pub const RESOLVER_DAEMON: &str = r#"
import os, random, socket, struct, sys
path, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path); srv.listen(4)
print("ready", flush=True)
while True:
    c, _ = srv.accept()
    name = c.recv(512).decode()
    qid = random.randrange(65536)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", 1, 1)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(5)
    u.sendto(q, ("127.0.0.1", port))
    r, _ = u.recvfrom(4096)
    # The last 4 bytes of a response with one A answer are its address.
    c.sendall(socket.inet_ntoa(r[-4:]).encode())
    c.close()
"#;

/// A client of [`RESOLVER_DAEMON`]: prints the address of NAME as the daemon at SOCKET says.
pub const RESOLVER_CLIENT: &str = r#"
import socket, sys
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1]); c.sendall(sys.argv[2].encode())
print(c.recv(64).decode())
"#;
