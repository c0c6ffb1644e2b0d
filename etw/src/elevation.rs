//! The sensor needs an elevated token (Administrator, or LocalSystem as a service): the kernel
//! session is a system logger session and enabling providers for real-time consumption needs
//! administrative rights. Checked first, so that the user gets a clear sentence rather than
//! ETW's "Access is denied".

use windows_sys::Win32::{
    Foundation::{CloseHandle, HANDLE},
    Security::{GetTokenInformation, TOKEN_ELEVATION, TOKEN_QUERY, TokenElevation},
    System::Threading::{GetCurrentProcess, OpenProcessToken},
};

/// Whether this process runs with an elevated token.
pub fn is_elevated() -> std::io::Result<bool> {
    // SAFETY: plain Win32 calls on this process's token; the handle is closed below and the
    // output buffer is a TOKEN_ELEVATION of the size passed.
    unsafe {
        let mut token: HANDLE = std::ptr::null_mut();
        if OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) == 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut elevation = TOKEN_ELEVATION::default();
        let mut len = 0u32;
        let ok = GetTokenInformation(
            token,
            TokenElevation,
            (&mut elevation as *mut TOKEN_ELEVATION).cast(),
            std::mem::size_of::<TOKEN_ELEVATION>() as u32,
            &mut len,
        );
        let err = std::io::Error::last_os_error();
        CloseHandle(token);
        if ok == 0 {
            return Err(err);
        }
        Ok(elevation.TokenIsElevated != 0)
    }
}

/// `Err` with what to do when the process is not elevated.
pub fn require_elevated() -> Result<(), String> {
    match is_elevated() {
        Ok(true) => Ok(()),
        Ok(false) => Err(NOT_ELEVATED.to_owned()),
        Err(e) => Err(format!("cannot tell whether this process is elevated: {e}")),
    }
}

pub const NOT_ELEVATED: &str = "tunnelwatch needs administrator rights: its ETW sessions (the kernel's process events, Microsoft-Windows-Kernel-Process, Microsoft-Windows-DNS-Client) can only be started by an elevated process. Run it from an elevated prompt (\"Run as administrator\") or install it as a LocalSystem service (see etw/README.md)";
