//! Process events' fields, read into plain records (pure functions; the process table and the
//! look-ups are applied in `enrich.rs`).
//!
//! - Microsoft-Windows-Kernel-Process ProcessStart: `ProcessID`, `ParentProcessID`, `ImageName`
//!   (an NT path, converted with the device map) -> [`ImageStart`].
//! - The kernel's Process Start / DCStart (decoded by `process_v4.rs`): `ProcessId`,
//!   `ParentId`, `UserSID` (the SID),
//!   `ImageFileName` (the image's file name), `CommandLine` -> [`KernelStart`].
//! - Stops of either: `ProcessID` / `ProcessId`.

use crate::{
    fields::{Fields, Header},
    paths::{DeviceMap, file_name},
    sid::Sid,
};

/// Microsoft-Windows-Kernel-Process's ProcessStart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageStart {
    pub pid: u32,
    pub ppid: u32,
    /// The image path in drive-letter form (or as reported, for an unknown device).
    pub path: String,
    /// FILETIME of the event.
    pub time: i64,
}

pub fn image_start(h: &Header, f: &Fields, devices: &DeviceMap) -> Option<ImageStart> {
    let image = f.str("ImageName")?;
    Some(ImageStart {
        pid: f.u32("ProcessID")?,
        ppid: f.u32("ParentProcessID").unwrap_or(0),
        path: devices.to_dos_path(image),
        time: h.timestamp,
    })
}

/// The kernel's Process Start or DCStart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelStart {
    pub pid: u32,
    pub ppid: u32,
    /// `ImageFileName`: the image's file name only (`ngrok.exe`).
    pub image_file_name: String,
    pub command_line: String,
    pub sid: Option<Sid>,
    /// FILETIME of the event.
    pub time: i64,
}

pub fn kernel_start(h: &Header, f: &Fields) -> Option<KernelStart> {
    Some(KernelStart {
        pid: f.u32("ProcessId")?,
        ppid: f.u32("ParentId").unwrap_or(0),
        image_file_name: f.str("ImageFileName").unwrap_or_default().to_owned(),
        command_line: f
            .str("CommandLine")
            .unwrap_or_default()
            .trim_end()
            .to_owned(),
        sid: f.sid("UserSID").cloned(),
        time: h.timestamp,
    })
}

/// The pid of a stop event (`ProcessID` from Kernel-Process, `ProcessId` from the kernel).
pub fn stopped_pid(f: &Fields) -> Option<u32> {
    f.u32("ProcessID").or_else(|| f.u32("ProcessId"))
}

/// The image a command line starts with, when it is written as an absolute path:
/// `"C:\Program Files\x\x.exe" --flag` or `C:\tools\ngrok.exe http 80` give the path;
/// `ngrok http 80` and `cmd.exe /c x` give nothing (not absolute).
pub fn image_from_command_line(command_line: &str) -> Option<&str> {
    let cmd = command_line.trim_start();
    let first = match cmd.strip_prefix('"') {
        Some(rest) => &rest[..rest.find('"')?],
        None => cmd.split([' ', '\t']).next()?,
    };
    let b = first.as_bytes();
    let absolute = (b.len() > 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\')
        || (first.starts_with(r"\\") && !first.starts_with(r"\\?\") && !first.starts_with(r"\\.\"));
    absolute.then_some(first)
}

/// Whether `file` (a path's last component) is the image the kernel names `image_file_name`.
/// Case does not matter; the kernel may cut a long name (to 14 or 15 characters, as the
/// process object keeps it), so a long enough `image_file_name` may be a prefix. An empty
/// `image_file_name` matches anything.
pub fn same_image(file: &str, image_file_name: &str) -> bool {
    let file = file_name(file);
    if image_file_name.is_empty() || file.eq_ignore_ascii_case(image_file_name) {
        return true;
    }
    image_file_name.len() >= 14
        && file.len() > image_file_name.len()
        && file.is_char_boundary(image_file_name.len())
        && file[..image_file_name.len()].eq_ignore_ascii_case(image_file_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::{Source, Value};

    fn header(source: Source) -> Header {
        Header {
            source,
            event_id: 0,
            opcode: 1,
            version: 4,
            pid: 4,
            timestamp: 1234,
            pointer_size: 8,
        }
    }

    #[test]
    fn kernel_process_start_converts_the_device_path() {
        let devices = DeviceMap::new([("C:", r"\Device\HarddiskVolume3")]);
        // Layout: Microsoft-Windows-Kernel-Process event 1 (ProcessStart), manifest v3.
        let f = Fields::new()
            .with("ProcessID", Value::U32(5832))
            .with("ParentProcessID", Value::U32(4000))
            .with(
                "ImageName",
                Value::Str(r"\Device\HarddiskVolume3\Users\a\Downloads\ngrok.exe".into()),
            );
        assert_eq!(
            image_start(&header(Source::KernelProcess), &f, &devices),
            Some(ImageStart {
                pid: 5832,
                ppid: 4000,
                path: r"C:\Users\a\Downloads\ngrok.exe".into(),
                time: 1234,
            })
        );
        let no_image = Fields::new().with("ProcessID", Value::U32(1));
        assert_eq!(
            image_start(&header(Source::KernelProcess), &no_image, &devices),
            None
        );
    }

    #[test]
    fn kernel_start_reads_sid_and_command_line() {
        let f = Fields::new()
            .with("ProcessId", Value::U32(700))
            .with("ParentId", Value::U32(600))
            .with("UserSID", Value::Sid(Sid::parse("S-1-5-18").unwrap()))
            .with("ImageFileName", Value::Str("svchost.exe".into()))
            .with(
                "CommandLine",
                Value::Str(r"C:\Windows\system32\svchost.exe -k netsvcs ".into()),
            );
        let k = kernel_start(&header(Source::KernelTrace), &f).unwrap();
        assert_eq!(k.pid, 700);
        assert_eq!(k.ppid, 600);
        assert_eq!(k.sid.unwrap().to_string(), "S-1-5-18");
        assert_eq!(k.image_file_name, "svchost.exe");
        assert_eq!(
            &*k.command_line,
            r"C:\Windows\system32\svchost.exe -k netsvcs"
        );
        // The Idle process has no command line (and may have no SID).
        let idle = Fields::new().with("ProcessId", Value::U32(0));
        let k = kernel_start(&header(Source::KernelTrace), &idle).unwrap();
        assert_eq!((k.sid, k.command_line.as_str()), (None, ""));
        assert_eq!(
            kernel_start(&header(Source::KernelTrace), &Fields::new()),
            None
        );
    }

    #[test]
    fn command_lines_name_their_image_when_absolute() {
        for (cmd, image) in [
            (
                r"C:\Users\a\Downloads\ngrok.exe http 8080",
                Some(r"C:\Users\a\Downloads\ngrok.exe"),
            ),
            (
                r#""C:\Program Files\ngrok\ngrok.exe" start --all"#,
                Some(r"C:\Program Files\ngrok\ngrok.exe"),
            ),
            (
                r#""C:\Windows\system32\cmd.exe" "#,
                Some(r"C:\Windows\system32\cmd.exe"),
            ),
            (
                r"\\srv\share\ngrok.exe tcp 22",
                Some(r"\\srv\share\ngrok.exe"),
            ),
            ("ngrok http 80", None),
            ("ngrok.exe", None),
            (r"\??\C:\Windows\system32\conhost.exe 0x4", None),
            (r#""C:\unterminated"#, None),
            ("", None),
        ] {
            assert_eq!(image_from_command_line(cmd), image, "{cmd}");
        }
    }

    #[test]
    fn image_names_match_ignoring_case_and_truncation() {
        assert!(same_image(r"C:\x\NGROK.EXE", "ngrok.exe"));
        assert!(same_image("ngrok.exe", ""));
        assert!(!same_image(r"C:\x\ngrok.exe", "svchost.exe"));
        assert!(same_image(
            r"C:\Program Files (x86)\Microsoft\EdgeUpdate\MicrosoftEdgeUpdate.exe",
            "MicrosoftEdgeUp"
        ));
        assert!(!same_image(r"C:\x\Microsoft.exe", "Microsoft.exe.x"));
        assert!(
            !same_image(r"C:\x\ngrok.exe", "ngrok"),
            "short names are whole"
        );
    }

    #[test]
    fn stops_name_their_pid() {
        assert_eq!(
            stopped_pid(&Fields::new().with("ProcessID", Value::U32(9))),
            Some(9)
        );
        assert_eq!(
            stopped_pid(&Fields::new().with("ProcessId", Value::U32(8))),
            Some(8)
        );
        assert_eq!(stopped_pid(&Fields::new()), None);
    }
}
