#![no_std]
#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "std", test))]
extern crate std;

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod assess;
pub mod cache;
pub mod config;
pub(crate) mod crypto;
pub mod drbg;
pub mod error;
pub mod health;
pub mod hw;
pub mod interrupt;
pub mod kickstart;
pub mod mixer;
pub mod pool;
pub mod ring;
pub mod rng;
pub mod source;
pub mod storage;
pub mod watch;

#[cfg(all(feature = "std", target_os = "linux", not(miri)))]
mod os;

#[cfg(all(feature = "std", unix))]
pub mod store;

#[cfg(feature = "getrandom-custom")]
pub mod getrandom_custom;

pub use error::Error;
pub use source::{CpuFeatures, Source, SourceMask};
