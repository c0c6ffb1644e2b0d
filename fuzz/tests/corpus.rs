//! Replays the committed corpus (regression inputs included) through the targets' bodies
//! without libFuzzer: `cargo test` in fuzz/, on any toolchain, no sanitizer.

use std::{fs, path::Path};

fn replay(dir: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut n = 0;
    for entry in fs::read_dir(&dir).expect("corpus directory") {
        let path = entry.expect("entry").path();
        let data = fs::read(&path).expect("corpus file");
        eprintln!("{}", path.display());
        body(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus {}", dir.display());
}

#[test]
fn dns_message() {
    replay("corpus/dns_message", tunnelwatch_fuzz::dns_message);
}

#[test]
fn go_buildinfo() {
    replay("corpus/go_buildinfo", tunnelwatch_fuzz::go_buildinfo);
}

#[test]
fn record_decode() {
    replay("corpus/record_decode", tunnelwatch_fuzz::record_decode);
}

#[test]
fn rule_loader() {
    // The shipped rules are a seed directory of their own (see README.md).
    replay("../rules", tunnelwatch_fuzz::rule_loader);
    replay("corpus/rule_loader", tunnelwatch_fuzz::rule_loader);
}

#[test]
fn process_v4() {
    replay("corpus/process_v4", tunnelwatch_fuzz::process_v4);
}

#[test]
fn etl_reader() {
    replay("corpus/etl_reader", tunnelwatch_fuzz::etl_reader);
}
