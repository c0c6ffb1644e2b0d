//! Prints the Go build information the sensors read from each file given, and the tool it
//! names: `cargo run -p tunnelwatch-identify --example buildinfo -- FILE...` (a check by hand
//! against `go version -m FILE`).

use std::{fs::File, process::ExitCode};

use tunnelwatch_identify::{Limits, read_build_info, tools};

fn main() -> ExitCode {
    let mut status = ExitCode::SUCCESS;
    for path in std::env::args().skip(1) {
        let result = File::open(&path)
            .map_err(tunnelwatch_identify::Error::from)
            .and_then(|f| read_build_info(&f, Limits::DEFAULT));
        match result {
            Ok(info) => println!(
                "{path}: {} path={} mod={} tool={}",
                info.go_version,
                info.path,
                info.module,
                tools::classify(&info.path).unwrap_or("-")
            ),
            Err(e) => {
                println!("{path}: {e}");
                status = ExitCode::FAILURE;
            }
        }
    }
    status
}
