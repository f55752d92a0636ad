//! At the door: what a place in line costs a client, so it costs a script what it costs a
//! person. `core::client` says who is asking, `limits` how often they may, `places` caps the
//! places one client holds, `pow` makes each new place cost some work. The HTTP side (the
//! browser session, the middleware) is `http::door`.

pub mod limits;
pub mod places;
pub mod pow;

pub use crate::core::client::{ClientIdentity, ClientKey};
