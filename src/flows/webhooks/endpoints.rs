//! The admin's endpoints: create (the secret shown once), list, look at, delete, rotate the
//! secret, enable after a 410, see and replay deliveries. A destination is checked when it is
//! made: its shape (`core::webhooks::Destination`) and, unless private destinations are
//! allowed, every address its host resolves to.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::EndpointError;
use crate::core::domain::{InvalidInput, SaleId};
use crate::core::webhooks::{self, Destination};
use crate::flows::Deps;
use crate::infra::ledger::webhooks::{DeliveryRow, Endpoint, EndpointView, NewEndpoint};
use crate::infra::outbound::{check_host, HostCheck};

/// Most sales one endpoint's filter may name.
const MAX_SALES: usize = 1000;
/// Most deliveries one page shows.
pub const MAX_DELIVERIES: i64 = 500;
/// Most events one replay queues again.
const MAX_REPLAY: i64 = 100_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBody {
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub sales: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A new endpoint, with its secret: the only answer but a rotation's that shows one.
#[derive(Debug, Serialize)]
pub struct Created {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub secret: String,
}

#[derive(Debug, Serialize)]
pub struct Rotated {
    pub id: Uuid,
    pub secret: String,
    /// The old secret signs too until then.
    pub previous_until: DateTime<Utc>,
}

/// A delivery, with the `webhook-id` its receiver saw.
#[derive(Debug, Serialize)]
pub struct Delivery {
    pub webhook_id: String,
    #[serde(flatten)]
    pub row: DeliveryRow,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    pub event_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct Replayed {
    pub requeued: u64,
}

pub async fn create(d: &Deps, body: NewBody) -> Result<Created, EndpointError> {
    let allow_private = d.config.webhooks.allow_private;
    let dest = Destination::parse(&body.url, allow_private)?;
    if !allow_private && dest.ip().is_none() {
        let (host, port) = dest.host_port();
        match check_host(host, port).await {
            HostCheck::Public => {}
            HostCheck::Private => Err(webhooks::private_destination())?,
            HostCheck::Unresolvable => Err(InvalidInput::new(
                "unresolvable_host",
                "the URL's host name does not resolve",
            ))?,
        }
    }
    let events = webhooks::event_filter(&body.events)?;
    let sales = sale_filter(&body.sales)?;
    let description = match body.description {
        Some(t) if t.chars().count() > 200 || t.chars().any(char::is_control) => {
            Err(InvalidInput::new(
                "invalid_description",
                "a description is at most 200 characters, none of them control characters",
            ))?
        }
        t => t.unwrap_or_default(),
    };
    let secret = webhooks::new_secret();
    let new = NewEndpoint {
        id: Uuid::new_v4(),
        url: dest.url().to_string(),
        description,
        events,
        sales,
        secret: secret.clone(),
    };
    let endpoint = d.webhooks.create_endpoint(&new).await?;
    tracing::info!(endpoint = %endpoint.id, "webhook endpoint created");
    Ok(Created { endpoint, secret })
}

/// Sale ids, each valid, each once.
fn sale_filter(sales: &[String]) -> Result<Vec<String>, InvalidInput> {
    if sales.len() > MAX_SALES {
        return Err(InvalidInput::new(
            "invalid_sale_id",
            format!("at most {MAX_SALES} sales in a filter"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(sales.len());
    for s in sales {
        let id = SaleId::parse(s)?.to_string();
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// An endpoint id from a path: anything that is not one names no endpoint.
pub fn endpoint_id(raw: &str) -> Result<Uuid, EndpointError> {
    Uuid::parse_str(raw).map_err(|_| EndpointError::UnknownEndpoint)
}

pub async fn list(d: &Deps) -> Result<Vec<EndpointView>, EndpointError> {
    Ok(d.webhooks.endpoints().await?)
}

pub async fn get(d: &Deps, id: Uuid) -> Result<EndpointView, EndpointError> {
    d.webhooks
        .endpoint(id)
        .await?
        .ok_or(EndpointError::UnknownEndpoint)
}

pub async fn delete(d: &Deps, id: Uuid) -> Result<(), EndpointError> {
    if !d.webhooks.delete_endpoint(id).await? {
        return Err(EndpointError::UnknownEndpoint);
    }
    tracing::info!(endpoint = %id, "webhook endpoint deleted");
    Ok(())
}

/// A new secret; the old one keeps signing beside it for the configured overlap.
pub async fn rotate(d: &Deps, id: Uuid) -> Result<Rotated, EndpointError> {
    let secret = webhooks::new_secret();
    let overlap = d.config.webhooks.rotation_overlap;
    let previous_until = d
        .webhooks
        .rotate_secret(id, &secret, overlap)
        .await?
        .ok_or(EndpointError::UnknownEndpoint)?;
    tracing::info!(endpoint = %id, %previous_until, "webhook secret rotated");
    Ok(Rotated {
        id,
        secret,
        previous_until,
    })
}

/// Enabled again (after a 410): its paused deliveries go out at once. Events that happened
/// while it was disabled were not queued for it: `replay` with `since` sends them.
pub async fn enable(d: &Deps, id: Uuid) -> Result<EndpointView, EndpointError> {
    if !d.webhooks.enable_endpoint(id).await? {
        return Err(EndpointError::UnknownEndpoint);
    }
    get(d, id).await
}

pub async fn deliveries(
    d: &Deps,
    id: Uuid,
    event: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Delivery>, EndpointError> {
    get(d, id).await?;
    let rows = d.webhooks.deliveries(id, event, limit).await?;
    Ok(rows
        .into_iter()
        .map(|row| Delivery {
            webhook_id: webhooks::message_id(row.event_id),
            row,
        })
        .collect())
}

/// Queues one event (`event_id`) or every event since a time (`since`) again, from the first
/// attempt, with the same `webhook-id` as before.
pub async fn replay(d: &Deps, id: Uuid, body: ReplayBody) -> Result<Replayed, EndpointError> {
    if body.event_id.is_some() == body.since.is_some() {
        Err(InvalidInput::new(
            "invalid_replay",
            "send either event_id or since (RFC 3339)",
        ))?;
    }
    get(d, id).await?;
    let requeued = d
        .webhooks
        .replay(id, body.event_id, body.since, MAX_REPLAY)
        .await?;
    if body.event_id.is_some() && requeued == 0 {
        return Err(EndpointError::UnknownEvent);
    }
    tracing::info!(endpoint = %id, requeued, "webhook deliveries replayed");
    Ok(Replayed { requeued })
}
