//! The BPF programs loaded on this machine, as `bpftool prog ... -j` lists them: ids, names
//! and the kernel's run statistics (`run_time_ns`, `run_cnt`, counted while
//! `kernel.bpf_stats_enabled` is 1).
//!
//! May use: shell, serde (a leaf of the bench).

use serde::Deserialize;

use crate::shell::capture;

/// One program as bpftool describes it (the fields the bench reads).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Program {
    pub id: u32,
    /// The kernel's name of it: at most 15 characters.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub run_time_ns: u64,
    #[serde(default)]
    pub run_cnt: u64,
}

/// Every program loaded now (none when bpftool cannot say).
pub fn programs() -> Vec<Program> {
    capture("bpftool", &["prog", "list", "-j"])
        .ok()
        .and_then(|out| serde_json::from_str(&out).ok())
        .unwrap_or_default()
}

/// Program `id` now, if it is loaded.
pub fn program(id: u32) -> Option<Program> {
    let out = capture("bpftool", &["prog", "show", "id", &id.to_string(), "-j"]).ok()?;
    serde_json::from_str(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bpftools_json() {
        let list = r#"[{"id":12,"type":"raw_tracepoint","name":"sched_process_e","tag":"ab",
            "run_time_ns":3000,"run_cnt":2,"gpl_compatible":true},{"id":13,"type":"cgroup_skb"}]"#;
        let progs: Vec<Program> = serde_json::from_str(list).unwrap();
        assert_eq!(
            progs,
            [
                Program {
                    id: 12,
                    name: "sched_process_e".into(),
                    run_time_ns: 3000,
                    run_cnt: 2
                },
                Program {
                    id: 13,
                    ..Program::default()
                }
            ]
        );
    }
}
