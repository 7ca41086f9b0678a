//! libFuzzer target: entropyd's PEM private-key reader (body in the library).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| entropool_fuzz::pem_key(data));
