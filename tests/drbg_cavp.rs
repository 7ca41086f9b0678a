//! NIST CAVP known-answer tests (CAVS 14.3, SP 800-90A) for HMAC_DRBG and
//! Hash_DRBG with SHA-256: every case of the six `.rsp` excerpts in
//! `tests/vectors` (copied unmodified from the project's shared/vectors; provenance in its README.md), run by one loop.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use entropool::drbg::{Drbg, HashDrbg, HmacDrbg};

macro_rules! vectors {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/",
            $file
        ))
    };
}

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
fn run<D: Drbg>(file: &str, text: &str) -> usize {
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

/// Runs one file's cases through one mechanism.
type Runner = fn(&str, &str) -> usize;

#[test]
fn every_sha256_cavp_case_passes() {
    let files: [(&str, &str, Runner); 6] = [
        (
            "HMAC no_reseed",
            vectors!("HMAC_DRBG.no_reseed.SHA-256.rsp"),
            run::<HmacDrbg>,
        ),
        (
            "HMAC pr_false",
            vectors!("HMAC_DRBG.pr_false.SHA-256.rsp"),
            run::<HmacDrbg>,
        ),
        (
            "HMAC pr_true",
            vectors!("HMAC_DRBG.pr_true.SHA-256.rsp"),
            run::<HmacDrbg>,
        ),
        (
            "Hash no_reseed",
            vectors!("Hash_DRBG.no_reseed.SHA-256.rsp"),
            run::<HashDrbg>,
        ),
        (
            "Hash pr_false",
            vectors!("Hash_DRBG.pr_false.SHA-256.rsp"),
            run::<HashDrbg>,
        ),
        (
            "Hash pr_true",
            vectors!("Hash_DRBG.pr_true.SHA-256.rsp"),
            run::<HashDrbg>,
        ),
    ];
    let mut total = 0;
    for (name, text, runner) in files {
        let n = runner(name, text);
        // README.md: 16 sections of 15 cases per excerpt.
        assert_eq!(n, 240, "{name}");
        total += n;
    }
    assert_eq!(total, 1440);
}
