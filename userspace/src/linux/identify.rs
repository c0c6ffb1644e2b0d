//! What an executable really is, whatever it is called: the Linux counterpart of a PE file's
//! `OriginalFilename`. A tunnel tool renamed to something innocent keeps the build information
//! the Go toolchain writes into every binary (`.go.buildinfo`: the main package's import
//! path), so `update-helper` that is really ngrok v3 is reported with
//! `original_file_name: ngrok`.
//!
//! Each file is looked at once: the answer is cached per (device, inode, mtime), which the
//! kernel sends with every exec, so repeated execs cost one hash lookup. Only the ELF headers
//! and the small build-info section are read, never the whole file.
//!
//! Covered: Go-built tools (ngrok v3 and v1, cloudflared, frpc/frps, chisel, zrok). Tools
//! written in other languages (bore, playit, VS Code's CLI) are known by name only.

use std::{collections::HashMap, fs::File, sync::Arc};

use object::{Object as _, ObjectSection as _, read::ReadCache};

/// Most files remembered before the cache starts over.
const CACHE_MAX: usize = 65_536;
/// Largest build-info section read (the real ones are a few KiB).
const BUILDINFO_MAX: u64 = 1 << 20;

/// Go main package import paths (without `/vN` major-version elements) and the name of the
/// tool they build.
const GO_MAIN_PACKAGES: &[(&str, &str)] = &[
    ("go.ngrok.com/cmd/ngrok", "ngrok"),
    ("github.com/inconshreveable/ngrok/main/ngrok", "ngrok"),
    (
        "github.com/cloudflare/cloudflared/cmd/cloudflared",
        "cloudflared",
    ),
    ("github.com/fatedier/frp/cmd/frpc", "frpc"),
    ("github.com/fatedier/frp/cmd/frps", "frps"),
    ("github.com/jpillora/chisel", "chisel"),
    ("github.com/openziti/zrok/cmd/zrok", "zrok"),
];

/// Identity of a file's content as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u32,
    pub ino: u64,
    pub mtime: u64,
}

#[derive(Default)]
pub struct Identifier {
    cache: HashMap<FileKey, Option<Arc<str>>>,
    /// Files actually read (cache misses).
    pub files_read: u64,
}

impl Identifier {
    /// What the file `key` is, opening it with `open` on a cache miss.
    pub fn identify(
        &mut self,
        key: FileKey,
        open: impl FnOnce() -> Option<File>,
    ) -> Option<Arc<str>> {
        if let Some(known) = self.cache.get(&key) {
            return known.clone();
        }
        self.files_read += 1;
        let found: Option<Arc<str>> = open().and_then(|f| identify_file(&f)).map(Arc::from);
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(key, found.clone());
        found
    }
}

/// The tool `file` is, if it is one we know.
pub fn identify_file(file: &File) -> Option<&'static str> {
    let data = ReadCache::new(file);
    let obj = object::File::parse(&data).ok()?;
    let section = obj.section_by_name(".go.buildinfo")?;
    if section.size() > BUILDINFO_MAX {
        return None;
    }
    let bytes = section.data().ok()?;
    let info = go_buildinfo(bytes)?;
    classify_go(&info.path)
}

/// The parts of Go build information used here.
#[derive(Debug, PartialEq, Eq)]
pub struct GoBuildInfo {
    /// Go version, e.g. `go1.22.4`.
    pub go_version: String,
    /// Import path of the main package.
    pub path: String,
    /// Main module path.
    pub module: String,
}

const GO_MAGIC: &[u8] = b"\xff Go buildinf:";
/// Size of the header before the inline strings.
const GO_HEADER: usize = 32;
/// Set in the flags byte when the strings follow the header inline (Go 1.18 and later).
const GO_INLINE_STRINGS: u8 = 0x2;

/// Parses the `.go.buildinfo` section of Go 1.18+ binaries (the format of Go's
/// `debug/buildinfo`: magic, pointer size, flags, then two varint-prefixed strings, the Go
/// version and the module information text). Older layouts (pointers into the data segment)
/// are not read.
pub fn go_buildinfo(section: &[u8]) -> Option<GoBuildInfo> {
    if section.len() < GO_HEADER || !section.starts_with(GO_MAGIC) {
        return None;
    }
    let flags = section[GO_MAGIC.len() + 1];
    if flags & GO_INLINE_STRINGS == 0 {
        return None;
    }
    let mut rest = &section[GO_HEADER..];
    let go_version = read_go_string(&mut rest)?;
    let modinfo = read_go_string(&mut rest)?;
    let mut info = GoBuildInfo {
        go_version: String::from_utf8_lossy(go_version).into_owned(),
        path: String::new(),
        module: String::new(),
    };
    // The module text is framed by 16-byte sentinels (as Go's debug/buildinfo strips them);
    // its lines are tab-separated.
    let modinfo = if modinfo.len() >= 33 && modinfo[modinfo.len() - 17] == b'\n' {
        &modinfo[16..modinfo.len() - 16]
    } else {
        modinfo
    };
    let text = String::from_utf8_lossy(modinfo);
    for line in text.lines() {
        let mut fields = line.split('\t');
        match (fields.next(), fields.next()) {
            (Some("path"), Some(p)) => info.path = p.to_string(),
            (Some("mod"), Some(m)) => info.module = m.to_string(),
            _ => {}
        }
    }
    Some(info)
}

/// Reads a uvarint length and that many bytes.
fn read_go_string<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let mut len: u64 = 0;
    let mut shift = 0;
    loop {
        let (&b, rest) = data.split_first()?;
        *data = rest;
        len |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    let len = usize::try_from(len).ok()?;
    if len > data.len() {
        return None;
    }
    let (s, rest) = data.split_at(len);
    *data = rest;
    Some(s)
}

/// The tool a Go main package path builds, ignoring `/vN` major-version elements.
pub fn classify_go(path: &str) -> Option<&'static str> {
    let normalized: Vec<&str> = path
        .split('/')
        .filter(|e| {
            !(e.len() > 1 && e.starts_with('v') && e[1..].bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    let normalized = normalized.join("/");
    GO_MAIN_PACKAGES
        .iter()
        .find(|(p, _)| *p == normalized)
        .map(|(_, name)| *name)
}

/// A `.go.buildinfo` section as the Go 1.18+ linker writes it (for tests: the end-to-end
/// tests add one to a copy of /bin/true to make a "renamed ngrok").
#[doc(hidden)]
pub fn buildinfo_section(go_version: &str, path: &str, module: &str) -> Vec<u8> {
    let mut s = GO_MAGIC.to_vec();
    s.push(8); // pointer size
    s.push(GO_INLINE_STRINGS);
    s.resize(GO_HEADER, 0);
    // The sentinels Go puts around the module text.
    let mut modinfo = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6".to_vec();
    modinfo.extend_from_slice(
        format!("path\t{path}\nmod\t{module}\t(devel)\t\nbuild\t-compiler=gc\n").as_bytes(),
    );
    modinfo.extend_from_slice(b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2");
    for part in [go_version.as_bytes(), &modinfo[..]] {
        let mut n = part.len();
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                s.push(b);
                break;
            }
            s.push(b | 0x80);
        }
        s.extend_from_slice(part);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inline_buildinfo() {
        let sec = buildinfo_section("go1.22.4", "go.ngrok.com/cmd/ngrok", "go.ngrok.com");
        let info = go_buildinfo(&sec).unwrap();
        assert_eq!(info.go_version, "go1.22.4");
        assert_eq!(&*info.path, "go.ngrok.com/cmd/ngrok");
        assert_eq!(info.module, "go.ngrok.com");
    }

    #[test]
    fn classifies_known_tools_and_versions() {
        assert_eq!(classify_go("go.ngrok.com/cmd/ngrok"), Some("ngrok"));
        assert_eq!(
            classify_go("github.com/fatedier/frp/cmd/frpc"),
            Some("frpc")
        );
        assert_eq!(
            classify_go("github.com/openziti/zrok/v2/cmd/zrok"),
            Some("zrok")
        );
        assert_eq!(classify_go("github.com/jpillora/chisel"), Some("chisel"));
        assert_eq!(classify_go("github.com/example/ngrok-lookalike"), None);
        assert_eq!(classify_go(""), None);
    }

    #[test]
    fn hostile_sections_are_refused_not_panicked_on() {
        let good = buildinfo_section("go1.21", "go.ngrok.com/cmd/ngrok", "m");
        for n in 0..good.len() {
            // Every prefix: either a clean None or a parse of what is there.
            let _ = go_buildinfo(&good[..n]);
        }
        let mut huge_len = good[..GO_HEADER].to_vec();
        huge_len.extend_from_slice(&[0xff; 12]);
        assert_eq!(go_buildinfo(&huge_len), None);
        let mut old_layout = good.clone();
        old_layout[GO_MAGIC.len() + 1] = 0;
        assert_eq!(go_buildinfo(&old_layout), None);
        assert_eq!(go_buildinfo(b"not a go binary at all, no magic here"), None);
    }

    #[test]
    fn non_go_and_missing_files() {
        let f = File::open("/bin/true").unwrap();
        assert_eq!(identify_file(&f), None);
        let mut id = Identifier::default();
        let key = FileKey {
            dev: 1,
            ino: 2,
            mtime: 3,
        };
        assert_eq!(id.identify(key, || None), None);
        // Cached: the opener is not called again.
        assert_eq!(id.identify(key, || panic!("cache miss")), None);
        assert_eq!(id.files_read, 1);
    }
}
