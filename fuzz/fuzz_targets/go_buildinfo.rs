#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tunnelwatch_fuzz::go_buildinfo(data));
