//! Fuzz target: see `coordinator_fuzz::http_body` for the decoder and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coordinator_fuzz::http_body(data));
