//! What the mapping asks of the machine it runs on: account names, the image, command line
//! and user of a live process, and version resources. [`WindowsHost`] asks Windows; `.etl`
//! replay's host answers from well-known SIDs only (`replay.rs`); tests answer from tables.

use std::path::Path;

use crate::{pe_version::VersionCache, sid::Sid};

/// Look-ups the events do not carry.
pub trait Host {
    /// `DOMAIN\user` of `sid`, or `None` when it cannot be named. The caller caches answers.
    fn account_name(&mut self, sid: &Sid) -> Option<String>;
    /// The Win32 path (`C:\...`) of the image of the running process `pid`; `None` once it
    /// has exited or when it cannot be opened.
    fn live_image_path(&mut self, pid: u32) -> Option<String>;
    /// The `OriginalFilename` of the image at `path` (see `pe_version.rs`).
    fn original_file_name(&mut self, path: &str) -> Option<String>;
    /// The command line of the running process `pid` (`ProcessCommandLineInformation`);
    /// `None` once it has exited or when it cannot be read.
    fn live_command_line(&mut self, _pid: u32) -> Option<String> {
        None
    }
    /// The user of the running process `pid` (its token's `TokenUser`).
    fn live_user_sid(&mut self, _pid: u32) -> Option<Sid> {
        None
    }
}

/// A host that knows nothing.
#[derive(Debug, Default)]
pub struct NoHost;

impl Host for NoHost {
    fn account_name(&mut self, _: &Sid) -> Option<String> {
        None
    }
    fn live_image_path(&mut self, _: u32) -> Option<String> {
        None
    }
    fn original_file_name(&mut self, _: &str) -> Option<String> {
        None
    }
}

/// Version resources read from the local file system, cached (used by [`WindowsHost`], and
/// usable anywhere).
#[derive(Debug, Default)]
pub struct LocalFiles {
    pub versions: VersionCache,
}

impl LocalFiles {
    pub fn original_file_name(&mut self, path: &str) -> Option<String> {
        if path.is_empty() {
            return None;
        }
        self.versions.get(Path::new(path))
    }
}

/// This Windows machine: `LookupAccountSidW`, `QueryFullProcessImageNameW`,
/// `NtQueryInformationProcess(ProcessCommandLineInformation)`, the process token, and the
/// image files themselves (see `live_process.rs`).
#[cfg(windows)]
#[derive(Debug, Default)]
pub struct WindowsHost {
    files: LocalFiles,
}

#[cfg(windows)]
impl Host for WindowsHost {
    fn account_name(&mut self, sid: &Sid) -> Option<String> {
        crate::sid::lookup_account(sid)
    }

    fn live_image_path(&mut self, pid: u32) -> Option<String> {
        crate::live_process::image_path(pid)
    }

    fn live_command_line(&mut self, pid: u32) -> Option<String> {
        crate::live_process::command_line(pid)
    }

    fn live_user_sid(&mut self, pid: u32) -> Option<Sid> {
        crate::live_process::user_sid(pid)
    }

    fn original_file_name(&mut self, path: &str) -> Option<String> {
        self.files.original_file_name(path)
    }
}
