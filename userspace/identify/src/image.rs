//! What the build-information reader needs to know of an executable, whatever its format: how
//! its virtual addresses map to file offsets (ELF loadable segments, PE sections), and where
//! the build information may lie, best guess first. `elf.rs` and `pe.rs` fill it in.

/// A range of the file loaded at a virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub vaddr: u64,
    pub offset: u64,
    /// Bytes of the file in the range (ELF `p_filesz`, PE `SizeOfRawData`).
    pub size: u64,
}

impl Mapping {
    /// The file offset of `addr` and how many file bytes follow it in this range.
    pub fn locate(&self, addr: u64) -> Option<(u64, u64)> {
        let into = addr.checked_sub(self.vaddr)?;
        if into >= self.size {
            return None;
        }
        Some((self.offset.checked_add(into)?, self.size - into))
    }
}

/// An executable as the reader sees it.
#[derive(Debug, Default)]
pub struct Image {
    /// Address to file offset (a handful; the formats' readers cap how many are kept).
    pub mappings: Vec<Mapping>,
    /// Where to look for the build information, in order: a section named for it, then the
    /// writable data.
    pub candidates: Vec<Mapping>,
}

impl Image {
    /// The file offset of `addr` and how many file bytes follow it in its range.
    pub fn locate(&self, addr: u64) -> Option<(u64, u64)> {
        self.mappings.iter().find_map(|m| m.locate(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_within_their_range_only() {
        let m = Mapping {
            vaddr: 0x1000,
            offset: 0x200,
            size: 0x10,
        };
        assert_eq!(m.locate(0x1000), Some((0x200, 0x10)));
        assert_eq!(m.locate(0x100f), Some((0x20f, 1)));
        assert_eq!(m.locate(0x1010), None);
        assert_eq!(m.locate(0xfff), None);
        let edge = Mapping {
            vaddr: u64::MAX - 1,
            offset: u64::MAX,
            size: 2,
        };
        assert_eq!(edge.locate(u64::MAX), None, "offset overflow is no mapping");
        let image = Image {
            mappings: vec![edge, m],
            candidates: vec![],
        };
        assert_eq!(image.locate(0x1001), Some((0x201, 0xf)));
    }
}
