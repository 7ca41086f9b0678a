//! Fakes for tests (feature `testing`; not covered by semver).
//!
//! Contract: everything here is deterministic and needs no hardware. A
//! [`FakeCpu`] stands in for [`RealCpu`](crate::RealCpu) (scripted RDRAND
//! and RDSEED output and failures), a [`FakeClock`] for a monotonic
//! [`Clock`](crate::Clock) that moves only when told, and [`splitmix64`]
//! makes reproducible stand-in data. None of it belongs in a product.

pub use crate::hw::fake::{FakeCpu, FakeOutput, splitmix64};
pub use crate::watch::FakeClock;
