//! entropyd, the reference daemon of entropool: its command-line interface
//! as a library, so tests and fuzz harnesses call the same code as the
//! binary.
//!
//! Layout: [`cli`] holds the clap definitions and the dispatcher; each
//! subcommand lives in a `cmd_*` module with an `Args` struct (clap derive)
//! and a `run` function that writes to the given output and returns
//! `Result<(), Failure>`. [`failure`] maps failures to exit codes:
//! 0 success, 1 a runtime failure (I/O, a corrupt config store),
//! 2 invalid input (a bad value, an invalid kickstart file, not a fresh
//! install, a usage error).

pub mod cli;
pub mod cmd_config;
pub mod cmd_kickstart;
pub mod failure;
