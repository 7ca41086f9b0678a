//! `getrandom::fill` is served by the generator registered with
//! `entropool::getrandom_custom` (needs `--cfg getrandom_backend="custom"`).

use entropool::{EntropySource, Error, PoolRng, PoolRngConfig, getrandom_custom};
use rand_core::{TryCryptoRng, TryRng};

/// Deterministic stand-in for the pool; byte i of call c is `c * 31 + i`.
#[derive(Default)]
struct FakePool {
    calls: u8,
}

impl EntropySource for FakePool {
    fn fill_full_entropy(&mut self, out: &mut [u8]) -> Result<(), Error> {
        for (i, b) in out.iter_mut().enumerate() {
            *b = self.calls.wrapping_mul(31).wrapping_add(i.to_le_bytes()[0]);
        }
        self.calls = self.calls.wrapping_add(1);
        Ok(())
    }
}

/// A generator that calls getrandom from inside itself (re-entry).
struct Reentrant;
impl TryRng for Reentrant {
    type Error = Error;
    fn try_next_u32(&mut self) -> Result<u32, Error> {
        Ok(0)
    }
    fn try_next_u64(&mut self) -> Result<u64, Error> {
        Ok(0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Error> {
        let inner = getrandom::fill(dst);
        assert_eq!(
            inner,
            Err(getrandom::Error::new_custom(Error::GetrandomBusy.code()))
        );
        Err(Error::GetrandomBusy)
    }
}
impl TryCryptoRng for Reentrant {}

/// One test (one process-wide slot): the steps run in order.
#[test]
fn getrandom_is_routed_to_the_registered_pool_rng() {
    let mut buf = [0u8; 100];
    // 1. Nothing registered: a custom error with code 506, no output.
    assert_eq!(
        getrandom::fill(&mut buf),
        Err(getrandom::Error::new_custom(
            Error::GetrandomNotRegistered.code()
        ))
    );
    assert!(!getrandom_custom::is_registered());

    // 2. Register a PoolRng over the fake pool; a twin shows what it yields.
    let rng = PoolRng::new(FakePool::default(), PoolRngConfig::DEFAULT).unwrap();
    let mut twin = PoolRng::new(FakePool::default(), PoolRngConfig::DEFAULT).unwrap();
    getrandom_custom::register(Box::leak(Box::new(rng)))
        .map_err(|_| ())
        .unwrap();
    let second = Box::leak(Box::new(
        PoolRng::new(FakePool::default(), PoolRngConfig::DEFAULT).unwrap(),
    ));
    assert!(
        getrandom_custom::register(second).is_err(),
        "only one registration"
    );

    getrandom::fill(&mut buf).unwrap();
    let mut want = [0u8; 100];
    twin.fill(&mut want).unwrap();
    assert_eq!(
        buf, want,
        "getrandom::fill came from the registered generator"
    );
    let word = getrandom::u64().unwrap();
    assert_eq!(word, twin.try_next_u64().unwrap());
    let mut big = vec![0u8; 100_000];
    getrandom::fill(&mut big).unwrap();
    let mut want_big = vec![0u8; 100_000];
    twin.fill(&mut want_big).unwrap();
    assert_eq!(big, want_big);

    // 3. Give it back; then a re-entrant generator sees "busy", no spin.
    getrandom_custom::unregister().unwrap();
    assert_eq!(
        getrandom::fill(&mut buf),
        Err(getrandom::Error::new_custom(
            Error::GetrandomNotRegistered.code()
        ))
    );
    getrandom_custom::register(Box::leak(Box::new(Reentrant)))
        .map_err(|_| ())
        .unwrap();
    assert_eq!(
        getrandom::fill(&mut buf),
        Err(getrandom::Error::new_custom(Error::GetrandomBusy.code()))
    );
}
