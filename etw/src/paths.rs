//! NT device paths to the drive-letter paths people (and the seed's `process_path`) use:
//! `\Device\HarddiskVolume3\Users\a\ngrok.exe` becomes `C:\Users\a\ngrok.exe`.
//!
//! Microsoft-Windows-Kernel-Process reports image names as NT paths. The device behind each
//! drive letter comes from `QueryDosDeviceW` over `A:`..`Z:` on Windows ([`DeviceMap::query`]);
//! tests give a fixed table. Rules, in order:
//! 1. `\??\C:\x` and `\\?\C:\x` lose the prefix; `\??\UNC\srv\share\x` becomes `\\srv\share\x`.
//! 2. `\SystemRoot\x` becomes `<system root>\x` when the system root is known.
//! 3. `\Device\Mup\srv\share\x` (any UNC path) becomes `\\srv\share\x`;
//!    `\Device\LanmanRedirector\;Z:000...\srv\share\x` (a mapped drive) becomes `\\srv\share\x`.
//! 4. The longest device of the table that is a whole-component prefix becomes its drive
//!    (`\Device\HarddiskVolume1` does not match `\Device\HarddiskVolume10\x`). Case does not
//!    matter.
//! 5. Anything else (an unknown device, a path already in drive form) is kept as it is.

/// Devices behind drive letters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceMap {
    /// `(device, drive)`, longest device first: (`\Device\HarddiskVolume3`, `C:`).
    entries: Vec<(String, String)>,
    /// `C:\Windows`, for `\SystemRoot\...`.
    system_root: Option<String>,
}

impl DeviceMap {
    /// A map from `(drive, device)` pairs such as `("C:", r"\Device\HarddiskVolume3")`.
    /// Targets that are not `\Device\...` (e.g. `subst` drives, `\??\C:\dir`) are left out:
    /// they are aliases of paths the other entries already convert.
    pub fn new<I, D, T>(drives: I) -> DeviceMap
    where
        I: IntoIterator<Item = (D, T)>,
        D: Into<String>,
        T: Into<String>,
    {
        let mut entries: Vec<(String, String)> = drives
            .into_iter()
            .map(|(d, t)| (t.into(), d.into()))
            .filter(|(t, _)| starts_with_ignore_case(t, r"\Device\"))
            .map(|(t, d)| (t.trim_end_matches('\\').to_owned(), d))
            .collect();
        entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.1.cmp(&b.1)));
        DeviceMap {
            entries,
            system_root: None,
        }
    }

    /// The same map, resolving `\SystemRoot\` to `root` (e.g. `C:\Windows`).
    pub fn with_system_root(mut self, root: impl Into<String>) -> DeviceMap {
        self.system_root = Some(root.into().trim_end_matches('\\').to_owned());
        self
    }

    /// How many drives are known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `nt_path` in drive-letter (or UNC) form; unchanged when no rule applies.
    pub fn to_dos_path(&self, nt_path: &str) -> String {
        for prefix in [r"\??\", r"\\?\"] {
            if let Some(rest) = strip_prefix_ignore_case(nt_path, prefix) {
                if let Some(unc) = strip_prefix_ignore_case(rest, r"UNC\") {
                    return format!(r"\\{unc}");
                }
                if is_drive_path(rest) {
                    return rest.to_owned();
                }
            }
        }
        if let Some(root) = &self.system_root
            && let Some(rest) = strip_component_prefix(nt_path, r"\SystemRoot")
        {
            return format!("{root}{rest}");
        }
        if let Some(rest) = strip_component_prefix(nt_path, r"\Device\Mup")
            && rest.len() > 1
        {
            return format!(r"\{rest}");
        }
        if let Some(rest) = strip_component_prefix(nt_path, r"\Device\LanmanRedirector")
            && rest.len() > 1
        {
            // `\;Z:0000000000012345\srv\share\x`: the first component names the mapping.
            let rest = match rest[1..].strip_prefix(';') {
                Some(mapped) => mapped.find('\\').map_or("", |i| &mapped[i..]),
                None => rest,
            };
            if rest.len() > 1 {
                return format!(r"\{rest}");
            }
        }
        for (device, drive) in &self.entries {
            if let Some(rest) = strip_component_prefix(nt_path, device) {
                return format!("{drive}{rest}");
            }
        }
        nt_path.to_owned()
    }

    /// The drives of this machine: `QueryDosDeviceW` for each of `A:`..`Z:`, and the system
    /// root from `GetWindowsDirectoryW`.
    #[cfg(windows)]
    pub fn query() -> DeviceMap {
        use windows_sys::Win32::{
            Storage::FileSystem::QueryDosDeviceW, System::SystemInformation::GetWindowsDirectoryW,
        };

        let mut drives = Vec::new();
        let mut buf = vec![0u16; 1024];
        for letter in b'A'..=b'Z' {
            let drive = format!("{}:", letter as char);
            let wide: Vec<u16> = drive.encode_utf16().chain([0]).collect();
            // SAFETY: `wide` is NUL-terminated; `buf` is writable for its length in u16s.
            let n = unsafe { QueryDosDeviceW(wide.as_ptr(), buf.as_mut_ptr(), buf.len() as u32) };
            if n == 0 {
                continue;
            }
            // The first of the NUL-separated targets is the current one.
            let first = buf[..n as usize].split(|&c| c == 0).next().unwrap_or(&[]);
            drives.push((drive, String::from_utf16_lossy(first)));
        }
        let mut map = DeviceMap::new(drives);
        // SAFETY: `buf` is writable for its length in u16s.
        let n = unsafe { GetWindowsDirectoryW(buf.as_mut_ptr(), buf.len() as u32) } as usize;
        if n > 0 && n < buf.len() {
            map = map.with_system_root(String::from_utf16_lossy(&buf[..n]));
        }
        map
    }
}

/// The file name of a Windows path: what follows the last `\` (or `/`).
pub fn file_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// `X:\...` or `X:` alone.
fn is_drive_path(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b.len() == 2 || b[2] == b'\\')
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    starts_with_ignore_case(s, prefix).then(|| &s[prefix.len()..])
}

/// What follows `prefix` when `prefix` is a run of whole components of `s`: `Some("")` for
/// `s == prefix`, `Some(r"\x")` for `prefix\x`, `None` for `prefix0\x`.
fn strip_component_prefix<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = strip_prefix_ignore_case(s, prefix)?;
    (rest.is_empty() || rest.starts_with('\\')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `QueryDosDeviceW` returns on a machine with two disks, a DVD drive, a mapped network
    /// drive and a `subst` drive.
    fn machine() -> DeviceMap {
        DeviceMap::new([
            ("C:", r"\Device\HarddiskVolume3"),
            ("D:", r"\Device\HarddiskVolume10"),
            ("E:", r"\Device\CdRom0"),
            (
                "Z:",
                r"\Device\LanmanRedirector\;Z:0000000000076a3e\fileserver\tools",
            ),
            ("S:", r"\??\C:\src"),
        ])
        .with_system_root(r"C:\Windows")
    }

    #[test]
    fn volumes_become_drive_letters() {
        let m = machine();
        assert_eq!(m.len(), 4, "the subst drive is left out");
        for (nt, dos) in [
            (
                r"\Device\HarddiskVolume3\Users\a\Downloads\ngrok.exe",
                r"C:\Users\a\Downloads\ngrok.exe",
            ),
            (
                r"\Device\HarddiskVolume10\tools\ngrok.exe",
                r"D:\tools\ngrok.exe",
            ),
            (r"\device\harddiskvolume3\x.exe", r"C:\x.exe"),
            (r"\Device\CdRom0\setup.exe", r"E:\setup.exe"),
            (r"\Device\HarddiskVolume3", "C:"),
        ] {
            assert_eq!(m.to_dos_path(nt), dos, "{nt}");
        }
    }

    #[test]
    fn a_volume_number_is_not_a_prefix_of_another() {
        let m = DeviceMap::new([("C:", r"\Device\HarddiskVolume1")]);
        assert_eq!(
            m.to_dos_path(r"\Device\HarddiskVolume10\x.exe"),
            r"\Device\HarddiskVolume10\x.exe"
        );
        assert_eq!(m.to_dos_path(r"\Device\HarddiskVolume1\x.exe"), r"C:\x.exe");
    }

    #[test]
    fn unknown_devices_and_dos_paths_are_kept() {
        let m = machine();
        for p in [
            r"\Device\HarddiskVolumeShadowCopy7\Windows\x.exe",
            r"\Device\VhdHardDisk{5ac9}\x.exe",
            r"C:\Windows\System32\cmd.exe",
            "ngrok.exe",
            "",
        ] {
            assert_eq!(m.to_dos_path(p), p);
        }
        assert_eq!(
            DeviceMap::default().to_dos_path(r"\Device\HarddiskVolume3\x.exe"),
            r"\Device\HarddiskVolume3\x.exe"
        );
    }

    #[test]
    fn unc_and_prefixed_paths() {
        let m = machine();
        for (nt, dos) in [
            (
                r"\Device\Mup\fileserver\tools\ngrok.exe",
                r"\\fileserver\tools\ngrok.exe",
            ),
            (
                r"\Device\LanmanRedirector\;Z:0000000000076a3e\fileserver\tools\ngrok.exe",
                r"\\fileserver\tools\ngrok.exe",
            ),
            (
                r"\Device\LanmanRedirector\fileserver\tools\ngrok.exe",
                r"\\fileserver\tools\ngrok.exe",
            ),
            (
                r"\??\C:\Windows\System32\smss.exe",
                r"C:\Windows\System32\smss.exe",
            ),
            (r"\\?\D:\x.exe", r"D:\x.exe"),
            (r"\??\UNC\srv\share\x.exe", r"\\srv\share\x.exe"),
            (
                r"\SystemRoot\System32\smss.exe",
                r"C:\Windows\System32\smss.exe",
            ),
        ] {
            assert_eq!(m.to_dos_path(nt), dos, "{nt}");
        }
        // Nothing after the redirector's own name: kept.
        assert_eq!(m.to_dos_path(r"\Device\Mup"), r"\Device\Mup");
        assert_eq!(
            m.to_dos_path(r"\Device\LanmanRedirector\;Z:0000"),
            r"\Device\LanmanRedirector\;Z:0000"
        );
        // Without a known system root, \SystemRoot stays.
        assert_eq!(
            DeviceMap::new([("C:", r"\Device\HarddiskVolume3")]).to_dos_path(r"\SystemRoot\x.exe"),
            r"\SystemRoot\x.exe"
        );
    }

    #[test]
    fn file_names() {
        assert_eq!(file_name(r"C:\Users\a\Downloads\ngrok.exe"), "ngrok.exe");
        assert_eq!(file_name("ngrok.exe"), "ngrok.exe");
        assert_eq!(file_name(r"\\srv\share\"), "");
        assert_eq!(file_name("C:/x/y.exe"), "y.exe");
    }
}
