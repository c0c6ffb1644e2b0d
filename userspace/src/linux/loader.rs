//! Loading the eBPF object, handing it the BTF offsets and the configuration, and attaching
//! its programs: three raw tracepoints (no tracefs needed), two cgroup_skb programs and four
//! cgroup sock_addr programs (`connect4/6`, `sendmsg4/6`) on the cgroup v2 root. Every
//! attachment is an fd-based link owned by [`Probes`]: dropping it (or the process dying, even
//! by SIGKILL) detaches everything, so nothing stays behind.
//!
//! The cgroup links can be detached from outside while the sensor runs (`bpftool link detach`,
//! as root): [`Probes::restore_links`], called every second, asks the kernel which programs
//! the cgroup root runs and attaches again the ones that went. (The raw tracepoint links have
//! no detach operation in the kernel: only the sensor's end removes them.)
//!
//! Uses: the kernel-user ABI (`tunnelwatch-common`) and the eBPF object built from `ebpf/`.

use std::{fs::File, io, os::fd::AsRawFd, path::PathBuf};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, RawTracePoint,
        cgroup_skb::CgroupSkbLinkId, cgroup_sock_addr::CgroupSockAddrLinkId,
    },
};
use tunnelwatch_common::{KernelOffsets, SensorConfig, limits::DNS_PORTS_MAX, stats};

/// The compiled programs (built by build.rs from ebpf/).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tunnelwatch-ebpf"));

/// The raw tracepoints and the programs attached to them.
pub const TRACEPOINTS: [&str; 3] = [
    "sched_process_exec",
    "sched_process_fork",
    "sched_process_exit",
];

/// How a cgroup program attaches: its kind, and the kernel's attach type for it
/// (`enum bpf_attach_type`, which `BPF_PROG_QUERY` asks by).
#[derive(Clone, Copy, Debug)]
enum Hook {
    Skb(CgroupSkbAttachType),
    /// A sock_addr program: its section names the hook, the number is for the query.
    SockAddr(u32),
}

impl Hook {
    fn attach_type(self) -> u32 {
        // enum bpf_attach_type (include/uapi/linux/bpf.h).
        match self {
            Hook::Skb(CgroupSkbAttachType::Ingress) => 0,
            Hook::Skb(CgroupSkbAttachType::Egress) => 1,
            Hook::SockAddr(t) => t,
        }
    }
}

/// The cgroup programs on the cgroup v2 root: the two packet programs (DNS and first
/// flights) and the four sock_addr programs (new outbound flows; each program's section names
/// its hook).
const CGROUP_PROGRAMS: [(&str, Hook); 6] = [
    ("dns_egress", Hook::Skb(CgroupSkbAttachType::Egress)),
    ("dns_ingress", Hook::Skb(CgroupSkbAttachType::Ingress)),
    // BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET6_CONNECT.
    ("conn_connect4", Hook::SockAddr(10)),
    ("conn_connect6", Hook::SockAddr(11)),
    // BPF_CGROUP_UDP4_SENDMSG, BPF_CGROUP_UDP6_SENDMSG.
    ("conn_sendmsg4", Hook::SockAddr(14)),
    ("conn_sendmsg6", Hook::SockAddr(15)),
];

/// Everything [`load`] needs.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub offsets: KernelOffsets,
    pub cgroup_root: PathBuf,
    /// Ring buffer size in bytes (a power of two, a multiple of the page size).
    pub ring_buffer_bytes: u32,
    pub dns_ports: Vec<u16>,
    /// Highest aya-log level the kernel side emits (0 = off; 4 = debug).
    pub kernel_log_level: u8,
}

/// The loaded and attached programs. Dropping it detaches them all.
pub struct Probes {
    pub ebpf: Ebpf,
    /// Kernel ids of the loaded programs (as `bpftool prog show` lists them).
    pub program_ids: Vec<u32>,
    /// Kernel-side diagnostics (aya-log), when the object has any.
    pub logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    cgroup: File,
    /// The cgroup programs: name, hook, program id, and the link that attaches it.
    cgroup_links: Vec<CgroupLink>,
}

struct CgroupLink {
    name: &'static str,
    hook: Hook,
    program_id: u32,
    link: Link,
}

/// A cgroup program's link, of either kind.
enum Link {
    Skb(CgroupSkbLinkId),
    SockAddr(CgroupSockAddrLinkId),
}

/// Loads and attaches. Errors name the program and carry the verifier's log.
pub fn load(opts: &LoadOptions) -> Result<Probes> {
    if opts.dns_ports.is_empty() || opts.dns_ports.len() > DNS_PORTS_MAX {
        return Err(anyhow!(
            "between 1 and {DNS_PORTS_MAX} DNS ports can be watched"
        ));
    }
    let mut config = SensorConfig {
        self_tgid: std::process::id(),
        dns_port_count: opts.dns_ports.len() as u32,
        dns_ports: [0; DNS_PORTS_MAX],
    };
    config.dns_ports[..opts.dns_ports.len()].copy_from_slice(&opts.dns_ports);

    let mut ebpf = EbpfLoader::new()
        .override_global("OFFSETS", &opts.offsets, true)
        .override_global("CONFIG", &config, true)
        .override_global("AYA_LOG_LEVEL", &opts.kernel_log_level, false)
        .map_max_entries("EVENTS", opts.ring_buffer_bytes)
        .load(OBJECT)
        .context("cannot load the eBPF object (maps)")?;

    // Before attaching: its ring must be drained from the start.
    let logger = aya_log::EbpfLogger::init(&mut ebpf).ok();

    let mut program_ids = Vec::new();
    for name in TRACEPOINTS {
        let prog: &mut RawTracePoint = program(&mut ebpf, name)?
            .try_into()
            .with_context(|| format!("program {name} is not a raw tracepoint"))?;
        prog.load()
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("the kernel refused program {name}"))?;
        prog.attach(name)
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("cannot attach {name} to raw tracepoint {name}"))?;
        program_ids.extend(prog.info().ok().map(|i| i.id()));
    }

    let cgroup = File::open(&opts.cgroup_root)
        .with_context(|| format!("cannot open cgroup v2 root {}", opts.cgroup_root.display()))?;
    let mut cgroup_links = Vec::new();
    for (name, hook) in CGROUP_PROGRAMS {
        let link = load_and_attach(&mut ebpf, name, hook, &cgroup).with_context(|| {
            format!(
                "cannot attach {name} to {} (a program attached there without \
                 BPF_F_ALLOW_MULTI by another tool prevents it)",
                opts.cgroup_root.display()
            )
        })?;
        let program_id = program(&mut ebpf, name)?
            .info()
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("cannot read the id of program {name}"))?
            .id();
        program_ids.push(program_id);
        cgroup_links.push(CgroupLink {
            name,
            hook,
            program_id,
            link,
        });
    }

    Ok(Probes {
        ebpf,
        program_ids,
        logger,
        cgroup,
        cgroup_links,
    })
}

fn skb_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut CgroupSkb> {
    program(ebpf, name)?
        .try_into()
        .with_context(|| format!("program {name} is not cgroup_skb"))
}

fn sock_addr_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut CgroupSockAddr> {
    program(ebpf, name)?
        .try_into()
        .with_context(|| format!("program {name} is not cgroup sock_addr"))
}

/// Loads (the verifier's log in the error) and attaches a cgroup program.
fn load_and_attach(ebpf: &mut Ebpf, name: &str, hook: Hook, cgroup: &File) -> Result<Link> {
    match hook {
        Hook::Skb(_) => skb_program(ebpf, name)?.load(),
        Hook::SockAddr(_) => sock_addr_program(ebpf, name)?.load(),
    }
    .map_err(|e| anyhow!(e))
    .with_context(|| format!("the kernel refused program {name}"))?;
    attach_cgroup(ebpf, name, hook, cgroup)
}

/// A link (kernel 5.7+) in multi mode: other programs on the root, another tunnelwatch or a
/// host tool, keep running beside ours.
fn attach_cgroup(ebpf: &mut Ebpf, name: &str, hook: Hook, cgroup: &File) -> Result<Link> {
    match hook {
        Hook::Skb(attach) => skb_program(ebpf, name)?
            .attach(cgroup, attach, CgroupAttachMode::Single)
            .map(Link::Skb),
        Hook::SockAddr(_) => sock_addr_program(ebpf, name)?
            .attach(cgroup, CgroupAttachMode::Single)
            .map(Link::SockAddr),
    }
    .map_err(|e| anyhow!(e))
}

/// Detaches a link that no longer attaches anything (its descriptor is of no more use).
fn detach(ebpf: &mut Ebpf, name: &str, link: Link) {
    match link {
        Link::Skb(id) => {
            if let Ok(p) = skb_program(ebpf, name) {
                let _ = p.detach(id);
            }
        }
        Link::SockAddr(id) => {
            if let Ok(p) = sock_addr_program(ebpf, name) {
                let _ = p.detach(id);
            }
        }
    }
}

/// Ids of the programs attached directly to `cgroup` at `attach` (`BPF_PROG_QUERY`).
fn attached_programs(cgroup: &File, hook: Hook) -> io::Result<Vec<u32>> {
    /// The `BPF_PROG_QUERY` part of `union bpf_attr`, as Linux 4.15 defined it.
    #[repr(C)]
    struct Query {
        target_fd: u32,
        attach_type: u32,
        query_flags: u32,
        attach_flags: u32,
        prog_ids: u64,
        prog_cnt: u32,
        _pad: u32,
    }
    const BPF_PROG_QUERY: libc::c_long = 16;
    // Room for every program a cgroup may hold at one hook (BPF_CGROUP_MAX_PROGS is 64).
    let mut ids = vec![0u32; 64];
    let mut q = Query {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: hook.attach_type(),
        query_flags: 0,
        attach_flags: 0,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        _pad: 0,
    };
    // SAFETY: `q` is a valid BPF_PROG_QUERY attribute whose `prog_ids` points to `prog_cnt`
    // u32s that outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &raw mut q,
            size_of::<Query>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    ids.truncate((q.prog_cnt as usize).min(64));
    Ok(ids)
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("the eBPF object has no program {name}"))
}

impl Probes {
    /// Attaches again every cgroup program that is no longer attached to the cgroup root
    /// (its link detached from outside). Returns the names of those restored; `Err` when the
    /// kernel cannot be asked or refuses to attach.
    pub fn restore_links(&mut self) -> Result<Vec<&'static str>> {
        let mut restored = Vec::new();
        for i in 0..self.cgroup_links.len() {
            let (name, hook, id) = {
                let l = &self.cgroup_links[i];
                (l.name, l.hook, l.program_id)
            };
            let attached = attached_programs(&self.cgroup, hook)
                .with_context(|| format!("cannot ask which programs the cgroup runs ({name})"))?;
            if attached.contains(&id) {
                continue;
            }
            let link = attach_cgroup(&mut self.ebpf, name, hook, &self.cgroup)
                .with_context(|| format!("cannot attach {name} again"))?;
            let old = std::mem::replace(&mut self.cgroup_links[i].link, link);
            detach(&mut self.ebpf, name, old);
            restored.push(name);
        }
        Ok(restored)
    }

    /// Takes the kernel side's coarse clock (once).
    pub fn take_clock(&mut self) -> Result<KernelClock> {
        let map = self
            .ebpf
            .take_map("EPOCH")
            .ok_or_else(|| anyhow!("the eBPF object has no EPOCH map"))?;
        Ok(KernelClock {
            map: Array::try_from(map).context("EPOCH is not an array")?,
            started: std::time::Instant::now(),
        })
    }

    /// Takes the event ring buffer (once).
    pub fn take_events(&mut self) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| anyhow!("the eBPF object has no EVENTS map"))?;
        RingBuf::try_from(map).context("EVENTS is not a ring buffer")
    }

    /// Takes the per-CPU counters (once).
    pub fn take_stats(&mut self) -> Result<KernelStats> {
        let map = self
            .ebpf
            .take_map("STATS")
            .ok_or_else(|| anyhow!("the eBPF object has no STATS map"))?;
        Ok(KernelStats {
            map: PerCpuArray::try_from(map).context("STATS is not a per-CPU array")?,
        })
    }
}

/// The kernel side's coarse clock (ebpf/src/slots.rs): a first-flight capture lives 2 to 3 of
/// its ticks; without ticks it lives until its flow is captured or a newer flow takes its
/// place.
pub struct KernelClock {
    map: Array<MapData, u32>,
    started: std::time::Instant,
}

impl KernelClock {
    /// Advances the clock to the seconds since it was taken: call it about once a second.
    pub fn tick(&mut self) -> Result<()> {
        let secs = self.started.elapsed().as_secs() as u32;
        // Entry 0: the time; entry 1 is the kernel side's.
        self.map
            .set(0, secs, 0)
            .context("cannot advance the kernel side's clock")
    }
}

/// The kernel side's counters (`tunnelwatch_common::stats`).
pub struct KernelStats {
    map: PerCpuArray<MapData, u64>,
}

impl KernelStats {
    /// Current totals, summed over CPUs, indexed like `stats::NAMES`.
    pub fn read(&self) -> [u64; stats::COUNT as usize] {
        let mut out = [0u64; stats::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            if let Ok(values) = self.map.get(&(i as u32), 0) {
                *slot = values.iter().sum();
            }
        }
        out
    }
}
