//! What an executable really is, whatever it is called: the Linux counterpart of a PE file's
//! `OriginalFilename`. A tunnel tool renamed to something innocent keeps the build information
//! the Go toolchain writes into every binary (the main package's import path), so
//! `update-helper` that is really ngrok is reported with `original_file_name: ngrok`. The
//! reading itself is `tunnelwatch-identify` (shared with the Windows sensor); this file
//! decides which file to read and when.
//!
//! - **Once per file content.** The answer is cached per (device, inode, mtime, ctime, size),
//!   which the kernel sends with every exec, so repeated execs cost one hash lookup. A file
//!   rewritten in place changes its ctime (which, unlike the mtime, no user can set back), so
//!   it is read again.
//! - **The file that ran.** It is opened as `/proc/PID/exe` (which also works for deleted
//!   files and memfds), else by its path, else by its path under `/proc/1/root` (the host's
//!   file system, for a sensor in a container with the host's PID namespace, whose own root
//!   is the image's), without blocking (`O_NONBLOCK`: a FIFO swapped in at
//!   the path cannot stall the sensor), and read only if it is a regular file with the inode,
//!   size, mtime and ctime of the record: a process that has exec'd again since, or a path
//!   that now names another file, is not read, and nothing is cached for it.
//! - **Bounded.** At most 2 MiB and 100 ms per file ([`Limits::DEFAULT`]), whatever its headers
//!   claim; a file over the limits is reported as unidentified and counted.
//!
//! Covered: Go-built tools (ngrok v3, v2 and v1, cloudflared, frpc/frps, chisel, zrok), built
//! with any Go since 1.13. Tools written in other languages (bore, playit, VS Code's CLI) are
//! known by name only.

use std::{
    fs::{File, OpenOptions},
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    sync::Arc,
};

use nix::fcntl::OFlag;
use tunnelwatch_identify::{Error, Limits};

/// Most files remembered before the cache starts over.
const CACHE_MAX: usize = 65_536;

/// Identity of a file's content as the kernel reports it at exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u32,
    pub ino: u64,
    pub mtime: u64,
    pub ctime: u64,
    pub ctime_nsec: u32,
    pub size: u64,
}

impl FileKey {
    /// Whether the open file `f` is the one this key describes (device numbers aside: on
    /// overlayfs the device `stat` reports is not the kernel's).
    fn matches(&self, f: &File) -> bool {
        let Ok(m) = f.metadata() else {
            return false;
        };
        m.file_type().is_file()
            && m.ino() == self.ino
            && m.size() == self.size
            && m.mtime() as u64 == self.mtime
            && m.ctime() as u64 == self.ctime
            && m.ctime_nsec() as u64 == u64::from(self.ctime_nsec)
    }
}

/// Counters of [`Identifier`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentifyCounters {
    /// Files read (cache misses).
    pub files_read: u64,
    /// Files not read: gone, or no longer the file that ran.
    pub files_unread: u64,
    /// Files whose reading went over the byte or time limit.
    pub files_over_limit: u64,
}

#[derive(Default)]
pub struct Identifier {
    /// foldhash (seeded per process), like the sensor's other tables.
    cache: foldhash::HashMap<FileKey, Option<Arc<str>>>,
    pub counters: IdentifyCounters,
}

impl Identifier {
    /// What the executable `key` (run by process `tgid` from `path`) is.
    pub fn identify(&mut self, key: FileKey, tgid: u32, path: &str) -> Option<Arc<str>> {
        if let Some(known) = self.cache.get(&key) {
            return known.clone();
        }
        let host_path = format!("/proc/1/root{path}");
        let Some(file) = [format!("/proc/{tgid}/exe").as_str(), path, &host_path]
            .into_iter()
            .filter_map(open)
            .find(|f| key.matches(f))
        else {
            self.counters.files_unread += 1;
            return None;
        };
        self.counters.files_read += 1;
        let found = match tunnelwatch_identify::identify(&file, Limits::DEFAULT) {
            Ok(tool) => tool.map(Arc::from),
            // Over the byte budget now, so next time too: remembered as unidentified.
            Err(Error::Budget) => {
                log::debug!("{path}: not identified: over the byte budget");
                self.counters.files_over_limit += 1;
                None
            }
            // Over time, or an I/O error: may pass next time, so not remembered.
            Err(e) => {
                log::debug!("{path}: not identified: {e}");
                if e.is_limit() {
                    self.counters.files_over_limit += 1;
                }
                return None;
            }
        };
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(key, found.clone());
        found
    }
}

/// Opens `path` for reading without blocking on it (a FIFO) or making it our terminal.
fn open(path: &str) -> Option<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
        .ok()
}

#[cfg(test)]
mod tests {
    use std::{io::Write as _, os::unix::fs::PermissionsExt as _};

    use tunnelwatch_identify::testing::GoFile;

    use super::*;

    fn key_of(path: &std::path::Path) -> FileKey {
        let m = std::fs::metadata(path).unwrap();
        FileKey {
            dev: 1,
            ino: m.ino(),
            mtime: m.mtime() as u64,
            ctime: m.ctime() as u64,
            ctime_nsec: m.ctime_nsec() as u32,
            size: m.size(),
        }
    }

    fn no_pid() -> u32 {
        // Above any pid_max: /proc/<it>/exe never exists.
        1 << 30
    }

    #[test]
    fn a_go_tool_is_read_once_then_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("update-helper");
        std::fs::write(
            &path,
            GoFile::new("go1.16.15", "go.ngrok.com/cmd/ngrok").elf(),
        )
        .unwrap();
        let key = key_of(&path);
        let p = path.to_str().unwrap();
        let mut id = Identifier::default();
        assert_eq!(id.identify(key, no_pid(), p).as_deref(), Some("ngrok"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(id.identify(key, no_pid(), p).as_deref(), Some("ngrok"));
        assert_eq!(id.counters.files_read, 1);
    }

    #[test]
    fn a_file_rewritten_in_place_with_its_mtime_restored_is_read_again() {
        // The red team's finding: rewrite in place, `touch -r` the old mtime back.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("helper");
        let benign = GoFile::new("go1.22.4", "example.com/cmd/helper").elf();
        let ngrok = GoFile::new("go1.22.4", "go.ngrok.com/cmd/ngrok").elf();
        assert_eq!(benign.len(), ngrok.len(), "same size: only the ctime tells");
        std::fs::write(&path, &benign).unwrap();
        let before = key_of(&path);
        let p = path.to_str().unwrap();
        let mut id = Identifier::default();
        assert_eq!(id.identify(before, no_pid(), p), None);
        std::thread::sleep(std::time::Duration::from_millis(20)); // a later clock tick
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let mut f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(&ngrok).unwrap();
        f.set_modified(mtime).unwrap(); // touch -r
        let after = key_of(&path);
        assert_eq!(
            (after.ino, after.mtime, after.size),
            (before.ino, before.mtime, before.size)
        );
        assert_eq!(id.identify(after, no_pid(), p).as_deref(), Some("ngrok"));
    }

    #[test]
    fn another_file_at_the_path_is_not_read_nor_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(
            &path,
            GoFile::new("go1.22.4", "go.ngrok.com/cmd/ngrok").elf(),
        )
        .unwrap();
        let ran = key_of(&path);
        // Replaced (a new inode) before the sensor got to it.
        let other = dir.path().join("y");
        std::fs::write(&other, b"#!/bin/sh\n").unwrap();
        std::fs::rename(&other, &path).unwrap();
        let p = path.to_str().unwrap();
        let mut id = Identifier::default();
        assert_eq!(id.identify(ran, no_pid(), p), None);
        assert_eq!(id.counters.files_unread, 1);
        assert!(id.cache.is_empty());
    }

    #[test]
    fn a_fifo_at_the_path_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let key = FileKey {
            dev: 1,
            ino: 1,
            mtime: 0,
            ctime: 0,
            ctime_nsec: 0,
            size: 0,
        };
        let mut id = Identifier::default();
        assert_eq!(id.identify(key, no_pid(), path.to_str().unwrap()), None);
        assert_eq!(id.counters.files_unread, 1);
    }

    #[test]
    fn the_running_process_is_read_through_proc() {
        // This test binary is running: /proc/self/exe is its file.
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let key = key_of(&exe);
        let mut id = Identifier::default();
        assert_eq!(id.identify(key, std::process::id(), "/nonexistent"), None);
        assert_eq!(id.counters.files_read, 1);
        // Another process's key does not match this one's file.
        let mut other = key;
        other.ctime_nsec ^= 1;
        assert_eq!(id.identify(other, std::process::id(), "/nonexistent"), None);
        assert_eq!(id.counters.files_unread, 1);
    }
}
