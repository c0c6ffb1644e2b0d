//! What an executable really is, whatever it is called: the Go build information every Go
//! binary carries (the main package's import path), read from ELF (Linux) and PE (Windows)
//! files, mapped to the tunnel tool it builds ([`tools`]). The Linux sensor calls it for each
//! new executable it sees run; the Windows sensor for images without a version resource.
//!
//! Hardened against hostile files, since it reads whatever any local user may execute:
//! - it finds the build information the way Go's own reader does (`debug/buildinfo`): by the
//!   `.go.buildinfo` section when there is one, else in the writable data the program headers
//!   (ELF) or the section table (PE) describe, so zeroed section headers or a renamed section
//!   hide nothing;
//! - every read goes through [`bounded::Bounded`]: a byte budget and a deadline per file,
//!   never past the end of the file, never an allocation sized by what a header claims; every
//!   count of headers is capped ([`elf::MAX_SEGMENTS`], [`elf::MAX_SECTIONS`],
//!   [`pe::MAX_SECTIONS`]) and so is every string ([`buildinfo`]).
//!
//! Layouts: Go 1.13 to 1.17 (pointers to the strings, 32 or 64 bits, either byte order) and
//! Go 1.18 and later (strings inline). Data flows one way: `bounded` reads, `elf`/`pe` build an
//! [`image::Image`], `buildinfo` decodes, `tools` names.

pub mod bounded;
pub mod buildinfo;
pub mod elf;
pub mod image;
pub mod pe;
#[doc(hidden)]
pub mod testing;
pub mod tools;

use std::io;

pub use bounded::{Limits, ReadAt};

/// Why a file was not identified.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not an ELF or PE file")]
    NotExecutable,
    #[error("no Go build information")]
    NotGo,
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("read budget exhausted")]
    Budget,
    #[error("read deadline passed")]
    Deadline,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl Error {
    /// The file asked for more than the limits allow (not a property of its format alone).
    pub fn is_limit(&self) -> bool {
        matches!(self, Error::Budget | Error::Deadline)
    }
}

/// Go build information, the parts used here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// Go version, e.g. `go1.16.15`.
    pub go_version: String,
    /// Import path of the main package (empty for binaries built outside module mode).
    pub path: String,
    /// Path of the main module.
    pub module: String,
}

/// Reads the Go build information of the executable `src` within `limits`.
pub fn read_build_info<R: ReadAt + ?Sized>(src: &R, limits: Limits) -> Result<BuildInfo, Error> {
    let mut f = bounded::Bounded::new(src, limits)?;
    let magic = f.read(0, 4)?;
    let image = if magic.starts_with(b"\x7fELF") {
        elf::image(&mut f)?
    } else if magic.starts_with(b"MZ") {
        pe::image(&mut f)?
    } else {
        return Err(Error::NotExecutable);
    };
    let raw = buildinfo::read(&image, &mut f)?;
    let (path, module) = buildinfo::main_package(&raw.modinfo);
    Ok(BuildInfo {
        go_version: raw.version,
        path,
        module,
    })
}

/// The tunnel tool `src` is (`ngrok`, `cloudflared`, ...): `Ok(None)` for any other
/// executable or file, `Err` when it could not be read within `limits` or at all.
pub fn identify<R: ReadAt + ?Sized>(
    src: &R,
    limits: Limits,
) -> Result<Option<&'static str>, Error> {
    match read_build_info(src, limits) {
        Ok(info) => Ok(tools::classify(&info.path)),
        Err(Error::NotExecutable | Error::NotGo | Error::Malformed(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
