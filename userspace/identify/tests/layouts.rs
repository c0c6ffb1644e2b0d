//! The reader against executables built byte by byte (`tunnelwatch_identify::testing`): every
//! layout Go has written (pointers, 32/64-bit, little/big endian; inline), in ELF and PE, with
//! the section headers present, renamed and stripped, and hostile files: sparse section tables
//! claiming 2^25 and 2^31 entries, truncations, decoys, addresses to nowhere.

use std::time::Duration;

use tunnelwatch_identify::{
    Error, Limits, buildinfo, identify, read_build_info,
    testing::{GoFile, Layout, SparseFile, claim_section_headers, modinfo, strip_section_headers},
};

const NGROK: &str = "go.ngrok.com/cmd/ngrok";

fn variants() -> Vec<GoFile> {
    let mut all = Vec::new();
    for (version, layout) in [
        ("go1.16.15", Layout::Pointers),
        ("go1.22.4", Layout::Inline),
    ] {
        for wide in [true, false] {
            for big_endian in [false, true] {
                let mut f = GoFile::new(version, NGROK);
                assert_eq!(f.layout, layout);
                f.wide = wide;
                f.big_endian = big_endian;
                all.push(f);
            }
        }
    }
    all
}

fn describe(f: &GoFile) -> String {
    format!(
        "{:?} {}-bit {} section {:?} data_before {}",
        f.layout,
        if f.wide { 64 } else { 32 },
        if f.big_endian { "BE" } else { "LE" },
        f.section,
        f.data_before
    )
}

fn assert_ngrok(bytes: &[u8], f: &GoFile) {
    let info =
        read_build_info(bytes, Limits::DEFAULT).unwrap_or_else(|e| panic!("{}: {e}", describe(f)));
    assert_eq!(info.go_version, f.go_version, "{}", describe(f));
    assert_eq!(info.path, NGROK, "{}", describe(f));
    assert_eq!(info.module, "go.ngrok.com", "{}", describe(f));
    assert_eq!(identify(bytes, Limits::DEFAULT).unwrap(), Some("ngrok"));
}

#[test]
fn every_elf_layout_with_its_section() {
    for f in variants() {
        assert_ngrok(&f.elf(), &f);
    }
}

#[test]
fn every_elf_layout_with_the_section_renamed() {
    for mut f in variants() {
        f.section = Some(".data.rel.ro".into());
        assert_ngrok(&f.elf(), &f);
    }
}

#[test]
fn every_elf_layout_with_the_section_headers_zeroed() {
    for mut f in variants() {
        f.section = None;
        assert_ngrok(&f.elf(), &f);
        // The same file with headers, then stripped as a stripper does.
        let mut g = f.clone();
        g.section = Some(".go.buildinfo".into());
        let mut bytes = g.elf();
        strip_section_headers(&mut bytes);
        assert_ngrok(&bytes, &g);
    }
}

#[test]
fn every_pe_layout() {
    for f in variants().into_iter().filter(|f| !f.big_endian) {
        assert_ngrok(&f.pe(), &f);
    }
}

#[test]
fn build_info_beyond_go_own_64_kib_window_is_found() {
    // An externally linked (cgo) binary has other data first; Go's reader looks at 64 KiB.
    for wide in [true, false] {
        let mut f = GoFile::new("go1.17.6", NGROK);
        f.wide = wide;
        f.section = None;
        f.data_before = 300 << 10;
        assert_ngrok(&f.elf(), &f);
        f.layout = Layout::Inline;
        assert_ngrok(&f.elf(), &f);
        assert_ngrok(&f.pe(), &f);
    }
}

#[test]
fn beyond_the_scan_limit_only_the_named_section_finds_it() {
    let mut f = GoFile::new("go1.22.4", NGROK);
    f.data_before = 1100 << 10;
    assert_ngrok(&f.elf(), &f);
    f.section = None;
    assert!(matches!(
        read_build_info(&f.elf()[..], Limits::DEFAULT),
        Err(Error::NotGo)
    ));
}

#[test]
fn other_go_programs_and_other_files_are_not_tools() {
    let f = GoFile::new("go1.21.0", "github.com/example/tool/cmd/tool");
    let info = read_build_info(&f.elf()[..], Limits::DEFAULT).unwrap();
    assert_eq!(info.path, "github.com/example/tool/cmd/tool");
    assert_eq!(identify(&f.elf()[..], Limits::DEFAULT).unwrap(), None);
    for other in [
        &b""[..],
        b"\x7fELF",
        b"MZ",
        b"#!/bin/sh\nexec ngrok\n",
        b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0",
    ] {
        assert_eq!(identify(other, Limits::DEFAULT).unwrap(), None, "{other:?}");
    }
    // A Go binary built outside module mode has a version and no module information.
    let mut f = GoFile::new("go1.13", NGROK);
    f.modinfo.clear();
    let info = read_build_info(&f.elf()[..], Limits::DEFAULT).unwrap();
    assert_eq!(
        (info.go_version.as_str(), info.path.as_str()),
        ("go1.13", "")
    );
}

#[test]
fn the_module_text_is_taken_only_when_framed() {
    let mut f = GoFile::new("go1.16.15", NGROK);
    f.modinfo = format!("path\t{NGROK}\n").into_bytes();
    assert_eq!(
        read_build_info(&f.elf()[..], Limits::DEFAULT).unwrap().path,
        ""
    );
    f.layout = Layout::Inline;
    assert_eq!(
        read_build_info(&f.elf()[..], Limits::DEFAULT).unwrap().path,
        ""
    );
}

#[test]
fn a_version_string_is_capped_in_both_layouts() {
    for layout in [Layout::Pointers, Layout::Inline] {
        let mut f = GoFile::new(&"go1.99".repeat(100), NGROK);
        f.layout = layout;
        let info = read_build_info(&f.elf()[..], Limits::DEFAULT).unwrap();
        assert_eq!(
            info.go_version.len() as u64,
            buildinfo::VERSION_MAX,
            "{layout:?}"
        );
        assert_eq!(info.path, NGROK);
    }
}

#[test]
fn a_long_module_text_is_read_in_part() {
    // path and mod come first; dependencies follow (a big program lists hundreds).
    let mut text = modinfo(NGROK, "go.ngrok.com");
    let end = text.split_off(text.len() - 16);
    for i in 0..3000 {
        text.extend_from_slice(
            format!("dep\texample.com/dependency{i}\tv1.0.0\th1:abc=\n").as_bytes(),
        );
    }
    text.extend(end);
    assert!(text.len() > 100 << 10);
    for layout in [Layout::Pointers, Layout::Inline] {
        let mut f = GoFile::new("go1.16.15", NGROK);
        f.layout = layout;
        f.modinfo = text.clone();
        assert_ngrok(&f.elf(), &f);
    }
}

#[test]
fn sparse_section_tables_claiming_millions_cost_a_few_kib() {
    for claim in [1u64 << 25, 1 << 31, u64::MAX / 64] {
        for layout in [Layout::Pointers, Layout::Inline] {
            for wide in [true, false] {
                let mut f = GoFile::new("go1.16.15", NGROK);
                f.layout = layout;
                f.wide = wide;
                let (bytes, len) = claim_section_headers(&f.elf(), claim);
                let file = SparseFile::new(&bytes, len);
                assert_eq!(
                    identify(&file, Limits::DEFAULT).unwrap(),
                    Some("ngrok"),
                    "claim {claim}, {}",
                    describe(&f)
                );
                assert!(
                    file.bytes_read() < 128 << 10,
                    "read {} bytes for a claim of {claim}",
                    file.bytes_read()
                );
            }
        }
    }
}

#[test]
fn the_byte_budget_and_the_deadline_hold() {
    let mut f = GoFile::new("go1.22.4", NGROK);
    f.section = None;
    f.data_before = 900 << 10;
    let bytes = f.elf();
    let small = Limits {
        max_bytes: 64 << 10,
        max_time: Duration::from_secs(10),
    };
    assert!(matches!(identify(&bytes[..], small), Err(Error::Budget)));
    let file = SparseFile::new(&bytes, 0);
    assert!(identify(&file, Limits::DEFAULT).unwrap().is_some());
    assert!(file.bytes_read() <= Limits::DEFAULT.max_bytes);
    let no_time = Limits {
        max_bytes: 1 << 20,
        max_time: Duration::ZERO,
    };
    std::thread::sleep(Duration::from_millis(2));
    assert!(matches!(
        identify(&bytes[..], no_time),
        Err(Error::Deadline)
    ));
}

#[test]
fn every_truncation_is_refused_cleanly() {
    for f in [
        GoFile::new("go1.16.15", NGROK),
        GoFile::new("go1.22.4", NGROK),
    ] {
        for bytes in [f.elf(), f.pe()] {
            for n in 0..bytes.len() {
                // Never a panic; the prefix that holds everything still identifies.
                let _ = identify(&bytes[..n], Limits::DEFAULT);
            }
        }
    }
}

#[test]
fn decoys_do_not_hide_the_real_blob() {
    for layout in [Layout::Pointers, Layout::Inline] {
        let mut f = GoFile::new("go1.16.15", NGROK);
        f.layout = layout;
        f.section = None;
        f.data_before = 4096;
        let mut bytes = f.elf();
        // The data segment starts at a page boundary and holds data_before bytes of 0x5a.
        let start = bytes
            .windows(4096)
            .position(|w| w.iter().all(|&b| b == 0x5a))
            .unwrap();
        // A misaligned magic, then an aligned one with garbage pointers and flags.
        bytes[start + 3..start + 17].copy_from_slice(b"\xff Go buildinf:");
        bytes[start + 32..start + 46].copy_from_slice(b"\xff Go buildinf:");
        bytes[start + 46] = 8;
        bytes[start + 47] = 0;
        bytes[start + 48..start + 64].fill(0xee);
        // An aligned one whose pointer size is nonsense.
        bytes[start + 64..start + 78].copy_from_slice(b"\xff Go buildinf:");
        bytes[start + 78] = 3;
        bytes[start + 79] = 0;
        assert_ngrok(&bytes, &f);
    }
}

#[test]
fn pointers_to_nowhere_are_malformed_not_followed() {
    let mut f = GoFile::new("go1.16.15", NGROK);
    f.section = None;
    let mut bytes = f.elf();
    let at = bytes
        .windows(14)
        .position(|w| w == b"\xff Go buildinf:")
        .unwrap();
    // Version pointer to an unmapped address; then a string claiming 2^63 bytes.
    bytes[at + 16..at + 24].copy_from_slice(&0xdead_beef_0000u64.to_le_bytes());
    assert!(matches!(
        read_build_info(&bytes[..], Limits::DEFAULT),
        Err(Error::NotGo)
    ));
    let mut bytes = f.elf();
    // The version's string header is right after the blob: (ptr, len).
    bytes[at + 40..at + 48].copy_from_slice(&(1u64 << 63).to_le_bytes());
    assert!(matches!(
        read_build_info(&bytes[..], Limits::DEFAULT),
        Err(Error::NotGo)
    ));
}
