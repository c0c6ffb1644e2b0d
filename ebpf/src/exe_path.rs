//! The path of an executable, from `mm->exe_file`, built by walking its dentries up to the
//! root of the mount namespace and crossing mount points on the way. Components are written
//! leaf first, each NUL-terminated; user space reverses them. (`bpf_d_path` would be simpler
//! but is not allowed from tracepoints.)
//!
//! The loop is written for the verifier: offsets are masked so that every iteration's state
//! looks alike and can be pruned, reads never branch on failure, and whether the walk reached
//! the root is decided once, after the loop.

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
    if file.is_null() {
        return Walk {
            len: 0,
            truncated: true,
        };
    }
    let f_path = off!(file_f_path);
    let mut dentry = kread::ptr(file, f_path + off!(path_dentry));
    let vfsmnt = kread::ptr(file, f_path + off!(path_mnt));
    let mount_mnt = off!(mount_mnt);
    let mut mount = vfsmnt.wrapping_sub(mount_mnt as usize);
    let mut written: u32 = 0;
    let mut at_root = false;

    for _ in 0..PATH_DEPTH_MAX {
        let mnt_root = kread::ptr(
            mount.wrapping_add(mount_mnt as usize),
            off!(vfsmount_mnt_root),
        );
        let parent = kread::ptr(dentry, off!(dentry_d_parent));
        if dentry == mnt_root {
            // Top of this mount: go on from its mount point in the parent mount, or stop at
            // the root of the namespace (a mount that is its own parent).
            let mnt_parent = kread::ptr(mount, off!(mount_mnt_parent));
            if mnt_parent == mount || mnt_parent.is_null() {
                at_root = true;
                break;
            }
            dentry = kread::ptr(mount, off!(mount_mnt_mountpoint));
            mount = mnt_parent;
            continue;
        }
        if written as usize > PATH_MAX - NAME_MAX {
            break;
        }
        let name = kread::ptr(dentry, off!(dentry_d_name_name));
        let pos = ((start + written) as usize) & (EXEC_DATA_SIZE - 1);
        // SAFETY: `pos < EXEC_DATA_SIZE` and the data area has NAME_MAX bytes of slack.
        let n = unsafe {
            bpf_probe_read_kernel_str(data.wrapping_add(pos).cast(), NAME_MAX as u32, name.cast())
        };
        // A failed read (n < 0) ends the walk without counting its bytes.
        let n = if n > 0 { n as u32 } else { 0 };
        written = (written + n) & (2 * PATH_MAX as u32 - 1);
        if n == 0 {
            break;
        }
        if dentry == parent {
            // A dentry that is its own parent below a mount's root: a pseudo file such as a
            // memfd (`memfd:NAME`), which has no path beyond its name.
            at_root = true;
            break;
        }
        dentry = parent;
    }
    Walk {
        len: written,
        truncated: !at_root,
    }
}
