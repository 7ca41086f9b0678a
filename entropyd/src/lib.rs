//! entropyd, the reference daemon of entropool, as a library so tests and
//! fuzz harnesses call the same code as the binary.
//!
//! Layout: [`cli`] holds the clap definitions and the dispatcher; each
//! subcommand lives in a `cmd_*` module with an `Args` struct (clap derive)
//! and a `run` function that writes to the given output and returns
//! `Result<(), Failure>`. [`failure`] maps failures to exit codes:
//! 0 success, 1 a runtime failure (I/O, a corrupt config store),
//! 2 invalid input (a bad value, an invalid kickstart file, not a fresh
//! install, a usage error).
//!
//! The daemon ([`cmd_run`] over [`daemon`]) and the tools around it
//! ([`cmd_status`], [`cmd_generate`], [`cmd_samples`], [`cmd_assess`],
//! [`cmd_submit`]), with [`progress`] lines for long work.
//!
//! The network and OS half: the HTTP API ([`api`], [`server`], [`auth`],
//! [`tls`], [`audit`]),
//! its client ([`client`]), the pool seam ([`backend`]), the status view
//! ([`view`]), the outputs ([`sink`], [`kernel`]) and signal handling
//! ([`signals`]).
//!
//! The HSM bridge: [`cmd_feed`] over [`feed`] (its source, its TLS client
//! and its rounds).

pub mod api;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod cli;
pub mod client;
pub mod cmd_assess;
pub mod cmd_config;
pub mod cmd_feed;
pub mod cmd_generate;
pub mod cmd_kickstart;
pub mod cmd_reset_source;
pub mod cmd_run;
pub mod cmd_samples;
pub mod cmd_status;
pub mod cmd_submit;
pub mod daemon;
pub mod failure;
pub mod feed;
pub mod kernel;
pub mod progress;
pub mod runtime;
pub mod server;
pub mod signals;
pub mod sink;
pub mod tls;
pub mod view;
