//! Finding the cgroup v2 root, where the DNS programs attach so that they see every process.
//! It is `/sys/fs/cgroup` on most hosts and `/sys/fs/cgroup/unified` on hybrid (v1+v2) ones;
//! `/proc/self/mountinfo` says which.
//!
//! Uses: nothing of this crate.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};

/// The mount point of the cgroup v2 hierarchy. When several are mounted (bind mounts), the
/// one whose root is the hierarchy's root (`/`) wins.
pub fn v2_root() -> Result<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .context("cannot read /proc/self/mountinfo")?;
    match find_v2_root(&mountinfo) {
        Some(p) => Ok(p),
        None => bail!(
            "no cgroup v2 hierarchy is mounted (needed to see DNS packets of every process); \
             mount one with `mount -t cgroup2 none /sys/fs/cgroup` (or /sys/fs/cgroup/unified on a \
             cgroup v1 host)"
        ),
    }
}

/// Parses mountinfo text (see proc(5)): `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS] - FSTYPE SRC SUPER`.
pub fn find_v2_root(mountinfo: &str) -> Option<PathBuf> {
    let mut fallback = None;
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
        if root == Some("/") {
            return Some(path);
        }
        fallback.get_or_insert(path);
    }
    fallback
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
}
