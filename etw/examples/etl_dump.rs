//! Prints the kernel Process events and the Kernel-Process and DNS-Client events of an `.etl`
//! file as JSON lines, decoded by this crate's reader: for comparing it with other parsers
//! (see etw/README.md). `cargo run -p tunnelwatch-etw --example etl_dump -- FILE`.

use std::{fs::File, io::BufReader};

use tunnelwatch_etw::{
    etl::{EtlReader, Kind},
    manifest_payload, process_v4,
    schema::{dns_client, kernel_process, kernel_trace},
};

fn main() {
    let path = std::env::args().nth(1).expect("usage: etl_dump FILE.etl");
    let reader = EtlReader::new(BufReader::new(File::open(&path).expect("open"))).expect("etl");
    eprintln!("{:?}", reader.header());
    let process = tunnelwatch_etw::etl::Guid::parse(kernel_trace::PROCESS_GUID);
    let kp = tunnelwatch_etw::etl::Guid::parse(kernel_process::GUID);
    let dns = tunnelwatch_etw::etl::Guid::parse(dns_client::GUID);
    let stats = reader
        .for_each(|r| match r.kind {
            Kind::Kernel { group: 3, opcode, version } if matches!(opcode, 1..=4 | 39) => {
                match process_v4::decode(r.payload, version as u8, r.pointer_size) {
                    Ok(p) => println!(
                        "{}",
                        serde_json::json!({"type": opcode, "ver": version, "hdr_pid": r.pid, "ft": r.timestamp,
                            "pid": p.pid, "ppid": p.ppid, "session": p.session_id, "exit": p.exit_status,
                            "flags": p.flags, "sid": p.sid.map(|s| s.to_string()), "image": p.image_file_name,
                            "cmd": p.command_line, "pkg": p.package_full_name, "app": p.application_id})
                    ),
                    Err(e) => println!("{}", serde_json::json!({"type": opcode, "ver": version, "error": e.to_string()})),
                }
            }
            Kind::Classic { guid, opcode, version } if guid == process => {
                println!("{}", serde_json::json!({"classic": opcode, "ver": version}));
            }
            Kind::Provider { guid, id, version, .. } if guid == kp || guid == dns => {
                let f = if guid == kp {
                    manifest_payload::kernel_process(id, version, r.payload)
                } else {
                    manifest_payload::dns_client(id, r.payload)
                };
                println!(
                    "{}",
                    serde_json::json!({"provider": if guid == kp {"Kernel-Process"} else {"DNS-Client"},
                        "id": id, "ver": version, "hdr_pid": r.pid, "ft": r.timestamp, "fields": format!("{f:?}")})
                );
            }
            _ => {}
        })
        .expect("read");
    eprintln!("{stats:?}");
}
