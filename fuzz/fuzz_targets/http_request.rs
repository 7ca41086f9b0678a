//! libFuzzer target: one raw request through the real API server's HTTP
//! framing (head, then the body by Content-Length), over a Unix socket.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| entropool_fuzz::http_request(data));
