//! What program an exec really runs, when its executable does not say: a program run through
//! the dynamic loader directly (`/lib64/ld-linux-x86-64.so.2 ./ngrok http 80`: the kernel
//! runs the loader, which maps the program named in its arguments), and a program that runs
//! without a file on disk (from a memfd, `memfd_create` + `fexecve`, or a file deleted since).
//!
//! The loader is recognised by its file name (`ld-linux*.so*`, `ld-musl-*.so*`, `ld.so*`,
//! `ld64.so*`) or, whatever it is called, by its ELF header (64-bit little-endian, bounded
//! reads): a shared object with an entry point and no interpreter of its own, whose
//! `DT_SONAME` names a loader (a renamed copy of ld.so is still one; a static-pie program has
//! the first three but not the last). The
//! program is the first argument after the loader's own options, parsed as ld.so parses them
//! (glibc's and musl's): `--library-path`, `--inhibit-rpath`, `--audit`, `--preload`,
//! `--argv0`, `--glibc-hwcaps-prepend` and `--glibc-hwcaps-mask` take a value (as the next
//! argument or after `=`); `--` ends them. Its path is taken in the process's own view
//! (`/proc/PID/root` and `/proc/PID/cwd`), since it may be relative.
//!
//! Fileless: `/proc/PID/exe` names a memfd `/memfd:NAME (deleted)` and a removed file
//! `PATH (deleted)`; when the process is already gone, the path the kernel sent says memfd.
//!
//! Uses: nothing of this crate (reads /proc, and ELF headers itself).

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
};

use std::os::unix::fs::FileExt;

/// Loader options that take a value (glibc's rtld.c and musl's ldso/dynlink.c).
const OPTIONS_WITH_VALUE: &[&str] = &[
    "--library-path",
    "--inhibit-rpath",
    "--audit",
    "--preload",
    "--argv0",
    "--glibc-hwcaps-prepend",
    "--glibc-hwcaps-mask",
];

/// Most executables remembered (is it a loader or not) before the cache starts over.
const CACHE_MAX: usize = 16_384;
/// Program headers read at most.
const PHNUM_MAX: usize = 64;
/// Largest dynamic segment read.
const DYNAMIC_MAX: usize = 1 << 14;

/// How a program runs without a file on disk (the `process_fileless` field).
pub fn fileless(pid: u32, path: &str) -> &'static str {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if exe.starts_with("/memfd:") || (exe.is_empty() && path.starts_with("/memfd:")) {
        "memfd"
    } else if exe.ends_with(" (deleted)") {
        "deleted"
    } else {
        ""
    }
}

/// Whether a file name is one the dynamic loader goes by.
pub fn loader_name(name: &str) -> bool {
    let so = |prefix: &str| name.starts_with(prefix) && name.contains(".so");
    so("ld-linux") || so("ld-musl-") || so("ld.so") || so("ld64.so")
}

/// Whether an ELF file (64-bit, little-endian) is a dynamic loader: a shared object with an
/// entry point, no interpreter, and a loader's name as its `DT_SONAME` (glibc's
/// `ld-linux-x86-64.so.2`, musl's `libc.so`). Reads the ELF header, at most 64 program
/// headers, 16 KiB of dynamic segment and 256 bytes of name.
pub fn is_loader_elf(file: &File) -> bool {
    is_loader(file).unwrap_or(false)
}

fn is_loader(f: &File) -> Option<bool> {
    let read = |off: u64, len: usize| -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, off).ok()?;
        Some(buf)
    };
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4"));
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8"));
    let h = read(0, 64)?;
    // ELF magic, 64-bit, little-endian; ET_DYN with an entry point.
    if h[..4] != *b"\x7fELF" || h[4] != 2 || h[5] != 1 || u16_at(&h, 16) != 3 || u64_at(&h, 24) == 0
    {
        return Some(false);
    }
    let (phoff, phentsize, phnum) = (
        u64_at(&h, 32),
        usize::from(u16_at(&h, 54)),
        usize::from(u16_at(&h, 56)),
    );
    if phentsize < 56 || phnum == 0 || phnum > PHNUM_MAX {
        return Some(false);
    }
    let ph = read(phoff, phentsize * phnum)?;
    let mut dynamic = None;
    let mut loads = Vec::new();
    for i in 0..phnum {
        let p = &ph[i * phentsize..i * phentsize + 56];
        let (kind, offset, vaddr, filesz) =
            (u32_at(p, 0), u64_at(p, 8), u64_at(p, 16), u64_at(p, 32));
        match kind {
            // PT_INTERP: a program, not a loader.
            3 => return Some(false),
            2 => dynamic = Some((offset, filesz)),
            1 => loads.push((offset, vaddr, filesz)),
            _ => {}
        }
    }
    let (offset, size) = dynamic?;
    let dynamic = read(offset, (size as usize).min(DYNAMIC_MAX))?;
    let (mut strtab, mut soname) = (None, None);
    for entry in dynamic.chunks_exact(16) {
        match u64_at(entry, 0) {
            0 => break,
            5 => strtab = Some(u64_at(entry, 8)),
            14 => soname = Some(u64_at(entry, 8)),
            _ => {}
        }
    }
    let addr = strtab?.checked_add(soname?)?;
    // The string's file offset, through the segment that maps its address.
    let (seg_off, seg_vaddr, _) = loads
        .iter()
        .find(|(_, vaddr, filesz)| addr >= *vaddr && addr - vaddr < *filesz)?;
    let name = read(seg_off + (addr - seg_vaddr), 256)
        .or_else(|| read(seg_off + (addr - seg_vaddr), 32))?;
    let name = name.split(|&b| b == 0).next()?;
    let name = std::str::from_utf8(name).ok()?;
    Some(loader_name(name) || name == "libc.so")
}

/// The program a loader was asked to run: the first argument after its options (`argv[0]`
/// is the loader itself). `None` when there is none (`ld.so --help`, `--list`...).
pub fn loaded_program(argv: &[String]) -> Option<&str> {
    let mut args = argv.iter().skip(1);
    while let Some(a) = args.next() {
        if a == "--" {
            return args.next().map(String::as_str);
        }
        if !a.starts_with("--") {
            return Some(a);
        }
        if OPTIONS_WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if matches!(
            a.as_str(),
            "--list"
                | "--verify"
                | "--help"
                | "--version"
                | "--list-tunables"
                | "--list-diagnostics"
        ) {
            // The loader only reports; it runs no program.
            return None;
        }
        // Otherwise a flag (`--inhibit-cache`) or `--option=value`.
    }
    None
}

/// Where `program` (as given to the loader run by `pid`) is, seen from this process: under the
/// process's root, relative to its working directory when not absolute.
pub fn program_file(pid: u32, program: &str) -> PathBuf {
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    if let Some(abs) = program.strip_prefix('/') {
        root.join(abs)
    } else {
        PathBuf::from(format!("/proc/{pid}/cwd")).join(program)
    }
}

/// The program's path as the process names it: absolute as given, else joined to the
/// process's working directory (when it can still be read).
pub fn program_path(pid: u32, program: &str) -> String {
    if program.starts_with('/') {
        return program.to_owned();
    }
    match std::fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) => {
            let joined = cwd.join(program.strip_prefix("./").unwrap_or(program));
            joined.to_string_lossy().into_owned()
        }
        Err(_) => program.to_owned(),
    }
}

/// Remembers, per executable (device, inode, mtime), whether it is a dynamic loader.
#[derive(Default)]
pub struct Loaders {
    cache: HashMap<(u32, u64, u64), bool>,
}

impl Loaders {
    /// Whether the executable `path` (of process `pid`, with its kernel identity `key`) is
    /// a dynamic loader.
    pub fn is_loader(&mut self, key: (u32, u64, u64), pid: u32, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        if loader_name(name) {
            return true;
        }
        if let Some(&known) = self.cache.get(&key) {
            return known;
        }
        let found = File::open(format!("/proc/{pid}/exe"))
            .or_else(|_| File::open(Path::new(path)))
            .is_ok_and(|f| is_loader_elf(&f));
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(key, found);
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn the_program_follows_the_loaders_options() {
        let cases = [
            ("ld.so ./ngrok http 80", Some("./ngrok")),
            ("ld.so --library-path /x ./ngrok http 80", Some("./ngrok")),
            (
                "ld.so --library-path=/x --preload /y.so /tmp/t tcp 22",
                Some("/tmp/t"),
            ),
            (
                "ld.so --argv0 sshd --inhibit-cache ./ngrok",
                Some("./ngrok"),
            ),
            (
                "ld.so --audit a.so --glibc-hwcaps-mask x86-64-v2 p",
                Some("p"),
            ),
            ("ld.so -- ./--odd-name", Some("./--odd-name")),
            ("ld.so --list ./ngrok", None),
            ("ld.so --help", None),
            ("ld.so", None),
        ];
        for (line, want) in cases {
            assert_eq!(loaded_program(&argv(line)), want, "{line}");
        }
    }

    #[test]
    fn loader_names_and_elf() {
        for n in [
            "ld-linux-x86-64.so.2",
            "ld-linux-aarch64.so.1",
            "ld-linux.so.2",
            "ld-musl-x86_64.so.1",
            "ld64.so.2",
            "ld.so.1",
        ] {
            assert!(loader_name(n), "{n}");
        }
        for n in ["ld", "ldconfig", "ld-helper", "libc.so.6", "ngrok"] {
            assert!(!loader_name(n), "{n}");
        }
        // This machine's loader, by its content; a program and a shared library are not.
        let interp = std::fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap();
        assert!(is_loader_elf(&File::open(&interp).unwrap()), "{interp:?}");
        assert!(!is_loader_elf(&File::open("/proc/self/exe").unwrap()));
        let libc = std::fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        assert!(!is_loader_elf(&File::open(libc).unwrap()));
        assert!(!is_loader_elf(&File::open("/bin/true").unwrap()));
    }
}
