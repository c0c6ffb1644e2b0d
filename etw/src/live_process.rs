//! What Windows says of a running process (Windows only): its image path
//! (`QueryFullProcessImageNameW`), its command line (`NtQueryInformationProcess` with
//! `ProcessCommandLineInformation`, class 60, documented from Windows 8.1) and its user (the
//! token's `TokenUser`). All need only `PROCESS_QUERY_LIMITED_INFORMATION`. They answer
//! `None` for a process that has exited, or that this process may not open (protected
//! processes), and for Idle and System, which have no image.

use windows_sys::Win32::{
    Foundation::{CloseHandle, HANDLE},
    Security::{GetLengthSid, GetTokenInformation, TOKEN_QUERY, TOKEN_USER, TokenUser},
    System::Threading::{
        OpenProcess, OpenProcessToken, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION,
        QueryFullProcessImageNameW,
    },
};

use crate::sid::Sid;

/// An open process handle, closed on drop.
struct Process(HANDLE);

impl Process {
    fn open(pid: u32) -> Option<Process> {
        if pid == 0 || pid == 4 {
            return None;
        }
        // SAFETY: a plain Win32 call; the handle is owned by the returned value.
        let h = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
        (!h.is_null()).then_some(Process(h))
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SAFETY: the handle was opened by `open` and is closed once.
        unsafe { CloseHandle(self.0) };
    }
}

/// The Win32 path of the process's image.
pub fn image_path(pid: u32) -> Option<String> {
    let p = Process::open(pid)?;
    let mut buf = vec![0u16; 32768];
    let mut len = buf.len() as u32;
    // SAFETY: `buf` is writable for `len` u16s; the handle is open.
    let ok =
        unsafe { QueryFullProcessImageNameW(p.0, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len) };
    (ok != 0).then(|| String::from_utf16_lossy(&buf[..(len as usize).min(buf.len())]))
}

/// The process's command line, from its process parameters.
pub fn command_line(pid: u32) -> Option<String> {
    use windows_sys::{
        Wdk::System::Threading::{NtQueryInformationProcess, ProcessCommandLineInformation},
        Win32::Foundation::UNICODE_STRING,
    };

    let p = Process::open(pid)?;
    // A UNICODE_STRING followed by the text it points at; 8-aligned.
    let mut buf = vec![0u64; 1024];
    for _ in 0..2 {
        let bytes = buf.len() * 8;
        let mut needed = 0u32;
        // SAFETY: `buf` is writable for `bytes` bytes; the handle is open.
        let status = unsafe {
            NtQueryInformationProcess(
                p.0,
                ProcessCommandLineInformation,
                buf.as_mut_ptr().cast(),
                bytes as u32,
                &mut needed,
            )
        };
        if status >= 0 {
            let base = buf.as_ptr() as usize;
            // SAFETY: the call wrote a UNICODE_STRING at the start of `buf`.
            let us = unsafe { &*(buf.as_ptr() as *const UNICODE_STRING) };
            let start = us.Buffer as usize;
            let len = usize::from(us.Length);
            // The text must lie inside `buf`.
            if start < base || start + len > base + bytes || len % 2 != 0 {
                return None;
            }
            // SAFETY: checked above to lie within `buf`.
            let text = unsafe { std::slice::from_raw_parts(us.Buffer, len / 2) };
            return Some(String::from_utf16_lossy(text));
        }
        let needed = needed as usize;
        if needed <= bytes || needed > 1 << 20 {
            return None;
        }
        buf = vec![0u64; needed.div_ceil(8)];
    }
    None
}

/// The SID of the process's user.
pub fn user_sid(pid: u32) -> Option<Sid> {
    let p = Process::open(pid)?;
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: plain Win32 calls on an open process handle; the token is closed below, and
    // the buffer is writable for the size passed.
    unsafe {
        if OpenProcessToken(p.0, TOKEN_QUERY, &mut token) == 0 {
            return None;
        }
        let token = Process(token);
        let mut buf = vec![0u64; 64];
        let mut len = 0u32;
        if GetTokenInformation(
            token.0,
            TokenUser,
            buf.as_mut_ptr().cast(),
            (buf.len() * 8) as u32,
            &mut len,
        ) == 0
        {
            return None;
        }
        let user = &*(buf.as_ptr() as *const TOKEN_USER);
        let sid = user.User.Sid;
        if sid.is_null() {
            return None;
        }
        let n = GetLengthSid(sid) as usize;
        let base = buf.as_ptr() as usize;
        if (sid as usize) < base || sid as usize + n > base + buf.len() * 8 {
            return None;
        }
        Sid::from_bytes(std::slice::from_raw_parts(sid as *const u8, n))
    }
}
