//! entropyd: the reference entropy daemon built on entropool.
//!
//! The network and OS half: the HTTP API ([`api`], [`server`], [`auth`]),
//! its client ([`client`]), the pool seam ([`backend`]), the status view
//! ([`view`]), the outputs ([`sink`], [`kernel`]) and signal handling
//! ([`signals`]).

pub mod api;
pub mod auth;
pub mod backend;
pub mod client;
pub mod kernel;
pub mod server;
pub mod signals;
pub mod sink;
pub mod view;
