#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tunnelwatch_fuzz::quic_initial(data));
