//! The client of a request, as `core::client` defines it, taken from actix's peer address and
//! headers.

use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};

use crate::core::client::ClientKey;
use crate::http::state::AppState;

impl FromRequest for ClientKey {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(client_of(req)))
    }
}

/// The client of a request (the loopback address if actix has no peer, as in unit tests).
pub fn client_of(req: &HttpRequest) -> ClientKey {
    let peer = req
        .peer_addr()
        .map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip());
    match req.app_data::<web::Data<AppState>>() {
        Some(s) => s.config.door.clients.identify(peer, req.headers()),
        None => ClientKey::of(peer),
    }
}
