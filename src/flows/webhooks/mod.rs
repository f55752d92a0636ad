//! Outbound webhooks: the shop's endpoints as the admin manages them (`endpoints`), and the
//! relay that takes every `outbox` event to them (`relay`). Delivery is at least once, signed
//! per Standard Webhooks v1 with the `standardwebhooks` crate; one order's events reach an
//! endpoint in the order they happened.

pub mod endpoints;
pub mod relay;

use crate::core::domain::InvalidInput;
use crate::core::fault::Fault;

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("no webhook endpoint with that id")]
    UnknownEndpoint,
    #[error("no such event for this endpoint")]
    UnknownEvent,
    #[error(transparent)]
    Fault(#[from] Fault),
}
