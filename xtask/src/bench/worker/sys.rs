//! What the load generators need of the OS beyond std: CPU pinning, sleeping until an absolute
//! CLOCK_MONOTONIC time (so that the workers of one run start together), a bare fork + execve
//! (no environment, nothing between fork and exec: the cheapest exec a storm can make), the
//! process's own CPU time, and socket options std does not set.
//!
//! May use: nix, libc, bench/clock.

use std::{ffi::CString, net::UdpSocket, os::fd::FromRawFd as _, thread};

use anyhow::{Context as _, Result, bail};
use nix::{
    sched::{CpuSet, sched_setaffinity},
    sys::{
        resource::{UsageWho, getrusage},
        time::TimeVal,
        wait::{WaitStatus, waitpid},
    },
    time::{ClockId, ClockNanosleepFlags, clock_nanosleep},
    unistd::Pid,
};

use crate::bench::clock::mono_ns;

/// The loopback address every worker binds to or sends to.
pub const LOOPBACK: std::net::Ipv4Addr = std::net::Ipv4Addr::LOCALHOST;

/// CPU time (user + system) of this process and of its reaped children, in seconds: what the
/// workload cost, kernel work done in its context included (the BPF programs it triggers).
pub fn cpu_secs() -> f64 {
    let secs = |who| {
        getrusage(who).map_or(f64::NAN, |u| {
            let t = |tv: TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
    };
    secs(UsageWho::RUSAGE_SELF) + secs(UsageWho::RUSAGE_CHILDREN)
}

/// Pins the calling thread to CPU `cpu` modulo the CPUs there are: the same placement in every
/// configuration, so that runs compare (a failure leaves the thread where it is).
pub fn pin(cpu: usize) {
    let n = thread::available_parallelism().map_or(1, |n| n.get());
    let mut set = CpuSet::new();
    if set.set(cpu % n).is_ok() {
        let _ = sched_setaffinity(Pid::from_raw(0), &set);
    }
}

/// Sleeps until CLOCK_MONOTONIC reaches `ns`.
pub fn sleep_until(ns: u64) {
    let at = nix::sys::time::TimeSpec::new(
        (ns / 1_000_000_000) as libc::time_t,
        (ns % 1_000_000_000) as libc::c_long,
    );
    // EINTR just ends the sleep early, and then we loop.
    while mono_ns() < ns {
        let _ = clock_nanosleep(
            ClockId::CLOCK_MONOTONIC,
            ClockNanosleepFlags::TIMER_ABSTIME,
            &at,
        );
    }
}

pub fn cstring(s: &str) -> Result<CString> {
    CString::new(s).context("NUL in an argument")
}

/// Forks and execs `argv[0]` with `argv` and an empty environment, returning the child's pid.
/// The child calls `extra` right before exec; what it returns is appended to `argv`.
///
/// The argument array is built before the fork; the child allocates only what `extra`
/// allocates (workers that pass one are single-threaded, so that is safe).
pub fn fork_exec(argv: &[CString], extra: impl FnOnce() -> Option<CString>) -> Result<Pid> {
    let mut ptrs: Vec<*const libc::c_char> = Vec::with_capacity(argv.len() + 2);
    ptrs.extend(argv.iter().map(|a| a.as_ptr()));
    // SAFETY: the child only fills in its argv and execs or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        let extra = extra();
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
    Ok(Pid::from_raw(pid))
}

/// Waits for `pid`; whether it exited with status 0.
pub fn wait_ok(pid: Pid) -> bool {
    matches!(waitpid(pid, None), Ok(WaitStatus::Exited(p, 0)) if p == pid)
}

/// Sets a socket option of type int, ignoring failure (a smaller buffer only costs drops).
pub fn set_int_opt(fd: i32, level: i32, name: i32, value: i32) {
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

/// A UDP socket on 127.0.0.1:`port` with SO_REUSEPORT, so that several threads can serve.
pub fn reuseport_udp(port: u16) -> Result<UdpSocket> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forks_execs_and_waits() {
        let ok = fork_exec(&[cstring("/bin/true").unwrap()], || None).unwrap();
        assert!(wait_ok(ok));
        let fails = fork_exec(&[cstring("/bin/false").unwrap()], || None).unwrap();
        assert!(!wait_ok(fails));
        let t0 = mono_ns();
        sleep_until(t0 + 20_000_000);
        assert!(mono_ns() >= t0 + 20_000_000);
        assert!(cpu_secs() > 0.0);
    }
}
