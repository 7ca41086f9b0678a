//! The CAVP `.rsp` parser and the known-answer loop, shared by
//! `tests/drbg_cavp.rs` (the public API, on whatever path the CPU takes)
//! and the `drbg` unit tests (which force the portable path). The includer
//! has `Drbg` in scope in its own module.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::string::{String, ToString};
use std::vec;
use std::vec::Vec;

use super::Drbg;

macro_rules! rsp {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/",
            $file
        ))
    };
}

/// The six excerpts (`tests/vectors`, copied unmodified from the project's
/// shared/vectors): a name starting with the mechanism, and the text.
pub const FILES: [(&str, &str); 6] = [
    ("HMAC no_reseed", rsp!("HMAC_DRBG.no_reseed.SHA-256.rsp")),
    ("HMAC pr_false", rsp!("HMAC_DRBG.pr_false.SHA-256.rsp")),
    ("HMAC pr_true", rsp!("HMAC_DRBG.pr_true.SHA-256.rsp")),
    ("Hash no_reseed", rsp!("Hash_DRBG.no_reseed.SHA-256.rsp")),
    ("Hash pr_false", rsp!("Hash_DRBG.pr_false.SHA-256.rsp")),
    ("Hash pr_true", rsp!("Hash_DRBG.pr_true.SHA-256.rsp")),
];

/// Cases per excerpt (its README.md: 16 sections of 15 cases).
pub const CASES_PER_FILE: usize = 240;

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length: {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// One case: its fields in file order.
struct Case {
    fields: Vec<(String, Vec<u8>)>,
}

impl Case {
    fn one(&self, name: &str) -> &[u8] {
        let mut it = self.fields.iter().filter(|(n, _)| n == name);
        let v = &it.next().unwrap_or_else(|| panic!("no {name}")).1;
        assert!(it.next().is_none(), "{name} twice");
        v
    }
    fn all(&self, name: &str) -> Vec<&[u8]> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
    fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(n, _)| n == name)
    }
}

/// Cases of a `.rsp` excerpt (all SHA-256): a case starts at `COUNT`.
fn parse(text: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut current: Option<Case> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            if line.starts_with('[') && line.starts_with("[SHA-") {
                assert_eq!(line, "[SHA-256]", "excerpt holds only SHA-256");
            }
            continue;
        }
        let (name, value) = line.split_once('=').expect("name = value");
        let (name, value) = (name.trim(), value.trim());
        if name == "COUNT" {
            cases.extend(current.take());
            current = Some(Case { fields: Vec::new() });
            continue;
        }
        current
            .as_mut()
            .expect("field before COUNT")
            .fields
            .push((name.to_string(), unhex(value)));
    }
    cases.extend(current);
    cases
}

/// Runs every case of one file through `D`; returns the number of cases.
pub fn run<D: Drbg>(file: &str, text: &str) -> usize {
    let cases = parse(text);
    for (i, case) in cases.iter().enumerate() {
        let expected = case.one("ReturnedBits");
        let mut drbg = D::instantiate(
            case.one("EntropyInput"),
            case.one("Nonce"),
            case.one("PersonalizationString"),
        )
        .unwrap_or_else(|e| panic!("{file} case {i}: instantiate: {e}"));
        if case.has("EntropyInputReseed") {
            drbg.reseed(
                case.one("EntropyInputReseed"),
                case.one("AdditionalInputReseed"),
            )
            .unwrap();
        }
        let additional = case.all("AdditionalInput");
        let pr = case.all("EntropyInputPR");
        assert_eq!(additional.len(), 2, "{file} case {i}");
        assert!(pr.is_empty() || pr.len() == 2, "{file} case {i}");
        let mut out = vec![0u8; expected.len()];
        for call in 0..2 {
            if pr.is_empty() {
                drbg.generate(&mut out, additional[call]).unwrap();
            } else {
                // Prediction resistance: reseed with this call's entropy and
                // additional input, then generate with none.
                drbg.reseed(pr[call], additional[call]).unwrap();
                drbg.generate(&mut out, &[]).unwrap();
            }
        }
        assert_eq!(out, expected, "{file} case {i}");
    }
    cases.len()
}
