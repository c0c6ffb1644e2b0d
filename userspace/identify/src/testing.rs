//! Executables built byte by byte from the formats' documented structures, for the tests, the
//! fuzz seeds and the end-to-end tests (not used by the sensors): ELF (32/64-bit, either byte
//! order) and PE (PE32/PE32+) files carrying Go build information in either layout, with the
//! section headers present, renamed or stripped, and hostile variants (a section-header table
//! claiming millions of entries in a sparse file).
//!
//! A built x86-64 ELF runs: its entry point is the code given (the end-to-end tests pass an
//! `exit(0)`), so a test can execute a "Go binary" without a Go toolchain.

use std::{cell::Cell, io};

use crate::{
    ReadAt,
    buildinfo::{FLAG_BIG_ENDIAN, FLAG_INLINE, HEADER, MAGIC},
};

/// A file of `len` bytes whose first bytes are `data` and the rest a hole (zeros), as a sparse
/// file reads; it counts the bytes read.
pub struct SparseFile<'a> {
    data: &'a [u8],
    len: u64,
    read: Cell<u64>,
}

impl<'a> SparseFile<'a> {
    /// `len` is raised to `data`'s length when shorter.
    pub fn new(data: &'a [u8], len: u64) -> Self {
        SparseFile {
            data,
            len: len.max(data.len() as u64),
            read: Cell::new(0),
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read.get()
    }
}

impl ReadAt for SparseFile<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(offset)) as usize;
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let from_data = n.min(self.data.len() - start);
        buf[..from_data].copy_from_slice(&self.data[start..start + from_data]);
        buf[from_data..n].fill(0);
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.len)
    }
}

/// The sentinels Go's `cmd/go` frames the module information with (`modload.infoStart`,
/// `infoEnd`).
pub const INFO_START: &[u8; 16] = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6";
pub const INFO_END: &[u8; 16] = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2";

/// x86-64 code for `exit(0)`: `mov eax, 60; xor edi, edi; syscall`.
pub const X86_64_EXIT0: &[u8] = &[0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05];

/// The module information text Go writes for a main package `path` in module `module`,
/// framed by its sentinels.
pub fn modinfo(path: &str, module: &str) -> Vec<u8> {
    let mut m = INFO_START.to_vec();
    m.extend_from_slice(
        format!("path\t{path}\nmod\t{module}\t(devel)\t\nbuild\t-compiler=gc\n").as_bytes(),
    );
    m.extend_from_slice(INFO_END);
    m
}

fn push_uvarint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// The Go 1.18+ blob: header, then the version and the module information inline.
pub fn inline_blob(go_version: &str, modinfo: &[u8]) -> Vec<u8> {
    let mut s = MAGIC.to_vec();
    s.push(8);
    s.push(FLAG_INLINE);
    s.resize(HEADER, 0);
    for part in [go_version.as_bytes(), modinfo] {
        push_uvarint(&mut s, part.len() as u64);
        s.extend_from_slice(part);
    }
    s
}

/// Which blob layout to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Go 1.13 to 1.17: pointers to Go string headers.
    Pointers,
    /// Go 1.18 and later: strings inline.
    Inline,
}

/// What a built file says and how it is laid out.
#[derive(Clone, Debug)]
pub struct GoFile {
    pub layout: Layout,
    /// 64-bit (ELF64, PE32+) or 32-bit.
    pub wide: bool,
    /// Big-endian (ELF only; PE is little-endian).
    pub big_endian: bool,
    pub go_version: String,
    pub modinfo: Vec<u8>,
    /// ELF: the name of the section holding the blob, or `None` for no section headers at
    /// all (`e_shoff`, `e_shnum`, `e_shstrndx` zero, as a stripper leaves them).
    pub section: Option<String>,
    /// Bytes of other data before the blob in the writable segment or section.
    pub data_before: usize,
    /// Code at the entry point.
    pub code: Vec<u8>,
}

impl GoFile {
    /// A 64-bit little-endian file built from `path` with `go_version`, the blob in a
    /// `.go.buildinfo` section at the start of the data, in the layout that version wrote.
    pub fn new(go_version: &str, path: &str) -> GoFile {
        let minor: u32 = go_version
            .strip_prefix("go1.")
            .and_then(|v| v.split('.').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(99);
        GoFile {
            layout: if minor >= 18 {
                Layout::Inline
            } else {
                Layout::Pointers
            },
            wide: true,
            big_endian: false,
            go_version: go_version.to_owned(),
            modinfo: modinfo(path, path.split("/cmd/").next().unwrap_or(path)),
            section: Some(".go.buildinfo".to_owned()),
            data_before: 0,
            code: X86_64_EXIT0.to_vec(),
        }
    }

    fn ptr_size(&self) -> usize {
        if self.wide { 8 } else { 4 }
    }

    /// The writable data: `data_before` bytes, the blob, and (pointer layout) the two Go
    /// string headers; the string bytes go to read-only data at `rodata_addr`.
    /// Returns (data, rodata).
    fn data(&self, data_addr: u64, rodata_addr: u64) -> (Vec<u8>, Vec<u8>) {
        let mut data = vec![0x5a; self.data_before];
        match self.layout {
            Layout::Inline => {
                let mut blob = inline_blob(&self.go_version, &self.modinfo);
                blob[MAGIC.len()] = self.ptr_size() as u8;
                data.extend(blob);
                (data, Vec::new())
            }
            Layout::Pointers => {
                let w = self.ptr_size();
                let blob_addr = data_addr + data.len() as u64;
                let headers_addr = blob_addr + HEADER as u64;
                let version_at = rodata_addr;
                let modinfo_at = rodata_addr + self.go_version.len() as u64;
                data.extend_from_slice(MAGIC);
                data.push(w as u8);
                data.push(if self.big_endian { FLAG_BIG_ENDIAN } else { 0 });
                self.put(&mut data, headers_addr);
                self.put(&mut data, headers_addr + 2 * w as u64);
                data.resize(data.len() + HEADER - (16 + 2 * w), 0);
                self.put(&mut data, version_at);
                self.put(&mut data, self.go_version.len() as u64);
                self.put(&mut data, modinfo_at);
                self.put(&mut data, self.modinfo.len() as u64);
                let mut rodata = self.go_version.as_bytes().to_vec();
                rodata.extend_from_slice(&self.modinfo);
                (data, rodata)
            }
        }
    }

    /// Appends a pointer-sized value.
    fn put(&self, out: &mut Vec<u8>, v: u64) {
        self.put_n(out, v, self.ptr_size());
    }

    fn put_n(&self, out: &mut Vec<u8>, v: u64, n: usize) {
        if self.big_endian {
            out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
        } else {
            out.extend_from_slice(&v.to_le_bytes()[..n]);
        }
    }

    /// An ELF executable (`ET_EXEC`): two loadable segments (headers, code and read-only
    /// data, R+X; the data, R+W, mapped one page further so that the file stays small: file
    /// offsets and addresses agree modulo the page size, as the kernel requires), and, with
    /// [`GoFile::section`], section headers naming `.text`, the blob's section and
    /// `.shstrtab`.
    pub fn elf(&self) -> Vec<u8> {
        const PAGE: u64 = 0x1000;
        let align16 = |n: u64| n.div_ceil(16) * 16;
        let base: u64 = if self.wide { 0x40_0000 } else { 0x804_8000 };
        let (ehsize, phentsize, shentsize) = if self.wide {
            (64, 56, 64)
        } else {
            (52, 32, 40)
        };
        let text_off = align16(ehsize + 2 * phentsize);
        let rodata_off = text_off + self.code.len() as u64;
        // The read-only strings' address does not depend on the data, so lay the data out
        // first with it.
        let (_, rodata) = self.data(0, 0);
        let text_end = rodata_off + rodata.len() as u64;
        let data_off = align16(text_end);
        let data_vaddr = base + PAGE + data_off;
        let (data, rodata) = self.data(data_vaddr, base + rodata_off);
        let data_end = data_off + data.len() as u64;
        let blob_off = data_off + self.data_before as u64;

        let mut names = vec![0u8];
        let mut name_at = |n: &str| {
            let at = names.len() as u32;
            names.extend_from_slice(n.as_bytes());
            names.push(0);
            at
        };
        let sections = self
            .section
            .as_deref()
            .map(|blob_name| [name_at(".text"), name_at(blob_name), name_at(".shstrtab")]);
        let names_off = data_end;
        let shoff = (names_off + names.len() as u64).div_ceil(8) * 8;

        let mut f = Vec::new();
        // e_ident
        f.extend_from_slice(b"\x7fELF");
        f.push(if self.wide { 2 } else { 1 });
        f.push(if self.big_endian { 2 } else { 1 });
        f.push(1); // EI_VERSION
        f.resize(16, 0);
        let machine: u16 = match (self.wide, self.big_endian) {
            (true, false) => 62, // EM_X86_64
            (false, false) => 3, // EM_386
            (true, true) => 21,  // EM_PPC64
            (false, true) => 8,  // EM_MIPS
        };
        self.put_n(&mut f, 2, 2); // e_type ET_EXEC
        self.put_n(&mut f, u64::from(machine), 2);
        self.put_n(&mut f, 1, 4); // e_version
        self.put(&mut f, base + text_off); // e_entry
        self.put(&mut f, ehsize); // e_phoff
        self.put(&mut f, if sections.is_some() { shoff } else { 0 });
        self.put_n(&mut f, 0, 4); // e_flags
        self.put_n(&mut f, ehsize, 2);
        self.put_n(&mut f, phentsize, 2);
        self.put_n(&mut f, 2, 2); // e_phnum
        self.put_n(&mut f, shentsize, 2);
        let (shnum, shstrndx) = if sections.is_some() { (4, 3) } else { (0, 0) };
        self.put_n(&mut f, shnum, 2);
        self.put_n(&mut f, shstrndx, 2);
        assert_eq!(f.len() as u64, ehsize);

        let phdr = |f: &mut Vec<u8>, flags: u64, off: u64, vaddr: u64, size: u64| {
            if self.wide {
                self.put_n(f, 1, 4); // PT_LOAD
                self.put_n(f, flags, 4);
                self.put(f, off);
                self.put(f, vaddr);
                self.put(f, vaddr);
                self.put(f, size); // p_filesz
                self.put(f, size); // p_memsz
                self.put(f, PAGE);
            } else {
                self.put_n(f, 1, 4);
                self.put(f, off);
                self.put(f, vaddr);
                self.put(f, vaddr);
                self.put(f, size);
                self.put(f, size);
                self.put_n(f, flags, 4);
                self.put(f, PAGE);
            }
        };
        phdr(&mut f, 0x5, 0, base, text_end); // R+X
        phdr(&mut f, 0x6, data_off, data_vaddr, data.len() as u64); // R+W

        f.resize(text_off as usize, 0);
        f.extend_from_slice(&self.code);
        f.extend_from_slice(&rodata);
        f.resize(data_off as usize, 0);
        f.extend_from_slice(&data);
        f.extend_from_slice(&names);

        if let Some([text_name, blob_name, names_name]) = sections {
            f.resize(shoff as usize, 0);
            let shdr = |f: &mut Vec<u8>,
                        name: u32,
                        typ: u64,
                        flags: u64,
                        addr: u64,
                        off: u64,
                        size: u64| {
                self.put_n(f, u64::from(name), 4);
                self.put_n(f, typ, 4);
                self.put(f, flags);
                self.put(f, addr);
                self.put(f, off);
                self.put(f, size);
                self.put_n(f, 0, 4); // sh_link
                self.put_n(f, 0, 4); // sh_info
                self.put(f, 1); // sh_addralign
                self.put(f, 0); // sh_entsize
            };
            shdr(&mut f, 0, 0, 0, 0, 0, 0);
            shdr(
                &mut f,
                text_name,
                1,
                0x6,
                base + text_off,
                text_off,
                self.code.len() as u64,
            );
            let blob_len = data.len() as u64 - self.data_before as u64;
            shdr(
                &mut f,
                blob_name,
                1,
                0x3,
                data_vaddr + self.data_before as u64,
                blob_off,
                blob_len,
            );
            shdr(&mut f, names_name, 3, 0, 0, names_off, names.len() as u64);
        }
        f
    }

    /// A PE image: `.text`, `.rdata` (the strings of the pointer layout) and `.data` (with
    /// Go's characteristics: initialized data, read, write, 32-byte alignment), file
    /// alignment 0x200, section alignment 0x1000.
    pub fn pe(&self) -> Vec<u8> {
        assert!(!self.big_endian, "PE files are little-endian");
        let image_base: u64 = if self.wide { 0x1_4000_0000 } else { 0x40_0000 };
        let (rva_text, rva_rdata, rva_data) = (0x1000u64, 0x2000u64, 0x3000u64);
        let (data, rodata) = self.data(image_base + rva_data, image_base + rva_rdata);
        let align = |n: usize| n.div_ceil(0x200) * 0x200;
        let optional_size: u16 = if self.wide { 240 } else { 224 };
        let headers_end = 0x80 + 4 + 20 + usize::from(optional_size) + 3 * 40;
        let text_off = align(headers_end);
        let rdata_off = text_off + align(self.code.len().max(1));
        let data_off = rdata_off + align(rodata.len().max(1));

        let mut f = vec![0u8; 0x80];
        f[..2].copy_from_slice(b"MZ");
        f[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes()); // e_lfanew
        f.extend_from_slice(b"PE\0\0");
        let machine: u16 = if self.wide { 0x8664 } else { 0x14c };
        f.extend_from_slice(&machine.to_le_bytes());
        f.extend_from_slice(&3u16.to_le_bytes()); // NumberOfSections
        f.extend_from_slice(&[0; 12]); // time stamp, symbol table, symbol count
        f.extend_from_slice(&optional_size.to_le_bytes());
        f.extend_from_slice(&0x0102u16.to_le_bytes()); // executable, 32-bit machine
        let optional_at = f.len();
        f.extend_from_slice(&(if self.wide { 0x20bu16 } else { 0x10b }).to_le_bytes());
        f.resize(optional_at + 16, 0);
        f.extend_from_slice(&(rva_text as u32).to_le_bytes()); // AddressOfEntryPoint
        f.extend_from_slice(&(rva_text as u32).to_le_bytes()); // BaseOfCode
        if self.wide {
            f.extend_from_slice(&image_base.to_le_bytes());
        } else {
            f.extend_from_slice(&(rva_data as u32).to_le_bytes()); // BaseOfData
            f.extend_from_slice(&(image_base as u32).to_le_bytes());
        }
        f.extend_from_slice(&0x1000u32.to_le_bytes()); // SectionAlignment
        f.extend_from_slice(&0x200u32.to_le_bytes()); // FileAlignment
        f.resize(optional_at + usize::from(optional_size), 0);
        let ddirs_count_at = optional_at + usize::from(optional_size) - 16 * 8 - 4;
        f[ddirs_count_at..ddirs_count_at + 4].copy_from_slice(&16u32.to_le_bytes());

        let section =
            |f: &mut Vec<u8>, name: &[u8], rva: u64, off: usize, len: usize, flags: u32| {
                let mut n = [0u8; 8];
                n[..name.len()].copy_from_slice(name);
                f.extend_from_slice(&n);
                f.extend_from_slice(&(len as u32).to_le_bytes()); // VirtualSize
                f.extend_from_slice(&(rva as u32).to_le_bytes());
                f.extend_from_slice(&(align(len.max(1)) as u32).to_le_bytes()); // SizeOfRawData
                f.extend_from_slice(&(off as u32).to_le_bytes());
                f.extend_from_slice(&[0; 12]);
                f.extend_from_slice(&flags.to_le_bytes());
            };
        section(
            &mut f,
            b".text",
            rva_text,
            text_off,
            self.code.len(),
            0x6000_0020,
        );
        section(
            &mut f,
            b".rdata",
            rva_rdata,
            rdata_off,
            rodata.len(),
            0x4000_0040,
        );
        section(
            &mut f,
            b".data",
            rva_data,
            data_off,
            data.len(),
            0xc060_0040,
        );
        f.resize(text_off, 0);
        f.extend_from_slice(&self.code);
        f.resize(rdata_off, 0);
        f.extend_from_slice(&rodata);
        f.resize(data_off, 0);
        f.extend_from_slice(&data);
        f.resize(data_off + align(data.len().max(1)), 0);
        f
    }
}

/// Where an ELF file's header fields are, by class: (e_shoff, width), e_shentsize, e_shnum,
/// e_shstrndx.
fn elf_shdr_fields(elf: &[u8]) -> (usize, usize, usize, usize, usize) {
    if elf[4] == 2 {
        (40, 8, 58, 60, 62)
    } else {
        (32, 4, 46, 48, 50)
    }
}

fn put_at(elf: &mut [u8], at: usize, width: usize, v: u64) {
    if elf[5] == 2 {
        elf[at..at + width].copy_from_slice(&v.to_be_bytes()[8 - width..]);
    } else {
        elf[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
    }
}

/// Zeroes an ELF file's `e_shoff`, `e_shnum` and `e_shstrndx`, as `sstrip`-like tools do (the
/// program still runs: the kernel reads only the program headers).
pub fn strip_section_headers(elf: &mut [u8]) {
    let (shoff, w, _, shnum, shstrndx) = elf_shdr_fields(elf);
    put_at(elf, shoff, w, 0);
    put_at(elf, shnum, 2, 0);
    put_at(elf, shstrndx, 2, 0);
}

/// Makes `elf` claim `count` section headers through extended numbering (`e_shnum` 0, the
/// count in section header 0's `sh_size`), the table starting at the page after the file's
/// end. Returns the length the file must have for the table to fit (write the returned bytes,
/// then extend the file to that length: a sparse file).
pub fn claim_section_headers(elf: &[u8], count: u64) -> (Vec<u8>, u64) {
    let mut f = elf.to_vec();
    let (shoff, w, shentsize_at, shnum, shstrndx) = elf_shdr_fields(&f);
    let entry: u64 = if w == 8 { 64 } else { 40 };
    let table = (f.len() as u64).div_ceil(0x1000) * 0x1000;
    put_at(&mut f, shoff, w, table);
    put_at(&mut f, shentsize_at, 2, entry);
    put_at(&mut f, shnum, 2, 0);
    put_at(&mut f, shstrndx, 2, 0xffff); // SHN_XINDEX: the index is in sh_link
    f.resize(table as usize + entry as usize, 0);
    let s0 = table as usize;
    // sh_size of entry 0 (offset 32 in ELF64, 20 in ELF32), sh_link (40 / 24) = count - 1.
    let (size_at, link_at) = if w == 8 { (32, 40) } else { (20, 24) };
    put_at(&mut f, s0 + size_at, w, count);
    put_at(
        &mut f,
        s0 + link_at,
        4,
        count.saturating_sub(1).min(u64::from(u32::MAX)),
    );
    (f, table.saturating_add(count.saturating_mul(entry)))
}

/// Builds, with the Go toolchain on `PATH` (`cargo xtask setup` installs Debian's), a program
/// whose main package is `module` + `/` + `package` and which does nothing, for `goos` and
/// `goarch`, with `flags` added to `go build`; returns the binary's path. Everything (source,
/// module and build caches) stays under `dir`; nothing is downloaded (`GOPROXY=off`).
pub fn go_build(
    dir: &std::path::Path,
    module: &str,
    package: &str,
    goos: &str,
    goarch: &str,
    flags: &[&str],
) -> std::path::PathBuf {
    use std::{fs, process::Command};
    let src = dir.join("src");
    fs::create_dir_all(src.join(package)).expect("Go source directory");
    fs::write(src.join("go.mod"), format!("module {module}\n\ngo 1.13\n")).expect("go.mod");
    fs::write(
        src.join(package).join("main.go"),
        "package main\n\nfunc main() {}\n",
    )
    .expect("main.go");
    let name = format!(
        "{}-{goos}-{goarch}-{}",
        package.replace('/', "_"),
        flags.join("").replace(['/', ' ', '='], "_")
    );
    let out = dir.join(name);
    let status = Command::new("go")
        .current_dir(&src)
        .args(["build", "-trimpath", "-buildvcs=false", "-o"])
        .arg(&out)
        .args(flags)
        .arg(format!("./{package}"))
        .env("GOOS", goos)
        .env("GOARCH", goarch)
        .env("CGO_ENABLED", "0")
        .env("GO111MODULE", "on")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("gopath"))
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run `go` ({e}): the Go toolchain is needed (`cargo xtask setup` installs golang-go)")
        });
    assert!(
        status.success(),
        "go build for {goos}/{goarch} {flags:?} failed: {status}"
    );
    out
}
