//! The path of an executable, from `mm->exe_file`, built by walking its dentries up to the
//! root of the mount namespace and crossing mount points on the way. Components are written
//! leaf first, each NUL-terminated; user space reverses them. (`bpf_d_path` would be simpler
//! but is not allowed from tracepoints.)

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use tunnelwatch_common::limits::{EXEC_DATA_SIZE, NAME_MAX, PATH_DEPTH_MAX, PATH_MAX};

use crate::{globals::off, kread};

/// Result of a walk.
pub(crate) struct Walk {
    /// Bytes written.
    pub len: u32,
    /// The walk stopped before reaching the root.
    pub truncated: bool,
}

/// Writes the components of `file`'s path into `data` starting at `start` (masked into the
/// data area). `data` must have `NAME_MAX` bytes of slack after `EXEC_DATA_SIZE`.
#[inline(always)]
pub(crate) fn walk(file: *const u8, data: *mut u8, start: u32) -> Walk {
    let mut out = Walk {
        len: 0,
        truncated: false,
    };
    if file.is_null() {
        return out;
    }
    let f_path = off!(file_f_path);
    let mut dentry = kread::ptr(file, f_path + off!(path_dentry));
    let mut vfsmnt = kread::ptr(file, f_path + off!(path_mnt));
    let mount_mnt = off!(mount_mnt);
    let mut mount = vfsmnt.wrapping_sub(mount_mnt as usize);
    let mut written: u32 = 0;

    let mut i = 0;
    while i < PATH_DEPTH_MAX {
        i += 1;
        if dentry.is_null() || vfsmnt.is_null() {
            out.truncated = true;
            break;
        }
        let mnt_root = kread::ptr(vfsmnt, off!(vfsmount_mnt_root));
        let parent = kread::ptr(dentry, off!(dentry_d_parent));
        if dentry == mnt_root || dentry == parent {
            // Top of this mount: continue from its mount point in the parent mount.
            let mnt_parent = kread::ptr(mount, off!(mount_mnt_parent));
            if mnt_parent.is_null() || mnt_parent == mount {
                // The root of the namespace: done.
                out.len = written;
                return out;
            }
            dentry = kread::ptr(mount, off!(mount_mnt_mountpoint));
            mount = mnt_parent;
            vfsmnt = mount.wrapping_add(mount_mnt as usize);
            continue;
        }
        if written as usize >= PATH_MAX - NAME_MAX {
            out.truncated = true;
            break;
        }
        let name = kread::ptr(dentry, off!(dentry_d_name_name));
        let pos = ((start + written) as usize) & (EXEC_DATA_SIZE - 1);
        // SAFETY: `pos < EXEC_DATA_SIZE` and the data area has NAME_MAX bytes of slack.
        let n = unsafe {
            bpf_probe_read_kernel_str(
                data.wrapping_add(pos).cast(),
                NAME_MAX as u32,
                name.cast(),
            )
        };
        if n <= 0 {
            out.truncated = true;
            break;
        }
        written += n as u32;
        dentry = parent;
    }
    // Loop bound reached (or a read failed) before the root.
    out.truncated = true;
    out.len = written;
    out
}
