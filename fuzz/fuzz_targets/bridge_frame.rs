//! Fuzz target: see `coordinator_fuzz::bridge_frame` for the decoder and what is checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| coordinator_fuzz::bridge_frame(data));
