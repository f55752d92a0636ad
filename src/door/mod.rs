//! At the door: what a place in line costs a client, so it costs a script what it costs a
//! person. `client` says who is asking, `limits` how often they may, `places` caps the
//! places one client holds, `pow` makes each new place cost some work, `session` keeps one
//! place per browser and binds tokens to it.

pub mod client;
pub mod limits;
pub mod places;
pub mod pow;
pub mod session;

pub use client::{client_of, ClientIdentity, ClientKey};
