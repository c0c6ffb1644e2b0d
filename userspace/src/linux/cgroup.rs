//! Finding the cgroup v2 root, where the DNS programs attach so that they see every process.
//! It is `/sys/fs/cgroup` on most hosts and `/sys/fs/cgroup/unified` on hybrid (v1+v2) ones;
//! `/proc/self/mountinfo` says which. In a container, the cgroup2 file system mounted there is
//! often the container's own cgroup (a private cgroup namespace), not the host's root: attached
//! there, the programs would see the container's packets alone, so such a mount is refused
//! with what to change.
//!
//! Uses: nothing of this crate.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

/// The mount point of the cgroup v2 hierarchy's root: the first mount of the hierarchy (those
/// whose root is shown as `/` first) that is its real root.
pub fn v2_root() -> Result<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    let mounts = v2_mounts(&mountinfo);
    if let Some(root) = mounts.iter().find(|m| is_hierarchy_root(m)) {
        return Ok(root.clone());
    }
    match mounts.first() {
        None => bail!(
            "no cgroup v2 hierarchy is mounted (needed to see DNS packets of every process); \
             mount one with `mount -t cgroup2 none /sys/fs/cgroup` (or /sys/fs/cgroup/unified on a \
             cgroup v1 host)"
        ),
        Some(m) => bail!(
            "the cgroup v2 file system mounted at {} is not the host's root cgroup but a cgroup \
             below it (this process runs in a private cgroup namespace, as containers do by \
             default): attached there, the DNS programs would see the packets of that cgroup's \
             processes only. Run with the host's cgroup namespace (podman or docker \
             `--cgroupns=host`), or mount the host's cgroup2 root into the container (Kubernetes: \
             a hostPath volume of /sys/fs/cgroup, as deploy/tunnelwatch-daemonset.yaml does)",
            m.display()
        ),
    }
}

/// Whether `dir` is the root of its cgroup v2 hierarchy, whatever cgroup namespace looks at
/// it: the kernel gives every cgroup a `cgroup.events` file except the root
/// (`CFTYPE_NOT_ON_ROOT` in kernel/cgroup/cgroup.c, since 4.5).
pub fn is_hierarchy_root(dir: &Path) -> bool {
    dir.join("cgroup.procs").exists() && !dir.join("cgroup.events").exists()
}

/// The first of [`v2_mounts`].
pub fn find_v2_root(mountinfo: &str) -> Option<PathBuf> {
    v2_mounts(mountinfo).into_iter().next()
}

/// The mount points of cgroup v2 file systems in mountinfo text (see proc(5): `ID PARENT
/// MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - FSTYPE SRC SUPER`), those whose root is shown as `/`
/// (the hierarchy's root, or in a private cgroup namespace that namespace's root) first, each
/// once.
pub fn v2_mounts(mountinfo: &str) -> Vec<PathBuf> {
    let (mut roots, mut others) = (Vec::new(), Vec::new());
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let mut fields = left.split_whitespace();
        let root = fields.nth(3);
        let Some(mount_point) = fields.next() else {
            continue;
        };
        let path = PathBuf::from(unescape(mount_point));
        let list = if root == Some("/") {
            &mut roots
        } else {
            &mut others
        };
        if !list.contains(&path) {
            list.push(path);
        }
    }
    others.retain(|p| !roots.contains(p));
    roots.extend(others);
    roots
}

/// mountinfo escapes space, tab, newline and backslash as octal (`\040`).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_host() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            find_v2_root(text),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn unified_host_with_tags_and_a_nested_bind() {
        let text = "25 21 0:23 /sub /mnt/x rw shared:4 - cgroup2 cgroup2 rw\n\
                    26 21 0:23 / /sys/fs/cgroup rw,nosuid shared:5 master:1 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(find_v2_root(text), Some(PathBuf::from("/sys/fs/cgroup")));
    }

    #[test]
    fn escaped_mount_point_and_none() {
        let text = "26 21 0:23 / /tmp/a\\040b rw - cgroup2 cgroup2 rw\n";
        assert_eq!(find_v2_root(text), Some(PathBuf::from("/tmp/a b")));
        assert_eq!(find_v2_root("1 0 0:1 / / rw - ext4 /dev/vda rw\n"), None);
    }

    #[test]
    fn every_mount_once_roots_first() {
        // A container in a private cgroup namespace with the host's hierarchy bind-mounted
        // (its root shown relative to the namespace's root) besides its own.
        let text = "25 21 0:23 /../../.. /host/cgroup ro - cgroup2 cgroup2 rw\n\
                    26 21 0:23 / /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n\
                    27 21 0:23 / /sys/fs/cgroup ro - cgroup2 cgroup2 rw\n";
        assert_eq!(
            v2_mounts(text),
            [
                PathBuf::from("/sys/fs/cgroup"),
                PathBuf::from("/host/cgroup")
            ]
        );
    }

    #[test]
    fn the_root_cgroup_is_the_one_without_events() {
        let dir = tempfile::tempdir().unwrap();
        let (root, child) = (dir.path().join("root"), dir.path().join("child"));
        for (d, files) in [
            (&root, &["cgroup.procs", "cgroup.controllers"][..]),
            (
                &child,
                &["cgroup.procs", "cgroup.events", "cgroup.type"][..],
            ),
        ] {
            std::fs::create_dir(d).unwrap();
            for f in files {
                std::fs::write(d.join(f), "").unwrap();
            }
        }
        assert!(is_hierarchy_root(&root));
        assert!(!is_hierarchy_root(&child));
        assert!(!is_hierarchy_root(&dir.path().join("missing")));
    }
}
