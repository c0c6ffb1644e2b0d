//! ELF files (Linux, and every Unix Go targets) to an [`Image`]: the loadable segments map
//! addresses to the file, and the build information is looked for where Go's own reader
//! (`debug/buildinfo`, `elfExe.DataStart`) looks: the section named `.go.buildinfo` when the
//! section headers are there, else the first writable, non-executable loadable segment. The
//! section headers are optional (a program runs without them, so they may be zeroed or the
//! section renamed); the program headers are what the kernel itself loads.
//!
//! Layouts from the System V gABI ("ELF Header", "Program Header", "Sections"), as the
//! `object` crate declares them; extended numbering (more than 65,535 program or section
//! headers: `e_phnum == PN_XNUM`, `e_shnum == 0`, `e_shstrndx == SHN_XINDEX`, the real values
//! in section header 0) is honoured, and every count is capped here whatever it claims.

use std::mem::size_of;

use object::{
    Endianness,
    elf::{self, FileHeader32, FileHeader64},
    pod,
    read::elf::{FileHeader, ProgramHeader as _, SectionHeader as _},
};

use crate::{
    Error,
    bounded::{Bounded, ReadAt},
    image::{Image, Mapping},
};

/// Program headers looked at (a Go binary has under 15).
pub const MAX_SEGMENTS: usize = 64;
/// Section headers looked at (a Go binary has about 25 to 45; the named section is always
/// among the first hundred).
pub const MAX_SECTIONS: usize = 256;
/// Bytes of section names read.
pub const MAX_SECTION_NAMES: u64 = 16 << 10;
/// The section Go's linker writes the build information to, NUL-terminated.
pub const BUILDINFO_SECTION: &[u8] = b".go.buildinfo\0";

/// The ELF image of `f`, which starts with `\x7fELF`.
pub fn image<R: ReadAt + ?Sized>(f: &mut Bounded<'_, R>) -> Result<Image, Error> {
    let ident = f.read_exact(0, 16, "ELF identification")?;
    // e_ident[EI_CLASS]
    match ident[4] {
        elf::ELFCLASS32 => parse::<FileHeader32<Endianness>, R>(f),
        elf::ELFCLASS64 => parse::<FileHeader64<Endianness>, R>(f),
        _ => Err(Error::Malformed("ELF class")),
    }
}

fn parse<Elf, R>(f: &mut Bounded<'_, R>) -> Result<Image, Error>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadAt + ?Sized,
{
    let bytes = f.read_exact(0, size_of::<Elf>() as u64, "ELF header")?;
    let hdr = Elf::parse(&bytes[..]).map_err(|_| Error::Malformed("ELF header"))?;
    let e = hdr
        .endian()
        .map_err(|_| Error::Malformed("ELF byte order"))?;
    let sections = SectionTable::<Elf>::new(hdr, e, f)?;

    let phnum = match hdr.e_phnum(e) {
        elf::PN_XNUM => sections.section0.as_ref().map_or(0, |s| s.sh_info(e)),
        n => u32::from(n),
    };
    if usize::from(hdr.e_phentsize(e)) != size_of::<Elf::ProgramHeader>() {
        return Err(Error::Malformed("ELF program header size"));
    }
    let count = (phnum as usize).min(MAX_SEGMENTS);
    let table = f.read(
        hdr.e_phoff(e).into(),
        (count * size_of::<Elf::ProgramHeader>()) as u64,
    )?;
    let (phdrs, _) = pod::slice_from_bytes::<Elf::ProgramHeader>(
        &table,
        table.len() / size_of::<Elf::ProgramHeader>(),
    )
    .map_err(|_| Error::Malformed("ELF program headers"))?;

    let mut image = Image::default();
    let mut writable = Vec::new();
    for ph in phdrs {
        if ph.p_type(e) != elf::PT_LOAD || ph.p_filesz(e).into() == 0 {
            continue;
        }
        let m = Mapping {
            vaddr: ph.p_vaddr(e).into(),
            offset: ph.p_offset(e).into(),
            size: ph.p_filesz(e).into(),
        };
        image.mappings.push(m);
        if ph.p_flags(e) & (elf::PF_X | elf::PF_W) == elf::PF_W {
            writable.push(m);
        }
    }
    // A section table that does not read as one is no reason to give up: the segments are
    // what the kernel loads.
    match sections.find(BUILDINFO_SECTION, f) {
        Ok(Some(m)) => image.candidates.push(m),
        Ok(None) | Err(Error::Malformed(_)) => {}
        Err(other) => return Err(other),
    }
    image.candidates.extend(writable);
    Ok(image)
}

/// The section header table, as far as it is looked at.
struct SectionTable<Elf: FileHeader> {
    endian: Endianness,
    offset: u64,
    /// Headers claimed (extended numbering resolved), before the cap.
    count: u64,
    names_index: u32,
    section0: Option<Elf::SectionHeader>,
}

impl<Elf: FileHeader<Endian = Endianness>> SectionTable<Elf> {
    fn new<R: ReadAt + ?Sized>(
        hdr: &Elf,
        e: Endianness,
        f: &mut Bounded<'_, R>,
    ) -> Result<Self, Error> {
        let offset: u64 = hdr.e_shoff(e).into();
        let mut table = SectionTable {
            endian: e,
            offset,
            count: u64::from(hdr.e_shnum(e)),
            names_index: u32::from(hdr.e_shstrndx(e)),
            section0: None,
        };
        if offset == 0 || usize::from(hdr.e_shentsize(e)) != size_of::<Elf::SectionHeader>() {
            table.count = 0;
            return Ok(table);
        }
        table.section0 = table.header(0, f)?;
        if let Some(s0) = &table.section0 {
            if table.count == 0 {
                table.count = s0.sh_size(e).into();
            }
            if table.names_index == u32::from(elf::SHN_XINDEX) {
                table.names_index = s0.sh_link(e);
            }
        }
        Ok(table)
    }

    /// Section header `index`, if the file has it.
    fn header<R: ReadAt + ?Sized>(
        &self,
        index: u64,
        f: &mut Bounded<'_, R>,
    ) -> Result<Option<Elf::SectionHeader>, Error> {
        let size = size_of::<Elf::SectionHeader>() as u64;
        let Some(at) = index
            .checked_mul(size)
            .and_then(|o| o.checked_add(self.offset))
        else {
            return Ok(None);
        };
        let bytes = f.read(at, size)?;
        Ok(pod::from_bytes::<Elf::SectionHeader>(&bytes)
            .ok()
            .map(|(h, _)| *h))
    }

    /// The section named `name` (NUL-terminated) among the first [`MAX_SECTIONS`], as a
    /// range of the file at its address; `None` when absent or empty.
    fn find<R: ReadAt + ?Sized>(
        &self,
        name: &[u8],
        f: &mut Bounded<'_, R>,
    ) -> Result<Option<Mapping>, Error> {
        let e = self.endian;
        let count = self.count.min(MAX_SECTIONS as u64) as usize;
        if count == 0 {
            return Ok(None);
        }
        let Some(strtab) = self.header(u64::from(self.names_index), f)? else {
            return Ok(None);
        };
        if strtab.sh_type(e) == elf::SHT_NOBITS {
            return Err(Error::Malformed("ELF section names"));
        }
        let names = f.read(
            strtab.sh_offset(e).into(),
            strtab.sh_size(e).into().min(MAX_SECTION_NAMES),
        )?;
        let size = size_of::<Elf::SectionHeader>();
        let table = f.read(self.offset, (count * size) as u64)?;
        let (headers, _) = pod::slice_from_bytes::<Elf::SectionHeader>(&table, table.len() / size)
            .map_err(|_| Error::Malformed("ELF section headers"))?;
        let found = headers.iter().find(|h| {
            let at = h.sh_name(e) as usize;
            names.get(at..at.saturating_add(name.len())) == Some(name)
        });
        Ok(found
            .filter(|h| h.sh_type(e) != elf::SHT_NOBITS && h.sh_size(e).into() != 0)
            .map(|h| Mapping {
                vaddr: h.sh_addr(e).into(),
                offset: h.sh_offset(e).into(),
                size: h.sh_size(e).into(),
            }))
    }
}
