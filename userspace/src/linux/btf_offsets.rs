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
    Ok(KernelOffsets {
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
    }
}
