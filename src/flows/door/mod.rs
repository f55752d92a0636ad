//! At the door: what a place in line costs a client, so it costs a script what it costs a
//! person. `core::client` says who is asking, `limits` how often they may, `places` caps the
//! places one client holds, `pow` makes each new place cost some work, `streams` caps the event
//! streams one client holds open. The HTTP side (the
//! browser session, the middleware) is `http::door`.

pub mod limits;
pub mod places;
pub mod pow;
pub mod streams;

pub use crate::core::client::{ClientIdentity, ClientKey};
