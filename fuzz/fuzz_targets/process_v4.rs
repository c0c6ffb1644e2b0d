#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tunnelwatch_fuzz::process_v4(data));
