//! What the mapping asks of the machine it runs on: account names, the image of a live
//! process, and version resources. [`WindowsHost`] asks Windows; tests answer from tables.

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

/// This Windows machine: `LookupAccountSidW`, `QueryFullProcessImageNameW`, and the image
/// files themselves.
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
        use windows_sys::Win32::{
            Foundation::CloseHandle,
            System::Threading::{
                OpenProcess, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION,
                QueryFullProcessImageNameW,
            },
        };

        if pid == 0 || pid == 4 {
            return None; // Idle and System have no image file.
        }
        // SAFETY: plain Win32 calls; the handle is closed below and the buffer is writable
        // for the length passed.
        unsafe {
            let h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
            if h.is_null() {
                return None;
            }
            let mut buf = vec![0u16; 32768];
            let mut len = buf.len() as u32;
            let ok = QueryFullProcessImageNameW(h, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len);
            CloseHandle(h);
            (ok != 0).then(|| String::from_utf16_lossy(&buf[..len as usize]))
        }
    }

    fn original_file_name(&mut self, path: &str) -> Option<String> {
        self.files.original_file_name(path)
    }
}
