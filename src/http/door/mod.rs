//! The door at the HTTP edge: the browser session (`session`), who the client is
//! (`client`), and the rate-limit middleware (`limits`). The policy itself is `flows::door`.

pub mod client;
pub mod limits;
pub mod session;

pub use client::client_of;
