//! libFuzzer target: the storage cache loader on random file bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| entropool_fuzz::storage_load(data));
