//! PE files (Windows) to an [`Image`]: the section table maps addresses (the image base plus a
//! section's `VirtualAddress`) to the file, and the build information is looked for where Go's
//! own reader (`debug/buildinfo`, `peExe.DataStart`) looks: the first section whose
//! characteristics, alignment bits aside, are exactly initialized data, readable and writable
//! (Go's `.data`), then any other writable, non-executable section with initialized data. Go
//! writes no version resource, so for a Go-built tool this is all a PE file says of itself.
//!
//! Layouts from Microsoft's "PE Format" specification (MS-DOS stub's `e_lfanew`, the `PE\0\0`
//! signature, COFF file header, optional header `ImageBase`, section table), as the `object`
//! crate declares them. The section count is capped at 96, the most the Windows loader takes.

use std::mem::size_of;

use object::{
    LittleEndian as LE,
    pe::{
        self, ImageDosHeader, ImageFileHeader, ImageOptionalHeader32, ImageOptionalHeader64,
        ImageSectionHeader,
    },
    pod::{self, Pod},
};

use crate::{
    Error,
    bounded::{Bounded, ReadAt},
    image::{Image, Mapping},
};

/// Sections looked at.
pub const MAX_SECTIONS: usize = 96;

/// The characteristics Go's reader requires of the data section (`IMAGE_SCN_ALIGN_32BYTES`
/// bits cleared first).
const GO_DATA: u32 =
    pe::IMAGE_SCN_CNT_INITIALIZED_DATA | pe::IMAGE_SCN_MEM_READ | pe::IMAGE_SCN_MEM_WRITE;

/// The PE image of `f`, which starts with `MZ`.
pub fn image<R: ReadAt + ?Sized>(f: &mut Bounded<'_, R>) -> Result<Image, Error> {
    let dos: ImageDosHeader = read_pod(f, 0, "MS-DOS header")?;
    if dos.e_magic.get(LE) != pe::IMAGE_DOS_SIGNATURE {
        return Err(Error::Malformed("MS-DOS signature"));
    }
    let nt = u64::from(dos.e_lfanew.get(LE));
    let head = f.read_exact(
        nt,
        4 + size_of::<ImageFileHeader>() as u64 + 2,
        "PE headers",
    )?;
    if head[..4] != *b"PE\0\0" {
        return Err(Error::Malformed("PE signature"));
    }
    let (file, rest) = pod::from_bytes::<ImageFileHeader>(&head[4..])
        .map_err(|_| Error::Malformed("COFF file header"))?;
    let optional = nt + 4 + size_of::<ImageFileHeader>() as u64;
    let image_base = match u16::from_le_bytes([rest[0], rest[1]]) {
        pe::IMAGE_NT_OPTIONAL_HDR32_MAGIC => {
            let h: ImageOptionalHeader32 = read_pod(f, optional, "optional header")?;
            u64::from(h.image_base.get(LE))
        }
        pe::IMAGE_NT_OPTIONAL_HDR64_MAGIC => {
            let h: ImageOptionalHeader64 = read_pod(f, optional, "optional header")?;
            h.image_base.get(LE)
        }
        _ => return Err(Error::Malformed("optional header magic")),
    };

    let count = usize::from(file.number_of_sections.get(LE)).min(MAX_SECTIONS);
    let table_at = optional + u64::from(file.size_of_optional_header.get(LE));
    let size = size_of::<ImageSectionHeader>();
    let table = f.read(table_at, (count * size) as u64)?;
    let (sections, _) = pod::slice_from_bytes::<ImageSectionHeader>(&table, table.len() / size)
        .map_err(|_| Error::Malformed("section table"))?;

    let mut image = Image::default();
    let mut go_data = None;
    let mut other_data = Vec::new();
    for s in sections {
        let va = s.virtual_address.get(LE);
        let raw = s.size_of_raw_data.get(LE);
        if raw == 0 {
            continue;
        }
        let m = Mapping {
            vaddr: image_base.wrapping_add(u64::from(va)),
            offset: u64::from(s.pointer_to_raw_data.get(LE)),
            size: u64::from(raw),
        };
        image.mappings.push(m);
        let flags = s.characteristics.get(LE);
        if va != 0 && go_data.is_none() && flags & !pe::IMAGE_SCN_ALIGN_32BYTES == GO_DATA {
            go_data = Some(m);
        } else if flags & pe::IMAGE_SCN_CNT_INITIALIZED_DATA != 0
            && flags & pe::IMAGE_SCN_MEM_WRITE != 0
            && flags & pe::IMAGE_SCN_MEM_EXECUTE == 0
        {
            other_data.push(m);
        }
    }
    image.candidates.extend(go_data);
    image.candidates.extend(other_data);
    Ok(image)
}

/// A `T` read at `at`.
fn read_pod<T: Pod, R: ReadAt + ?Sized>(
    f: &mut Bounded<'_, R>,
    at: u64,
    what: &'static str,
) -> Result<T, Error> {
    let bytes = f.read_exact(at, size_of::<T>() as u64, what)?;
    let (value, _) = pod::from_bytes::<T>(&bytes).map_err(|_| Error::Malformed(what))?;
    Ok(*value)
}
