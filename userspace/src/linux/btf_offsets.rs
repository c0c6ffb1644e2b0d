//! Kernel structure offsets from the running kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! The eBPF programs read `task_struct`, `mm_struct`, `file`, `dentry`, `mount`, `cred`, ...
//! through these offsets instead of compiled-in guesses, so one object runs on every kernel
//! with BTF (5.10 LTS on). Fields nested in anonymous structs or unions (as `mm_struct`'s are
//! since 5.x) are found by descending into them. A field this kernel lacks either has a
//! fallback name (`real_start_time` before `start_boottime`), is optional (`loginuid` needs
//! `CONFIG_AUDIT`), or makes loading fail with the struct and field named.
//!
//! Uses: the kernel-user ABI (`tunnelwatch-common`) only.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};
use btf_rs::{Btf, BtfType, Type};
use tunnelwatch_common::{KernelOffsets, offsets::ABSENT};

/// Where the kernel exposes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Reads the offsets the programs need from the BTF at `path`.
pub fn read(path: &Path) -> Result<KernelOffsets> {
    let btf = Btf::from_file_with_backend(path, btf_rs::Backend::Mmap)
        .or_else(|_| Btf::from_file(path))
        .with_context(|| format!("cannot parse kernel BTF at {}", path.display()))?;
    let k = Kernel { btf };
    let dentry_d_name = k.offset("dentry", &["d_name"])?;
    let inode_i_ctime_sec = k.offset("inode", &["i_ctime_sec", "__i_ctime", "i_ctime"])?;
    // Discrete nanoseconds since 6.11; before, the `tv_nsec` of a `timespec64` (an s64 of
    // seconds, then a long of nanoseconds: its low half on these little-endian targets).
    let inode_i_ctime_nsec = match k.optional("inode", "i_ctime_nsec")? {
        ABSENT => inode_i_ctime_sec + 8,
        off => off,
    };
    let qstr_name = k.offset("qstr", &["name"])?;
    // Namespaces and cgroups name a container; a kernel without one of these still runs the
    // sensor (the record then says 0, or carries no cgroup names).
    let inum = k.soft("ns_common", "inum");
    let (upid_size, upid_ns) = match k.struct_size("upid") {
        Ok(size) => (size, k.soft("upid", "ns")),
        Err(_) => (ABSENT, ABSENT),
    };
    Ok(KernelOffsets {
        task_nsproxy: k.soft("task_struct", "nsproxy"),
        nsproxy_mnt_ns: k.soft("nsproxy", "mnt_ns"),
        nsproxy_net_ns: k.soft("nsproxy", "net_ns"),
        mnt_ns_inum: plus(k.soft("mnt_namespace", "ns"), inum),
        net_ns_inum: plus(k.soft("net", "ns"), inum),
        task_thread_pid: k.soft("task_struct", "thread_pid"),
        pid_level: k.soft("pid", "level"),
        pid_numbers: k.soft("pid", "numbers"),
        upid_size,
        upid_ns,
        pid_ns_inum: plus(k.soft("pid_namespace", "ns"), inum),
        task_cgroups: k.soft("task_struct", "cgroups"),
        css_set_dfl_cgrp: k.soft("css_set", "dfl_cgrp"),
        cgroup_kn: k.soft("cgroup", "kn"),
        kernfs_node_name: k.soft("kernfs_node", "name"),
        kernfs_node_parent: match k.soft("kernfs_node", "__parent") {
            ABSENT => k.soft("kernfs_node", "parent"),
            off => off,
        },
        task_pid: k.offset("task_struct", &["pid"])?,
        task_tgid: k.offset("task_struct", &["tgid"])?,
        task_real_parent: k.offset("task_struct", &["real_parent"])?,
        task_comm: k.offset("task_struct", &["comm"])?,
        task_mm: k.offset("task_struct", &["mm"])?,
        task_real_cred: k.offset("task_struct", &["real_cred"])?,
        task_start_boottime: k.offset("task_struct", &["start_boottime", "real_start_time"])?,
        task_signal: k.offset("task_struct", &["signal"])?,
        task_loginuid: k.optional("task_struct", "loginuid")?,
        task_exit_code: k.offset("task_struct", &["exit_code"])?,
        task_group_leader: k.offset("task_struct", &["group_leader"])?,
        mm_arg_start: k.offset("mm_struct", &["arg_start"])?,
        mm_arg_end: k.offset("mm_struct", &["arg_end"])?,
        mm_exe_file: k.offset("mm_struct", &["exe_file"])?,
        file_f_path: k.offset("file", &["f_path"])?,
        file_f_inode: k.offset("file", &["f_inode"])?,
        path_mnt: k.offset("path", &["mnt"])?,
        path_dentry: k.offset("path", &["dentry"])?,
        dentry_d_parent: k.offset("dentry", &["d_parent"])?,
        dentry_d_name_name: dentry_d_name + qstr_name,
        vfsmount_mnt_root: k.offset("vfsmount", &["mnt_root"])?,
        mount_mnt: k.offset("mount", &["mnt"])?,
        mount_mnt_parent: k.offset("mount", &["mnt_parent"])?,
        mount_mnt_mountpoint: k.offset("mount", &["mnt_mountpoint"])?,
        cred_uid: k.offset("cred", &["uid"])?,
        cred_gid: k.offset("cred", &["gid"])?,
        cred_euid: k.offset("cred", &["euid"])?,
        inode_i_ino: k.offset("inode", &["i_ino"])?,
        inode_i_sb: k.offset("inode", &["i_sb"])?,
        inode_i_mtime_sec: k.offset("inode", &["i_mtime_sec", "__i_mtime", "i_mtime"])?,
        inode_i_ctime_sec,
        inode_i_ctime_nsec,
        inode_i_size: k.offset("inode", &["i_size"])?,
        super_block_s_dev: k.offset("super_block", &["s_dev"])?,
        signal_live: k.offset("signal_struct", &["live"])?,
        binprm_filename: k.offset("linux_binprm", &["filename"])?,
    })
}

/// The offset of a member of a member: [`ABSENT`] when either is.
fn plus(a: u32, b: u32) -> u32 {
    if a == ABSENT || b == ABSENT {
        ABSENT
    } else {
        a + b
    }
}

struct Kernel {
    btf: Btf,
}

impl Kernel {
    /// Offset of the first of `fields` that `strukt` has.
    fn offset(&self, strukt: &str, fields: &[&str]) -> Result<u32> {
        let members = self.struct_named(strukt)?;
        for field in fields {
            if let Some(off) = self.find_member(&members, field, 0)? {
                return Ok(off);
            }
        }
        bail!(
            "kernel BTF: struct {strukt} has no field {} (unsupported kernel?)",
            fields.join(" or ")
        )
    }

    /// Offset of `field`, or [`ABSENT`] when this kernel does not have it.
    fn optional(&self, strukt: &str, field: &str) -> Result<u32> {
        let members = self.struct_named(strukt)?;
        Ok(self.find_member(&members, field, 0)?.unwrap_or(ABSENT))
    }

    /// Offset of `field`, or [`ABSENT`] when this kernel has not got it (nor, maybe, the
    /// struct): for what the sensor can do without.
    fn soft(&self, strukt: &str, field: &str) -> u32 {
        self.optional(strukt, field).unwrap_or(ABSENT)
    }

    /// The size in bytes of the complete struct named `name`.
    fn struct_size(&self, name: &str) -> Result<u32> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .with_context(|| format!("kernel BTF has no type named {name}"))?;
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) if !s.members.is_empty() => Some(s.size() as u32),
                _ => None,
            })
            .ok_or_else(|| anyhow!("kernel BTF has no struct {name}"))
    }

    /// The members of the complete struct named `name`.
    fn struct_named(&self, name: &str) -> Result<Vec<btf_rs::Member>> {
        let types = self
            .btf
            .resolve_types_by_name(name)
            .with_context(|| format!("kernel BTF has no type named {name}"))?;
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) if !s.members.is_empty() => Some(s.members),
                _ => None,
            })
            .ok_or_else(|| anyhow!("kernel BTF has no struct {name}"))
    }

    /// Byte offset of `field` among `members`, searching anonymous structs and unions.
    fn find_member(
        &self,
        members: &[btf_rs::Member],
        field: &str,
        base_bits: u32,
    ) -> Result<Option<u32>> {
        for m in members {
            let name = self.btf.resolve_name(m).unwrap_or_default();
            let bits = base_bits + m.bit_offset();
            if name == field {
                if m.bitfield_size().is_some_and(|s| s != 0) || !bits.is_multiple_of(8) {
                    bail!("kernel BTF: field {field} is a bitfield");
                }
                return Ok(Some(bits / 8));
            }
            if name.is_empty() {
                let inner = match self.resolve(m)? {
                    Type::Struct(s) | Type::Union(s) => s.members,
                    _ => continue,
                };
                if let Some(off) = self.find_member(&inner, field, bits)? {
                    return Ok(Some(off));
                }
            }
        }
        Ok(None)
    }

    /// The type of `t`, through typedefs and qualifiers.
    fn resolve(&self, t: &dyn BtfType) -> Result<Type> {
        let mut ty = self.btf.resolve_chained_type(t)?;
        for _ in 0..16 {
            let next = match &ty {
                Type::Typedef(x) => self.btf.resolve_chained_type(x)?,
                Type::Const(x) => self.btf.resolve_chained_type(x)?,
                Type::Volatile(x) => self.btf.resolve_chained_type(x)?,
                Type::Restrict(x) => self.btf.resolve_chained_type(x)?,
                Type::TypeTag(x) => self.btf.resolve_chained_type(x)?,
                _ => return Ok(ty),
            };
            ty = next;
        }
        Ok(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads this machine's BTF when it has one (every kernel the sensor supports does).
    #[test]
    fn offsets_from_running_kernel() {
        let path = Path::new(VMLINUX_BTF);
        if !path.exists() {
            eprintln!("no {VMLINUX_BTF}: the sensor cannot run here either");
            return;
        }
        let o = read(path).expect("offsets");
        // Invariants true of every kernel: distinct, plausible, pid before tgid.
        assert_eq!(o.task_tgid, o.task_pid + 4);
        assert!(o.mm_arg_end == o.mm_arg_start + 8);
        assert!(o.cred_gid > o.cred_uid && o.cred_euid > o.cred_gid);
        assert!(o.dentry_d_name_name > 0 && o.task_comm > 0 && o.task_mm > 0);
        assert_ne!(o.mount_mnt_parent, o.mount_mnt_mountpoint);
        assert!(o.inode_i_ctime_nsec > o.inode_i_ctime_sec && o.inode_i_size > 0);
        // Every kernel from 5.10 has what leads to namespaces and cgroup names.
        for off in [
            o.task_nsproxy,
            o.mnt_ns_inum,
            o.net_ns_inum,
            o.pid_ns_inum,
            o.task_thread_pid,
            o.pid_numbers,
            o.upid_ns,
            o.task_cgroups,
            o.css_set_dfl_cgrp,
            o.cgroup_kn,
            o.kernfs_node_name,
            o.kernfs_node_parent,
        ] {
            assert_ne!(off, ABSENT);
        }
        assert_eq!((o.upid_size, o.upid_ns), (16, 8));
    }
}
