//! ETW event fixtures, built field by field after the documented layouts (see
//! `etw/src/schema.rs` for the sources), and a host that answers from tables.
#![allow(dead_code)]

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use tunnelwatch_engine::{builtin, config::Config, engine::Engine};
use tunnelwatch_etw::{
    enrich::Enricher,
    fields::{FILETIME_SECOND, Fields, Header, RawEvent, Source, Value},
    host::{Host, LocalFiles},
    paths::DeviceMap,
    pipeline::Pipeline,
    process_v4::{self, ProcessRecord},
    sid::Sid,
};

/// FILETIME of 2026-11-23T01:02:03.1234567Z.
pub const T0: i64 = 134_398_693_231_234_567;
/// How the emitter writes [`T0`].
pub const T0_TEXT: &str = "2026-11-23T01:02:03.123456Z";

pub fn at(seconds: i64) -> i64 {
    T0 + seconds * FILETIME_SECOND
}

pub const HOST: &str = "DESKTOP-1";
pub const USER_SID: &str = "S-1-5-21-1004336348-1177238915-682003330-1001";
pub const SYSTEM_SID: &str = "S-1-5-18";

/// `\Device\...` of this machine's drives, as `QueryDosDeviceW` reports them.
pub fn devices() -> DeviceMap {
    DeviceMap::new([
        ("C:", r"\Device\HarddiskVolume3"),
        ("D:", r"\Device\HarddiskVolume10"),
    ])
    .with_system_root(r"C:\Windows")
}

/// A host whose accounts, live processes and image files come from tables; image files map
/// Windows paths to files on this machine (the PE fixtures), read with the real parser.
#[derive(Default)]
pub struct TableHost {
    pub accounts: HashMap<String, String>,
    pub live: HashMap<u32, String>,
    /// Command lines of live processes (`ProcessCommandLineInformation`).
    pub command_lines: HashMap<u32, String>,
    /// SIDs of live processes' users (their tokens).
    pub users: HashMap<u32, String>,
    pub images: HashMap<String, PathBuf>,
    pub files: LocalFiles,
    pub account_lookups: u32,
}

impl Host for TableHost {
    fn account_name(&mut self, sid: &Sid) -> Option<String> {
        self.account_lookups += 1;
        self.accounts.get(&sid.to_string()).cloned()
    }
    fn live_image_path(&mut self, pid: u32) -> Option<String> {
        self.live.get(&pid).cloned()
    }
    fn original_file_name(&mut self, path: &str) -> Option<String> {
        let file = self.images.get(path)?.clone();
        self.files.original_file_name(file.to_str()?)
    }
    fn live_command_line(&mut self, pid: u32) -> Option<String> {
        self.command_lines.get(&pid).cloned()
    }
    fn live_user_sid(&mut self, pid: u32) -> Option<Sid> {
        Sid::parse(self.users.get(&pid)?)
    }
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pe")
        .join(name)
}

/// The machine of the tests: a local user `CONTOSO\a`, SYSTEM, and an ngrok download whose
/// image is the `with-version.exe` fixture (`OriginalFilename` ngrok.exe).
pub fn table_host() -> TableHost {
    let mut h = TableHost::default();
    h.accounts.insert(USER_SID.into(), r"CONTOSO\a".into());
    h.accounts
        .insert(SYSTEM_SID.into(), r"NT AUTHORITY\SYSTEM".into());
    h.images.insert(
        r"C:\Users\a\Downloads\ngrok.exe".into(),
        fixture("with-version.exe"),
    );
    h.images.insert(
        r"C:\Users\a\AppData\Local\Temp\svchost.exe".into(),
        fixture("with-version.exe"),
    );
    h.images.insert(
        r"C:\Windows\System32\cmd.exe".into(),
        fixture("no-version.exe"),
    );
    h
}

pub fn enricher(host: TableHost) -> Enricher<TableHost> {
    Enricher::new(Arc::from(HOST), devices(), host)
}

/// The shipped rules, no allowlist; every event printed when `all_events`.
pub fn pipeline(all_events: bool) -> Pipeline<TableHost, Vec<u8>> {
    pipeline_with(table_host(), &Config::default(), all_events)
}

pub fn pipeline_with(
    host: TableHost,
    config: &Config,
    all_events: bool,
) -> Pipeline<TableHost, Vec<u8>> {
    Pipeline::new(
        enricher(host),
        Engine::new(builtin::rules().unwrap(), config.allowlist.clone()),
        Vec::new(),
        all_events,
    )
}

/// The lines written so far, and forgets them.
pub fn take_lines(p: &mut Pipeline<TableHost, Vec<u8>>) -> Vec<String> {
    let out = std::mem::take(p.out());
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn header(source: Source, event_id: u16, opcode: u8, version: u8, pid: u32, time: i64) -> Header {
    Header {
        source,
        event_id,
        opcode,
        version,
        pid,
        timestamp: time,
        pointer_size: 8,
    }
}

/// Microsoft-Windows-Kernel-Process event 1 (ProcessStart, manifest version 3; logged by the
/// creating process, here the parent): ProcessID, ProcessSequenceNumber, CreateTime,
/// ParentProcessID, ParentProcessSequenceNumber, SessionID, Flags, ProcessTokenElevationType,
/// ProcessTokenIsElevated, MandatoryLabel, ImageName, ImageChecksum, TimeDateStamp,
/// PackageFullName, PackageRelativeAppId.
pub fn kernel_process_start(pid: u32, ppid: u32, image_name: &str, time: i64) -> RawEvent {
    RawEvent {
        header: header(Source::KernelProcess, 1, 1, 3, ppid, time),
        fields: Fields::new()
            .with("ProcessID", Value::U32(pid))
            .with("ProcessSequenceNumber", Value::U64(4711))
            .with("CreateTime", Value::U64(time as u64))
            .with("ParentProcessID", Value::U32(ppid))
            .with("SessionID", Value::U32(1))
            .with("Flags", Value::U32(0))
            .with("ImageName", Value::Str(image_name.into()))
            .with("ImageChecksum", Value::U32(0))
            .with("TimeDateStamp", Value::U32(0))
            .with("PackageFullName", Value::Str(String::new()))
            .with("PackageRelativeAppId", Value::Str(String::new())),
    }
}

/// Microsoft-Windows-Kernel-Process event 2 (ProcessStop).
pub fn kernel_process_stop(pid: u32, time: i64) -> RawEvent {
    RawEvent {
        header: header(Source::KernelProcess, 2, 2, 2, pid, time),
        fields: Fields::new()
            .with("ProcessID", Value::U32(pid))
            .with("ExitCode", Value::U32(0)),
    }
}

/// The kernel logger's Process event (`Process_V4_TypeGroup1`, event version 4) with
/// `opcode` 1 (Start), 2 (End) or 3 (DCStart): its user data built from the documented layout
/// (UniqueProcessKey, ProcessId, ParentId, SessionId, ExitStatus, DirectoryTableBase, Flags,
/// UserSID as a 64-bit TOKEN_USER and the SID, ImageFileName, CommandLine, PackageFullName,
/// ApplicationId) and decoded by the sensor's own decoder, as the live callback and `.etl`
/// replay do. Logged in the context of the creating process.
pub fn kernel_trace(
    opcode: u8,
    pid: u32,
    ppid: u32,
    sid: &str,
    image_file_name: &str,
    command_line: &str,
    time: i64,
) -> RawEvent {
    let record = ProcessRecord {
        unique_process_key: 0xffff_a985_0b21_3c60,
        pid,
        ppid,
        session_id: 1,
        exit_status: 259,
        directory_table_base: 0x1_2345_6000,
        flags: 0,
        sid: Sid::parse(sid),
        image_file_name: image_file_name.into(),
        command_line: command_line.into(),
        package_full_name: String::new(),
        application_id: String::new(),
    };
    let payload = process_v4::encode(&record, 4, 8, 0xffff_a985_0b21_3c60);
    process_v4::raw_event(
        header(Source::KernelTrace, 0, opcode, 4, ppid, time),
        &payload,
    )
    .expect("a well-formed payload")
}

/// Microsoft-Windows-DNS-Client 3006 (version 0), logged by dnsapi.dll in process `pid`:
/// QueryName, QueryType, QueryOptions, ServerList, IsNetworkQuery, NetworkQueryIndex,
/// InterfaceIndex, IsAsyncQuery.
pub fn dns_3006(pid: u32, name: &str, qtype: u32, time: i64) -> RawEvent {
    RawEvent {
        header: header(Source::DnsClient, 3006, 0, 0, pid, time),
        fields: Fields::new()
            .with("QueryName", Value::Str(name.into()))
            .with("QueryType", Value::U32(qtype))
            .with("QueryOptions", Value::U64(0x4000_6000))
            .with("ServerList", Value::Str(String::new()))
            .with("IsNetworkQuery", Value::U32(0))
            .with("NetworkQueryIndex", Value::U32(0))
            .with("InterfaceIndex", Value::U32(0))
            .with("IsAsyncQuery", Value::U32(0)),
    }
}

/// Microsoft-Windows-DNS-Client 3008 (version 0): QueryName, QueryType, QueryOptions,
/// QueryStatus, QueryResults.
pub fn dns_3008(
    pid: u32,
    name: &str,
    qtype: u32,
    status: u32,
    results: &str,
    time: i64,
) -> RawEvent {
    RawEvent {
        header: header(Source::DnsClient, 3008, 0, 0, pid, time),
        fields: Fields::new()
            .with("QueryName", Value::Str(name.into()))
            .with("QueryType", Value::U32(qtype))
            .with("QueryOptions", Value::U64(0x4000_6000))
            .with("QueryStatus", Value::U32(status))
            .with("QueryResults", Value::Str(results.into())),
    }
}

/// The processes before the test's own: System and cmd.exe (pid 4000, user CONTOSO\a), as the
/// kernel's rundown (DCStart) reports them when the sensor starts.
pub fn rundown() -> Vec<RawEvent> {
    vec![
        kernel_trace(3, 4, 0, SYSTEM_SID, "System", "", at(-60)),
        kernel_trace(
            3,
            4000,
            3100,
            USER_SID,
            "cmd.exe",
            r#""C:\Windows\system32\cmd.exe" "#,
            at(-60),
        ),
    ]
}

/// Microsoft-Windows-Kernel-Network 12/28 (TCP connection attempted) or 42/58 (UDP data sent),
/// version 0, by process `pid` from `src` to `dst`: its payload built after the template (PID,
/// size, daddr, saddr, dport, sport in network order, ...) and decoded by the sensor's own
/// decoder, as live and in replay. Logged in whatever context the stack ran: the header's pid
/// is System's.
pub fn kernel_network(tcp: bool, pid: u32, src: &str, dst: &str, time: i64) -> RawEvent {
    let (id, payload) = tunnelwatch_etw::manifest_payload::encode_kernel_network(
        tcp,
        pid,
        if tcp { 0 } else { 1200 },
        src.parse().unwrap(),
        dst.parse().unwrap(),
    );
    RawEvent {
        header: header(
            Source::KernelNetwork,
            id,
            if tcp { 12 } else { 10 },
            0,
            4,
            time,
        ),
        fields: tunnelwatch_etw::manifest_payload::kernel_network(id, &payload)
            .expect("a well-formed payload"),
    }
}
