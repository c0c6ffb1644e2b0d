//! Loading the eBPF object, handing it the BTF offsets and the configuration, and attaching
//! its programs: three raw tracepoints (no tracefs needed) and two cgroup_skb programs on the
//! cgroup v2 root. Every attachment is an fd-based link owned by [`Probes`]: dropping it (or
//! the process dying, even by SIGKILL) detaches everything, so nothing stays behind.
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
    maps::{MapData, PerCpuArray, RingBuf},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, RawTracePoint,
        cgroup_skb::CgroupSkbLinkId,
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
    attach: CgroupSkbAttachType,
    program_id: u32,
    link: CgroupSkbLinkId,
}

/// The cgroup_skb programs and their hooks.
const CGROUP_PROGRAMS: [(&str, CgroupSkbAttachType); 2] = [
    ("dns_egress", CgroupSkbAttachType::Egress),
    ("dns_ingress", CgroupSkbAttachType::Ingress),
];

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
    for (name, attach) in CGROUP_PROGRAMS {
        let prog = cgroup_program(&mut ebpf, name)?;
        prog.load()
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("the kernel refused program {name}"))?;
        let link = attach_cgroup(prog, &cgroup, attach).with_context(|| {
            format!(
                "cannot attach {name} to {} (a program attached there without \
                 BPF_F_ALLOW_MULTI by another tool prevents it)",
                opts.cgroup_root.display()
            )
        })?;
        let program_id = prog
            .info()
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("cannot read the id of program {name}"))?
            .id();
        program_ids.push(program_id);
        cgroup_links.push(CgroupLink {
            name,
            attach,
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

fn cgroup_program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut CgroupSkb> {
    program(ebpf, name)?
        .try_into()
        .with_context(|| format!("program {name} is not cgroup_skb"))
}

/// A link (kernel 5.7+) in multi mode: other programs on the root, another tunnelwatch or a
/// host tool, keep running beside ours.
fn attach_cgroup(
    prog: &mut CgroupSkb,
    cgroup: &File,
    attach: CgroupSkbAttachType,
) -> Result<CgroupSkbLinkId> {
    prog.attach(cgroup, attach, CgroupAttachMode::Single)
        .map_err(|e| anyhow!(e))
}

/// Ids of the programs attached directly to `cgroup` at `attach` (`BPF_PROG_QUERY`).
fn attached_programs(cgroup: &File, attach: CgroupSkbAttachType) -> io::Result<Vec<u32>> {
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
    const BPF_CGROUP_INET_INGRESS: u32 = 0;
    const BPF_CGROUP_INET_EGRESS: u32 = 1;
    // Room for every program a cgroup may hold at one hook (BPF_CGROUP_MAX_PROGS is 64).
    let mut ids = vec![0u32; 64];
    let mut q = Query {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: match attach {
            CgroupSkbAttachType::Ingress => BPF_CGROUP_INET_INGRESS,
            CgroupSkbAttachType::Egress => BPF_CGROUP_INET_EGRESS,
        },
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
            let (name, attach, id) = {
                let l = &self.cgroup_links[i];
                (l.name, l.attach, l.program_id)
            };
            let attached = attached_programs(&self.cgroup, attach)
                .with_context(|| format!("cannot ask which programs the cgroup runs ({name})"))?;
            if attached.contains(&id) {
                continue;
            }
            let prog = cgroup_program(&mut self.ebpf, name)?;
            let link = attach_cgroup(prog, &self.cgroup, attach)
                .with_context(|| format!("cannot attach {name} again"))?;
            // The detached link's descriptor is of no more use.
            let old = std::mem::replace(&mut self.cgroup_links[i].link, link);
            let _ = prog.detach(old);
            restored.push(name);
        }
        Ok(restored)
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
