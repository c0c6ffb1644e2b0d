//! The bench's phases, each a function from the run's context and plan to its typed results:
//! the idle sensor, the overhead of each configuration on each workload (alternating pairs),
//! the kernel's cost per program run, the zero-loss DNS and connection sweeps and the
//! exec-to-alert latency.
//!
//! May use: its own files (phases/), which use the bench's lower floors (plan, workloads,
//! configs, tools, worker, ctx, process, interrupt, stats, clock, bpf, host).

pub mod conn_sweep;
pub mod idle;
pub mod kernel_cost;
pub mod latency;
pub mod overhead;
pub mod sweep;
