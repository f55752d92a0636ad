//! The bottom layer: what every other layer speaks in. Domain types, the client identity the
//! door counts by, the stores' `Fault`, and configuration. Names no other layer.

pub mod client;
pub mod config;
pub mod domain;
pub mod fault;
pub mod webhooks;
