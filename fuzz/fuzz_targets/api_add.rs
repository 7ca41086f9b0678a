//! libFuzzer target: the API add body, JSON then base64 (body in the library).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| entropool_fuzz::api_add(data));
