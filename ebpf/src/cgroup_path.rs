//! The names of the task's cgroup in the default (v2) hierarchy and of its ancestors below
//! the root, read from their kernfs nodes: leaf first, each NUL-terminated. User space finds
//! the container in them (`libpod-<id>.scope`, `cri-containerd-<id>.scope`, `pod<uid>`, ...)
//! even when the cgroup is gone by the time it reads the record.
//!
//! Written for the verifier like `exe_path.rs`: masked offsets, reads that do not branch on
//! failure, and whether the walk reached the root decided once after the loop.

use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use tunnelwatch_common::{
    limits::{CGROUP_DEPTH_MAX, CGROUP_PATH_MAX, EXEC_DATA_SIZE, NAME_MAX},
    offsets::ABSENT,
};

use crate::{exe_path::Walk, globals::off, kread};

/// Writes the names of `task`'s cgroup and its ancestors (not the root's) into `data` from
/// `start` (masked into the data area, which has `NAME_MAX` bytes of slack).
#[inline(always)]
pub(crate) fn walk(task: *const u8, data: *mut u8, start: u32) -> Walk {
    let none = Walk {
        len: 0,
        truncated: false,
    };
    if off!(task_cgroups) == ABSENT
        || off!(css_set_dfl_cgrp) == ABSENT
        || off!(cgroup_kn) == ABSENT
        || off!(kernfs_node_name) == ABSENT
        || off!(kernfs_node_parent) == ABSENT
    {
        return none;
    }
    let css_set = kread::ptr(task, off!(task_cgroups));
    let cgroup = kread::ptr(css_set, off!(css_set_dfl_cgrp));
    let mut kn = kread::ptr(cgroup, off!(cgroup_kn));
    let mut written: u32 = 0;
    let mut at_root = false;
    for _ in 0..CGROUP_DEPTH_MAX {
        let parent = kread::ptr(kn, off!(kernfs_node_parent));
        if parent.is_null() {
            // The root of the hierarchy: its name is not part of the path.
            at_root = true;
            break;
        }
        if written as usize > CGROUP_PATH_MAX - NAME_MAX {
            break;
        }
        let name = kread::ptr(kn, off!(kernfs_node_name));
        let pos = ((start + written) as usize) & (EXEC_DATA_SIZE - 1);
        // SAFETY: `pos < EXEC_DATA_SIZE` and the data area has NAME_MAX bytes of slack.
        let n = unsafe {
            bpf_probe_read_kernel_str(data.wrapping_add(pos).cast(), NAME_MAX as u32, name.cast())
        };
        let n = if n > 0 { n as u32 } else { 0 };
        written = (written + n) & (2 * CGROUP_PATH_MAX as u32 - 1);
        if n == 0 {
            break;
        }
        kn = parent;
    }
    Walk {
        len: written,
        truncated: !at_root,
    }
}
