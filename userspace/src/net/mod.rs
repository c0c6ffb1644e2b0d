//! What a connection's first flight and the DNS say about where it goes, in plain data: the
//! TLS ClientHello ([`tls`]), the QUIC Initial ([`quic`]), and whether a datagram to any port is
//! a DNS query ([`dns_sniff`]). The names DNS answers gave to addresses are the engine's
//! `names` (the Windows sensor uses them too).
//! Nothing here is tied to an OS or a kernel: the Linux sensor feeds it the bytes its programs
//! capture and the DNS messages it decodes.

pub mod dns_sniff;
pub mod quic;
pub mod tls;
