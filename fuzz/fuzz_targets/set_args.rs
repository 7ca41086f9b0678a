//! libFuzzer target: the `set` argument parser (body in the library).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| entropool_fuzz::set_args(data));
