//! The floor: empty programs (`r0 = 1; exit`) attached on every hook tunnelwatch uses
//! ([`HOOKS`]: cgroup_skb egress and ingress and cgroup sock_addr connect4/6 and sendmsg4/6 on
//! the cgroup v2 root, raw tracepoints on sched_process_exec, _fork and _exit). It is the "empty hooks" configuration of the overhead
//! phase (what any eBPF sensor on these hooks pays, whatever its programs do) and the floor
//! of the kernel-cost phase (what an empty program "costs" per run in the kernel's statistics:
//! the dispatch and the statistics' own clock reads, so that tunnelwatch's own work is its
//! number minus this one). Loaded with the bpf syscall directly (two instructions need no
//! object file); every attachment is an fd-based link that goes away with the fd.
//!
//! A new hook of the sensor gets its empty twin here: one line in [`HOOKS`].
//!
//! May use: libc (the bpf syscall), anyhow (a leaf of the bench).

use std::{
    ffi::CString,
    fs::{self, File},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

use anyhow::{Context as _, Result, bail};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_PROG_TYPE_CGROUP_SKB: u32 = 8;
const BPF_PROG_TYPE_RAW_TRACEPOINT: u32 = 17;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const BPF_CGROUP_INET_INGRESS: u32 = 0;
const BPF_CGROUP_INET_EGRESS: u32 = 1;
const BPF_CGROUP_INET4_CONNECT: u32 = 10;
const BPF_CGROUP_INET6_CONNECT: u32 = 11;
const BPF_CGROUP_UDP4_SENDMSG: u32 = 14;
const BPF_CGROUP_UDP6_SENDMSG: u32 = 15;

/// Where an empty program is attached.
#[derive(Clone, Copy, Debug)]
enum Hook {
    /// On the cgroup v2 root, as a link: (program type, attach type).
    Cgroup(u32, u32),
    /// A raw tracepoint, by name.
    RawTracepoint(&'static str),
}

/// tunnelwatch's hooks, each with the name its empty program gets (at most 15 characters).
const HOOKS: &[(&str, Hook)] = &[
    (
        "empty_egress",
        Hook::Cgroup(BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_EGRESS),
    ),
    (
        "empty_ingress",
        Hook::Cgroup(BPF_PROG_TYPE_CGROUP_SKB, BPF_CGROUP_INET_INGRESS),
    ),
    ("empty_exec", Hook::RawTracepoint("sched_process_exec")),
    ("empty_fork", Hook::RawTracepoint("sched_process_fork")),
    ("empty_exit", Hook::RawTracepoint("sched_process_exit")),
    (
        "empty_connect4",
        Hook::Cgroup(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT),
    ),
    (
        "empty_connect6",
        Hook::Cgroup(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET6_CONNECT),
    ),
    (
        "empty_sendmsg4",
        Hook::Cgroup(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP4_SENDMSG),
    ),
    (
        "empty_sendmsg6",
        Hook::Cgroup(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_UDP6_SENDMSG),
    ),
];

/// `bpf_attr` as bytes: every command here fits in 128.
#[repr(C, align(8))]
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Self {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Self {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> Result<i32> {
    // SAFETY: `attr` is a zero-padded bpf_attr of 128 bytes for this command.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            attr.0.len() as libc::c_uint,
        )
    };
    if r < 0 {
        bail!("bpf({cmd}): {}", std::io::Error::last_os_error());
    }
    Ok(r as i32)
}

fn owned(fd: i32) -> OwnedFd {
    // SAFETY: a new fd returned by the kernel, owned by no one else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Loads `r0 = 1; exit` as a program of `prog_type`.
fn load_empty(prog_type: u32, expected_attach: u32, name: &str) -> Result<OwnedFd> {
    // mov64 r0, 1; exit
    let insns: [u64; 2] = [u64::from_le_bytes([0xb7, 0, 0, 0, 1, 0, 0, 0]), 0x95];
    let license = CString::new("GPL")?;
    let mut a = Attr::new();
    a.u32(0, prog_type)
        .u32(4, insns.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(68, expected_attach);
    let n = name.len().min(15);
    a.0[48..48 + n].copy_from_slice(&name.as_bytes()[..n]);
    Ok(owned(bpf(BPF_PROG_LOAD, &mut a)?))
}

fn prog_id(fd: &OwnedFd) -> Result<u32> {
    let mut info = [0u8; 256];
    let mut a = Attr::new();
    a.u32(0, fd.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a)?;
    Ok(u32::from_ne_bytes(info[4..8].try_into().expect("4 bytes")))
}

/// The cgroup v2 root (the first cgroup2 mount in /proc/self/mountinfo).
fn cgroup2_root() -> Result<String> {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    info.lines()
        .find_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            (post.split_whitespace().next()? == "cgroup2")
                .then(|| pre.split_whitespace().nth(4).map(str::to_string))?
        })
        .context("no cgroup2 mount")
}

/// The empty programs, attached; dropping this detaches them.
pub struct Floor {
    /// (name, program id).
    pub programs: Vec<(String, u32)>,
    _fds: Vec<OwnedFd>,
    _cgroup: File,
}

impl Floor {
    pub fn attach() -> Result<Floor> {
        let cgroup = File::open(cgroup2_root()?).context("cannot open the cgroup v2 root")?;
        let mut fds = Vec::new();
        let mut programs = Vec::new();
        for &(name, hook) in HOOKS {
            let (prog, link) = match hook {
                Hook::Cgroup(prog_type, attach) => {
                    let prog = load_empty(prog_type, attach, name)?;
                    let mut a = Attr::new();
                    a.u32(0, prog.as_raw_fd() as u32)
                        .u32(4, cgroup.as_raw_fd() as u32)
                        .u32(8, attach);
                    (prog, bpf(BPF_LINK_CREATE, &mut a))
                }
                Hook::RawTracepoint(tracepoint) => {
                    let prog = load_empty(BPF_PROG_TYPE_RAW_TRACEPOINT, 0, name)?;
                    let tp = CString::new(tracepoint)?;
                    let mut a = Attr::new();
                    a.u64(0, tp.as_ptr() as u64).u32(8, prog.as_raw_fd() as u32);
                    (prog, bpf(BPF_RAW_TRACEPOINT_OPEN, &mut a))
                }
            };
            let link = link.with_context(|| format!("cannot attach {name} ({hook:?})"))?;
            programs.push((name.to_string(), prog_id(&prog)?));
            fds.push(owned(link));
            fds.push(prog);
        }
        Ok(Floor {
            programs,
            _fds: fds,
            _cgroup: cgroup,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_fit_the_kernels_15_characters() {
        for (name, _) in super::HOOKS {
            assert!(name.len() <= 15 && name.starts_with("empty_"), "{name}");
        }
    }
}
