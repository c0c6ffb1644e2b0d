//! One sensor per host (Windows only): a named mutex in the global namespace,
//! `Global\tunnelwatch-sensor`, held for the sensor's life. A second instance finds it held
//! and refuses before it touches any ETW session: it does not stop the first one's sessions
//! (which the stale-session clean-up at start would otherwise do, the names being fixed).
//! Windows releases the mutex when its holder exits, however it exits.

use windows_sys::Win32::{
    Foundation::{CloseHandle, ERROR_ALREADY_EXISTS, GetLastError, HANDLE},
    System::Threading::CreateMutexW,
};

/// The mutex's name.
pub const NAME: &str = r"Global\tunnelwatch-sensor";

/// Held while the sensor runs.
#[derive(Debug)]
pub struct Instance(HANDLE);

// SAFETY: a mutex handle may be used and closed from any thread.
unsafe impl Send for Instance {}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: the handle was created by `acquire` and is closed once.
        unsafe { CloseHandle(self.0) };
    }
}

/// Takes the host's sensor mutex, or says why not.
pub fn acquire() -> Result<Instance, String> {
    let wide: Vec<u16> = NAME.encode_utf16().chain([0]).collect();
    // SAFETY: `wide` is NUL-terminated; the handle is owned by the returned value.
    let (handle, err) = unsafe {
        let h = CreateMutexW(std::ptr::null(), 0, wide.as_ptr());
        (h, GetLastError())
    };
    if handle.is_null() {
        return Err(format!(
            "cannot create the mutex {NAME} that keeps to one sensor per host: {}",
            std::io::Error::from_raw_os_error(err as i32)
        ));
    }
    if err == ERROR_ALREADY_EXISTS {
        // SAFETY: the handle was just returned and is not used again.
        unsafe { CloseHandle(handle) };
        return Err(ALREADY_RUNNING.to_owned());
    }
    Ok(Instance(handle))
}

pub const ALREADY_RUNNING: &str = "another tunnelwatch sensor is already running on this host (it holds Global\\tunnelwatch-sensor); this one leaves it and its ETW sessions alone. Stop it first (Ctrl-C in its console, or `sc.exe stop tunnelwatch` for the service)";
