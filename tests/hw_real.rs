//! The drivers on this machine's real CPU. A test whose instruction the
//! CPU lacks (or refuses) says so on stderr and returns, or fails when
//! `ENTROPOOL_REQUIRE_HW` names the instruction (`tests/support/hw.rs`).

#[path = "support/hw.rs"]
mod hw_support;

use core::time::Duration;
use std::collections::HashSet;
use std::time::Instant;

use entropool::hw::{RDSEED_RETRY_LIMIT, Rdrand, Rdseed};
use entropool::{Cpu, Error, RealCpu, Source, Vendor};

#[test]
fn require_list_names_keys_exactly() {
    assert!(hw_support::names("rdseed", "rdseed"));
    assert!(hw_support::names("rdrand, RDSEED ,sha", "rdseed"));
    assert!(hw_support::names("all", "sha"));
    assert!(!hw_support::names("rdrand", "rdseed"));
    assert!(!hw_support::names("rdseeds", "rdseed"));
    assert!(!hw_support::names("", "sha"));
}

#[test]
fn identity_agrees_with_proc_cpuinfo() {
    // An independent reading of CPUID: the Linux kernel's. Skipped where
    // /proc/cpuinfo does not exist or is not x86.
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        hw_support::skip("cpuinfo", &"there is no /proc/cpuinfo");
        return;
    };
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let (Some(vendor), Some(family)) = (field("vendor_id"), field("cpu family")) else {
        hw_support::skip(
            "cpuinfo",
            &"/proc/cpuinfo has no x86 vendor_id / cpu family",
        );
        return;
    };
    let cpu = RealCpu::new();
    let id = cpu.identity();
    let want_vendor = match vendor.as_str() {
        "GenuineIntel" => Vendor::Intel,
        "AuthenticAMD" => Vendor::Amd,
        _ => Vendor::Other,
    };
    assert_eq!(id.vendor, want_vendor);
    assert_eq!(id.family, family.parse::<u32>().unwrap());
    // The kernel may hide a flag it distrusts (it hides RDSEED on Zen 5),
    // never invent one: a listed flag must be in CPUID.
    let flags = field("flags").unwrap_or_default();
    let listed = |f: &str| flags.split_whitespace().any(|x| x == f);
    if listed("rdrand") {
        assert!(cpu.features().rdrand);
    }
    if listed("rdseed") {
        assert!(cpu.features().rdseed);
    }
    eprintln!("CPU: {id:?}, {:?}", cpu.features());
}

#[test]
fn real_rdrand_gives_distinct_words() {
    let cpu = RealCpu::new();
    if !cpu.features().rdrand {
        hw_support::skip("rdrand", &"CPUID reports no RDRAND");
        return;
    }
    let mut d = match Rdrand::new(cpu) {
        Ok(d) => d,
        Err(
            e @ Error::KnownBadCpu {
                source: Source::Rdrand,
            },
        ) => {
            hw_support::skip("rdrand", &e);
            return;
        }
        Err(e) => panic!("RDRAND refused on a CPU that reports it: {e}"),
    };
    // 1000 words must be distinct: a healthy 64-bit source repeats among
    // 1000 words with probability below 1000^2 / 2 / 2^64 < 3e-14.
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        let w = d.next_u64().unwrap();
        assert!(w != 0 && w != u64::MAX);
        assert!(seen.insert(w), "repeat {w:#x}");
    }
    let mut buf = [0u64; 64];
    d.fill(&mut buf).unwrap();
    for w in buf {
        assert!(seen.insert(w), "repeat {w:#x}");
    }
    let st = d.stats();
    assert_eq!(st.words, 1064);
    assert_eq!(st.attempts, st.words + 8 + st.failures);
    eprintln!("RDRAND: {st:?}");
}

#[test]
fn real_rdseed_is_bounded_and_yields() {
    let cpu = RealCpu::new();
    if !cpu.features().rdseed {
        hw_support::skip("rdseed", &"CPUID reports no RDSEED");
        return;
    }
    // The self-test may legitimately say "not now"; it must not say the
    // hardware is broken. Three tries (each at most 2000 attempts).
    let mut driver = None;
    for _ in 0..3 {
        let t = Instant::now();
        let r = Rdseed::new(cpu);
        // At most 2000 attempts of ~1 us; 10 s only catches a hang, also
        // on a loaded machine (the bound itself is counted in hw_fakes).
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "self-test took too long"
        );
        match r {
            Ok(d) => {
                driver = Some(d);
                break;
            }
            Err(Error::RdseedNotNow) => continue,
            Err(e @ Error::KnownBadCpu { .. }) => {
                hw_support::skip("rdseed", &e);
                return;
            }
            Err(e) => panic!("RDSEED refused: {e}"),
        }
    }
    let Some(mut d) = driver else {
        panic!("RDSEED self-test found no 8 words in 3 x 2000 attempts");
    };
    let before = d.stats();
    let mut words = HashSet::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let t = Instant::now();
        let r = d.next_u64();
        slowest = slowest.max(t.elapsed());
        match r {
            Ok(w) => {
                assert!(w != 0 && w != u64::MAX);
                assert!(words.insert(w), "repeat {w:#x}");
            }
            Err(e) => assert_eq!(e, Error::RdseedNotNow),
        }
    }
    let st = d.stats();
    let attempts = st.attempts - before.attempts;
    // The hard bound: never more than the limit per call.
    assert!(attempts <= 200 * u64::from(RDSEED_RETRY_LIMIT));
    // A call is ~100 attempts of ~1 us at worst (the attempt bound is
    // asserted above); 10 s allows for being descheduled on a loaded
    // machine, and still catches a hang.
    assert!(slowest < Duration::from_secs(10), "{slowest:?}");
    // At a 4 % success rate a call runs dry with p = 0.96^100 = 0.017; all
    // 200 calls do with p = 0.017^200 < 1e-350. Even at 1 % success,
    // (0.99^100)^200 < 1e-87.
    assert!(!words.is_empty(), "no RDSEED word in 200 calls");
    eprintln!(
        "RDSEED: {} words in 200 calls, {} attempts, slowest call {:?}",
        words.len(),
        attempts,
        slowest
    );
}
