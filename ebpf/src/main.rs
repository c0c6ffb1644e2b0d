//! tunnelwatch's kernel side. It captures, bounds and drops: no rule is matched here.
//!
//! - `exec.rs`: `sched_process_exec` (raw tracepoint): every successful exec, with argv read
//!   from the new process's own argument area, the executable's path from its dentries, the
//!   task's namespaces and its cgroup's names (`cgroup_path.rs`).
//! - `fork.rs`, `exit.rs`: `sched_process_fork` / `sched_process_exit`, so user space can keep a
//!   process table that names the sender of a DNS packet after it is gone.
//! - `dns.rs`: `cgroup_skb` egress and ingress on the cgroup v2 root: packets to or from a DNS
//!   port, with the process that sent them (`packet.rs` reads the headers).
//! - `conn.rs`: cgroup `connect4/6` and `sendmsg4/6`: every new outbound flow (TCP or UDP
//!   connect, a UDP datagram to a new destination), with the process; `flight.rs`, from the
//!   egress program: the flow's first flight (a TLS ClientHello, a QUIC Initial), for the
//!   flows armed in `slots.rs`.
#![no_std]
#![no_main]

mod bounded;
mod cgroup_path;
mod conn;
mod dns;
mod exe_path;
mod exec;
mod exit;
mod flight;
mod fork;
mod globals;
mod kread;
mod maps;
mod packet;
mod slots;
mod task;

/// The helpers used (probe_read_kernel, get_current_task) are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
