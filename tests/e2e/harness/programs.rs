//! Programs the tests run: a copy of /bin/true named `ngrok` (it ignores its arguments, which
//! is all a tunnel rule looks at), look-alikes, symlinks, scripts, and exec through a file
//! descriptor (execveat / fexecve).

use std::{
    ffi::CString,
    fs,
    os::unix::{
        ffi::OsStrExt,
        fs::PermissionsExt,
        process::{CommandExt, ExitStatusExt},
    },
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
};

use tempfile::TempDir;
use tunnelwatch_identify::testing;

pub struct Tools {
    dir: TempDir,
}

impl Tools {
    /// A world-readable temp dir holding `ngrok` and `ngrokker`, both copies of /bin/true.
    pub fn new() -> Tools {
        let dir = tempfile::Builder::new()
            .prefix("tunnelwatch-e2e-")
            .tempdir()
            .expect("temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let tools = Tools { dir };
        for name in ["ngrok", "ngrokker"] {
            let dst = tools.path(name);
            fs::copy(true_binary(), &dst).expect("copy /bin/true");
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o755)).unwrap();
        }
        tools
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn symlink(&self, target: &str, name: &str) -> PathBuf {
        let link = self.path(name);
        std::os::unix::fs::symlink(self.path(target), &link).unwrap();
        link
    }

    /// A copy of /bin/true called `name` that carries Go build information saying it was
    /// built from `main_package` (what the Go linker writes into every binary): to the
    /// sensor it is that tool, whatever its name.
    pub fn go_tool(&self, name: &str, main_package: &str) -> PathBuf {
        self.go_tool_from(&true_binary(), name, main_package)
    }

    /// As [`Tools::go_tool`], from a copy of `base` instead of /bin/true.
    pub fn go_tool_from(&self, base: &Path, name: &str, main_package: &str) -> PathBuf {
        let dst = self.path(name);
        fs::copy(base, &dst).expect("copy the base binary");
        let section = self.path(&format!("{name}.buildinfo"));
        fs::write(
            &section,
            testing::inline_blob("go1.22.4", &testing::modinfo(main_package, "example")),
        )
        .unwrap();
        run(Command::new("objcopy")
            .arg("--add-section")
            .arg(format!(".go.buildinfo={}", section.display()))
            .arg(&dst));
        fs::set_permissions(&dst, fs::Permissions::from_mode(0o755)).unwrap();
        dst
    }

    /// An executable file `name` (mode 0755) holding `bytes`.
    pub fn executable(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, bytes).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// An executable script `name` with `body` after a `#!/bin/sh` line.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let p = self.path(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
}

/// A child killed (and reaped) when the test ends, even by a panic.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// /bin/true with symlinks resolved.
pub fn true_binary() -> PathBuf {
    fs::canonicalize("/bin/true").unwrap()
}

/// Runs `cmd` and asserts it exited 0.
pub fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed: {status}");
}

struct Argv {
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}
// SAFETY: the pointers point into `_strings`, owned by the same value and never mutated.
unsafe impl Send for Argv {}
unsafe impl Sync for Argv {}

impl Argv {
    fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }

    fn first(&self) -> *const libc::c_char {
        self._strings[0].as_ptr()
    }
}

/// Runs `file` through `execveat(fd, "", argv, envp, AT_EMPTY_PATH)` (what fexecve does),
/// from a child of this process.
pub fn execveat(file: &Path, args: &[&str]) -> ExitStatus {
    let fd = nix::fcntl::open(
        file,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .expect("open for execveat");
    let strings: Vec<CString> = std::iter::once(file.as_os_str().as_bytes())
        .chain(args.iter().map(|a| a.as_bytes()))
        .map(|s| CString::new(s).unwrap())
        .collect();
    let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let argv = Argv {
        _strings: strings,
        ptrs,
    };
    let raw_fd = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let empty = CString::new("").unwrap();
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let envp = Argv {
        _strings: vec![empty],
        ptrs: envp.to_vec(),
    };
    let mut cmd = Command::new("/bin/false");
    // SAFETY: only async-signal-safe calls in the child (a raw syscall).
    unsafe {
        cmd.pre_exec(move || {
            let path = envp.first();
            libc::syscall(
                libc::SYS_execveat,
                raw_fd,
                path,
                argv.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
            Err(std::io::Error::last_os_error())
        });
    }
    let status = cmd.status().expect("spawn for execveat");
    drop(fd);
    assert!(
        status.success() || status.signal().is_none(),
        "execveat child: {status}"
    );
    status
}

/// Runs `python3 -c SCRIPT` in a network namespace of its own (`unshare --net`, loopback up):
/// its traffic stays there, and the sensor in the host namespace still sees it (cgroup, not
/// netns, decides).
pub fn python_in_own_netns(script: &str) -> ExitStatus {
    Command::new("unshare")
        .args([
            "--net",
            "sh",
            "-c",
            "ip link set lo up && exec python3 -c \"$0\"",
        ])
        .arg(script)
        .status()
        .unwrap()
}
