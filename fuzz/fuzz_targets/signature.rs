//! Fuzz target: see `coordinator_fuzz::signature` for the decoder and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coordinator_fuzz::signature(data));
