//! The reader against real Go binaries, built here by the Go toolchain `cargo xtask setup`
//! installs (Debian's golang-go: Go 1.19, so the inline layout of Go 1.18+), for Linux (ELF:
//! 64/32-bit, little and big endian, PIE, stripped of symbols) and Windows (PE32+, PE32), then
//! with their section headers zeroed and their `.go.buildinfo` section renamed. The pointer
//! layout of Go 1.13 to 1.17 is checked on built files in `layouts.rs` (no Debian package
//! ships a Go older than 1.18; see the README for the check against Go 1.17 binaries).

use std::{fs, path::PathBuf, process::Command};

use tunnelwatch_identify::{
    Limits, identify, read_build_info,
    testing::{go_build, strip_section_headers},
};

const MODULE: &str = "go.ngrok.com";
const PACKAGE: &str = "cmd/ngrok";

fn work_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("go-toolchain");
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn go_version() -> String {
    let out = Command::new("go")
        .args(["env", "GOVERSION"])
        .output()
        .expect("the Go toolchain is needed (`cargo xtask setup` installs golang-go)");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn check(bytes: &[u8], what: &str, version: &str) {
    let info = read_build_info(bytes, Limits::DEFAULT).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(info.go_version, version, "{what}");
    assert_eq!(info.path, format!("{MODULE}/{PACKAGE}"), "{what}");
    assert_eq!(info.module, MODULE, "{what}");
    assert_eq!(
        identify(bytes, Limits::DEFAULT).unwrap(),
        Some("ngrok"),
        "{what}"
    );
}

#[test]
fn real_go_binaries_as_built_stripped_and_renamed() {
    let dir = work_dir();
    let version = go_version();
    let builds: &[(&str, &str, &[&str])] = &[
        ("linux", "amd64", &[]),
        ("linux", "amd64", &["-buildmode=pie"]),
        ("linux", "amd64", &["-ldflags=-s -w"]),
        ("linux", "386", &[]),
        ("linux", "arm64", &[]),
        ("linux", "ppc64", &[]),
        ("linux", "mips", &[]),
        ("windows", "amd64", &[]),
        ("windows", "386", &[]),
    ];
    for (goos, goarch, flags) in builds {
        let path = go_build(&dir, MODULE, PACKAGE, goos, goarch, flags);
        let what = format!("{goos}/{goarch} {flags:?}");
        let bytes = fs::read(&path).unwrap();
        check(&bytes, &what, &version);
        if *goos != "linux" {
            continue;
        }
        let mut stripped = bytes.clone();
        strip_section_headers(&mut stripped);
        check(
            &stripped,
            &format!("{what}, section headers zeroed"),
            &version,
        );
        let mut renamed = bytes.clone();
        let at = renamed
            .windows(14)
            .position(|w| w == b".go.buildinfo\0")
            .unwrap_or_else(|| panic!("{what}: no .go.buildinfo section name"));
        renamed[at..at + 13].copy_from_slice(b".data.rel.xx\0");
        check(&renamed, &format!("{what}, section renamed"), &version);
    }
}
