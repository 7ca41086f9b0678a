//! NIST CAVP known-answer tests (CAVS 14.3, SP 800-90A) for HMAC_DRBG and
//! Hash_DRBG with SHA-256: every case of the six `.rsp` excerpts in
//! `tests/vectors` (copied unmodified from the project's shared/vectors; provenance in its README.md), run by one loop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use entropool::{Drbg, HashDrbg, HmacDrbg};

mod cavp;

use cavp::{CASES_PER_FILE, FILES, run};

#[test]
fn every_sha256_cavp_case_passes() {
    let mut total = 0;
    for (name, text) in FILES {
        let n = if name.starts_with("HMAC") {
            run::<HmacDrbg>(name, text)
        } else {
            run::<HashDrbg>(name, text)
        };
        assert_eq!(n, CASES_PER_FILE, "{name}");
        total += n;
    }
    assert_eq!(total, 1440);
}
