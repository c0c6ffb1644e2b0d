//! Loading the eBPF object, handing it the BTF offsets and the configuration, and attaching
//! its programs: three raw tracepoints (no tracefs needed), two cgroup_skb programs and four
//! cgroup sock_addr programs (`connect4/6`, `sendmsg4/6`) on the cgroup v2 root. Every attachment is an fd-based link owned by [`Probes`]: dropping it (or
//! the process dying, even by SIGKILL) detaches everything, so nothing stays behind.
//!
//! Uses: the kernel-user ABI (`tunnelwatch-common`) and the eBPF object built from `ebpf/`.

use std::{fs::File, path::PathBuf};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::{CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, RawTracePoint},
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

/// The cgroup sock_addr programs (new outbound flows); each program's section names its hook.
pub const SOCK_ADDR_PROGRAMS: [&str; 4] = [
    "conn_connect4",
    "conn_connect6",
    "conn_sendmsg4",
    "conn_sendmsg6",
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
    _cgroup: File,
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
    for (name, attach) in [
        ("dns_egress", CgroupSkbAttachType::Egress),
        ("dns_ingress", CgroupSkbAttachType::Ingress),
    ] {
        let prog: &mut CgroupSkb = program(&mut ebpf, name)?
            .try_into()
            .with_context(|| format!("program {name} is not cgroup_skb"))?;
        prog.load()
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("the kernel refused program {name}"))?;
        // A link (kernel 5.7+) in multi mode: other programs on the root, another tunnelwatch
        // or a host tool, keep running beside ours.
        prog.attach(&cgroup, attach, CgroupAttachMode::Single)
            .map_err(|e| anyhow!(e))
            .with_context(|| {
                format!(
                    "cannot attach {name} to {} (a program attached there without \
                     BPF_F_ALLOW_MULTI by another tool prevents it)",
                    opts.cgroup_root.display()
                )
            })?;
        program_ids.extend(prog.info().ok().map(|i| i.id()));
    }
    for name in SOCK_ADDR_PROGRAMS {
        let prog: &mut CgroupSockAddr = program(&mut ebpf, name)?
            .try_into()
            .with_context(|| format!("program {name} is not cgroup sock_addr"))?;
        prog.load()
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("the kernel refused program {name}"))?;
        // A link, as above.
        prog.attach(&cgroup, CgroupAttachMode::Single)
            .map_err(|e| anyhow!(e))
            .with_context(|| {
                format!(
                    "cannot attach {name} to {} (a program attached there without \
                     BPF_F_ALLOW_MULTI by another tool prevents it)",
                    opts.cgroup_root.display()
                )
            })?;
        program_ids.extend(prog.info().ok().map(|i| i.id()));
    }

    Ok(Probes {
        ebpf,
        program_ids,
        logger,
        _cgroup: cgroup,
    })
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name)
        .ok_or_else(|| anyhow!("the eBPF object has no program {name}"))
}

impl Probes {
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
