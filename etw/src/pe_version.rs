//! `original_file_name`: the `OriginalFilename` string of an image's version resource, which
//! names what a program really is whatever the file has been renamed to (a renamed ngrok.exe
//! still says `ngrok.exe` there, when its build wrote one).
//!
//! Pure Rust on every platform, so it is tested on Linux against mingw-built fixtures
//! (`etw/tests/fixtures/pe/`): the PE headers and the resource directory are read with the
//! `object` crate, on demand from the file (a 30 MB image costs a few reads, not 30 MB), and
//! the `VS_VERSIONINFO` tree is walked here. Results are cached by path, size and modification
//! time ([`VersionCache`]).
//!
//! Go-built tools (ngrok, cloudflared, frpc, chisel, ...) write no version resource: for an
//! image without an `OriginalFilename`, the tool its Go build information names is taken
//! instead, read as the Linux sensor reads it (`tunnelwatch-identify`, bounded), with `.exe`
//! appended (`ngrok.exe`).
//!
//! `VS_VERSIONINFO` (Microsoft Learn, "VS_VERSIONINFO structure", "StringFileInfo",
//! "StringTable", "String"): every node is `wLength`, `wValueLength`, `wType` (1 = text,
//! `wValueLength` then counts UTF-16 units), a NUL-terminated UTF-16 key, padding to 4 bytes,
//! the value, padding to 4 bytes, then child nodes up to `wLength`. The path read here is
//! `VS_VERSION_INFO` / `StringFileInfo` / `<lang+codepage>` / `OriginalFilename`.

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
    time::SystemTime,
};

use object::{
    FileKind, LittleEndian as LE, ReadCache, ReadRef,
    pe::{self, ImageDosHeader},
    read::pe::{ImageNtHeaders, ResourceDirectoryEntryData, ResourceNameOrId},
};

/// Resource sections larger than this are not read (a version resource is tiny; a huge
/// `.rsrc` is icons and installers' payloads).
const MAX_RESOURCE_SECTION: u32 = 64 << 20;

/// The `OriginalFilename` of the PE image in `data` (the whole file, or a [`ReadCache`] over
/// it); `None` when it is not a PE image or has no such string.
pub fn original_file_name<'data, R: ReadRef<'data>>(data: R) -> Option<String> {
    let version = match FileKind::parse(data).ok()? {
        FileKind::Pe32 => version_resource::<pe::ImageNtHeaders32, R>(data)?,
        FileKind::Pe64 => version_resource::<pe::ImageNtHeaders64, R>(data)?,
        _ => return None,
    };
    string_file_info_value(version, "OriginalFilename")
}

/// The bytes of the first `RT_VERSION` resource.
fn version_resource<'data, Pe: ImageNtHeaders, R: ReadRef<'data>>(data: R) -> Option<&'data [u8]> {
    let dos = ImageDosHeader::parse(data).ok()?;
    let mut offset = dos.nt_headers_offset().into();
    let (nt, dirs) = Pe::parse(data, &mut offset).ok()?;
    let sections = nt.sections(data, offset).ok()?;
    let dir_entry = dirs.get(pe::IMAGE_DIRECTORY_ENTRY_RESOURCE)?;
    let (_, rsrc_size) = dir_entry.address_range();
    if rsrc_size == 0 || rsrc_size > MAX_RESOURCE_SECTION {
        return None;
    }
    let rsrc = dirs.resource_directory(data, &sections).ok()??;
    // Type RT_VERSION, then its first name, then its first language.
    let root = rsrc.root().ok()?;
    let by_type = root
        .entries
        .iter()
        .find(|e| matches!(e.name_or_id(), ResourceNameOrId::Id(pe::RT_VERSION)))?;
    // The tree is three levels deep; a deeper (or looping) one is not followed.
    let mut entry = *by_type;
    let mut data_entry = None;
    for _ in 0..3 {
        match entry.data(rsrc).ok()? {
            ResourceDirectoryEntryData::Table(t) => entry = *t.entries.first()?,
            ResourceDirectoryEntryData::Data(d) => {
                data_entry = Some(d);
                break;
            }
        }
    }
    let data_entry = data_entry?;
    let rva = data_entry.offset_to_data.get(LE);
    let size = data_entry.size.get(LE) as usize;
    // The data normally lies inside the resource section; any section will do.
    let bytes = sections.pe_data_at(data, rva)?;
    bytes.get(..size.min(bytes.len()))
}

/// One node of the `VS_VERSIONINFO` tree.
struct Node<'a> {
    key: String,
    /// The value; for text nodes (`wType` 1) everything up to the node's end, to be cut at the
    /// first NUL (some writers count `wValueLength` in bytes rather than characters).
    value: &'a [u8],
    is_text: bool,
    /// The bytes of the child nodes (none for a string).
    children: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The node at the start of `b` (which must start 4-aligned within the resource), and the
/// length to skip to the next sibling.
fn node(b: &[u8]) -> Option<(Node<'_>, usize)> {
    let len = usize::from(u16_at(b, 0)?);
    if len < 6 {
        return None;
    }
    let b = b.get(..len.min(b.len()))?;
    let value_len = usize::from(u16_at(b, 2)?);
    let is_text = u16_at(b, 4)? == 1;
    let mut key = Vec::new();
    let mut at = 6;
    loop {
        let c = u16_at(b, at)?;
        at += 2;
        if c == 0 {
            break;
        }
        key.push(c);
    }
    let value_start = align4(at).min(b.len());
    // Text values are counted in UTF-16 units, binary ones in bytes.
    let value_bytes = if is_text { 2 * value_len } else { value_len };
    let value_end = (value_start + value_bytes).min(b.len());
    let children = &b[align4(value_end).min(b.len())..];
    // A text value is read up to its NUL, whatever `wValueLength` says.
    let value_end = if is_text { b.len() } else { value_end };
    Some((
        Node {
            key: String::from_utf16_lossy(&key),
            value: &b[value_start..value_end],
            is_text,
            children,
        },
        align4(len),
    ))
}

/// The child nodes of `children`.
fn nodes(mut children: &[u8]) -> impl Iterator<Item = Node<'_>> {
    std::iter::from_fn(move || {
        let (n, skip) = node(children)?;
        children = children.get(skip..).unwrap_or(&[]);
        Some(n)
    })
}

fn text(value: &[u8]) -> String {
    let units: Vec<u16> = value
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&c| c != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// The first non-empty `name` string of any string table of the version resource `version`.
fn string_file_info_value(version: &[u8], name: &str) -> Option<String> {
    let (root, _) = node(version)?;
    if root.key != "VS_VERSION_INFO" {
        return None;
    }
    nodes(root.children)
        .filter(|n| n.key == "StringFileInfo")
        .flat_map(|sfi| nodes(sfi.children))
        .flat_map(|table| nodes(table.children))
        .filter(|s| s.is_text && s.key == name)
        .map(|s| text(s.value).trim().to_owned())
        .find(|v| !v.is_empty())
}

/// Reads `path` on demand and returns its `OriginalFilename`, else the Go-built tool it is.
pub fn original_file_name_of_file(path: &Path) -> Option<String> {
    let file = File::open(path).ok()?;
    let cache = ReadCache::new(file);
    original_file_name(&cache).or_else(|| {
        let file = cache.into_inner();
        let tool = tunnelwatch_identify::identify(&file, tunnelwatch_identify::Limits::DEFAULT);
        tool.ok().flatten().map(|t| format!("{t}.exe"))
    })
}

/// `original_file_name` per image, keyed by path, size and modification time, so that a file
/// replaced in place is read again. Bounded: when full, it starts over.
#[derive(Debug, Default)]
pub struct VersionCache {
    entries: HashMap<PathBuf, Entry>,
    reads: u64,
}

#[derive(Debug)]
struct Entry {
    size: u64,
    modified: Option<SystemTime>,
    name: Option<String>,
}

/// Most images remembered.
const VERSION_CACHE_MAX: usize = 4096;

impl VersionCache {
    /// The `OriginalFilename` of the image at `path` (`None` for a missing or unreadable file,
    /// or one without the string).
    pub fn get(&mut self, path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        let (size, modified) = (meta.len(), meta.modified().ok());
        if let Some(e) = self.entries.get(path)
            && e.size == size
            && e.modified == modified
        {
            return e.name.clone();
        }
        if self.entries.len() >= VERSION_CACHE_MAX {
            self.entries.clear();
        }
        self.reads += 1;
        let name = original_file_name_of_file(path);
        self.entries.insert(
            path.to_owned(),
            Entry {
                size,
                modified,
                name: name.clone(),
            },
        );
        name
    }

    /// How many times an image was read (cache misses).
    pub fn reads(&self) -> u64 {
        self.reads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version resource as a byte tree, for the malformed cases the fixtures do not cover.
    fn block(key: &str, value: &[u8], text: bool, value_len: u16, children: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0];
        b.extend_from_slice(&value_len.to_le_bytes());
        b.extend_from_slice(&u16::from(text).to_le_bytes());
        for c in key.encode_utf16().chain([0]) {
            b.extend_from_slice(&c.to_le_bytes());
        }
        b.resize(align4(b.len()), 0);
        b.extend_from_slice(value);
        if !children.is_empty() {
            b.resize(align4(b.len()), 0);
            b.extend_from_slice(children);
        }
        let len = b.len() as u16;
        b[..2].copy_from_slice(&len.to_le_bytes());
        b.resize(align4(b.len()), 0);
        b
    }

    fn utf16z(s: &str) -> Vec<u8> {
        s.encode_utf16()
            .chain([0])
            .flat_map(|c| c.to_le_bytes())
            .collect()
    }

    fn version(strings: &[(&str, &str)], value_len_in_bytes: bool) -> Vec<u8> {
        let mut table = Vec::new();
        for (k, v) in strings {
            let value = utf16z(v);
            let n = if value_len_in_bytes {
                value.len()
            } else {
                value.len() / 2
            };
            table.extend(block(k, &value, true, n as u16, &[]));
        }
        let table = block("040904b0", &[], true, 0, &table);
        let sfi = block("StringFileInfo", &[], true, 0, &table);
        block("VS_VERSION_INFO", &[0u8; 52], false, 52, &sfi)
    }

    #[test]
    fn the_string_is_found_in_a_version_tree() {
        let v = version(
            &[("CompanyName", "x"), ("OriginalFilename", "ngrok.exe")],
            false,
        );
        assert_eq!(
            string_file_info_value(&v, "OriginalFilename").as_deref(),
            Some("ngrok.exe")
        );
        // wValueLength in bytes (a common writer bug) reads the same.
        let v = version(&[("OriginalFilename", "ngrok.exe")], true);
        assert_eq!(
            string_file_info_value(&v, "OriginalFilename").as_deref(),
            Some("ngrok.exe")
        );
        assert_eq!(string_file_info_value(&v, "InternalName"), None);
    }

    #[test]
    fn malformed_trees_give_nothing() {
        let v = version(&[("OriginalFilename", "ngrok.exe")], false);
        for cut in [0, 1, 5, 6, 20, 40, 100] {
            // Never panics; mostly nothing.
            let _ = string_file_info_value(&v[..cut.min(v.len())], "OriginalFilename");
        }
        assert_eq!(string_file_info_value(&v[..40], "OriginalFilename"), None);
        let mut wrong_root = v.clone();
        wrong_root[6] = b'X';
        assert_eq!(
            string_file_info_value(&wrong_root, "OriginalFilename"),
            None
        );
        let empty = version(&[("OriginalFilename", "")], false);
        assert_eq!(string_file_info_value(&empty, "OriginalFilename"), None);
        // A zero-length node does not loop forever.
        let mut zero = v.clone();
        let children_at = 6 + 32 + 2 + 52; // header, key, pad, value
        zero[children_at] = 0;
        zero[children_at + 1] = 0;
        assert_eq!(string_file_info_value(&zero, "OriginalFilename"), None);
        assert_eq!(original_file_name(&b"MZ not a PE"[..]), None);
        assert_eq!(original_file_name(&b"\x7fELF"[..]), None);
    }

    #[test]
    fn a_go_built_tool_without_a_version_resource_is_named_by_its_build_information() {
        use tunnelwatch_identify::testing::GoFile;

        let dir = std::env::temp_dir().join(format!("tunnelwatch-pe-go-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cache = VersionCache::default();
        for (name, version, path, want) in [
            (
                "svchost.exe",
                "go1.22.4",
                "go.ngrok.com/cmd/ngrok",
                Some("ngrok.exe"),
            ),
            (
                "a.exe",
                "go1.16.15",
                "github.com/jpillora/chisel",
                Some("chisel.exe"),
            ),
            (
                "b.exe",
                "go1.21.0",
                "github.com/fatedier/frp/cmd/frpc",
                Some("frpc.exe"),
            ),
            (
                "c.exe",
                "go1.20.1",
                "github.com/cloudflare/cloudflared/cmd/cloudflared",
                Some("cloudflared.exe"),
            ),
            ("d.exe", "go1.22.4", "example.com/cmd/tool", None),
        ] {
            let mut go = GoFile::new(version, path);
            go.wide = name != "a.exe"; // one PE32 among the PE32+
            let file = dir.join(name);
            std::fs::write(&file, go.pe()).unwrap();
            assert_eq!(original_file_name_of_file(&file).as_deref(), want, "{name}");
            assert_eq!(cache.get(&file).as_deref(), want, "{name}");
        }
        // Same path, size and time: the cache answers.
        let reads = cache.reads();
        assert_eq!(
            cache.get(&dir.join("svchost.exe")).as_deref(),
            Some("ngrok.exe")
        );
        assert_eq!(cache.reads(), reads);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
