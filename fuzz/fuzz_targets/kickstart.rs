//! libFuzzer target: the kickstart parser (body in the library).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| entropool_fuzz::kickstart(data));
