//! The dashboard's HTTP side: the admin session cookie and the admin event stream.

pub mod session;
pub mod stream;
