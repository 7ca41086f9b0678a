//! Empty: the check lives in `tests/route.rs`.
