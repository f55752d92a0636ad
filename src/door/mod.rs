//! At the door: what a place in line costs a client, so it costs a script what it costs a
//! person. `client` says who is asking, `limits` how often they may.

pub mod client;
pub mod limits;

pub use client::{client_of, ClientIdentity, ClientKey};
