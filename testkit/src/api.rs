//! The waitroom HTTP API as typed requests (`*_req`: method, path, credentials, body), the
//! readers of its answers, and the calls the bench makes with them over a lean `Conn`.
//! `TestApp` (app.rs) sends the same requests with reqwest, as a browser would.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::client::{Conn, Reply, Req};

/// What the suite's and the bench's instances are started with.
pub const ADMIN_TOKEN: &str = "test-admin-token-123";
pub const PAYMENT_SECRET: &str = "test-payment-secret";

/// A fresh id (a sale, a log file, a database): tests run in parallel on one Redis and one
/// database, never flushing either, so every name is new.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A sale's terms as the admin API takes them.
pub struct SaleSpec {
    pub units: i64,
    pub rate_per_sec: i64,
    pub ticket_ttl_secs: i64,
    pub max_per_order: i64,
}

impl SaleSpec {
    /// A sale that stays closed: nobody is admitted and the line only grows.
    pub fn line_only() -> Self {
        Self {
            units: 10_000_000,
            rate_per_sec: 1,
            ticket_ttl_secs: 60,
            max_per_order: 1,
        }
    }

    /// The body of `POST /api/admin/sales` for a sale `id` named `name`, at 25.00 a unit.
    pub fn body(&self, id: &str, name: &str) -> Value {
        json!({
            "id": id, "name": name, "units": self.units, "price_cents": 2500,
            "rate_per_sec": self.rate_per_sec, "ticket_ttl_secs": self.ticket_ttl_secs,
            "max_per_order": self.max_per_order
        })
    }
}

pub fn create_sale_req(body: &Value) -> Req {
    Req::post("/api/admin/sales").bearer(ADMIN_TOKEN).json(body)
}

/// `open`, `close`, `reconcile`, ...
pub fn admin_req(sale: &str, action: &str) -> Req {
    Req::post(format!("/api/admin/sales/{sale}/{action}")).bearer(ADMIN_TOKEN)
}

pub fn stats_req(sale: &str) -> Req {
    Req::get(format!("/api/admin/sales/{sale}")).bearer(ADMIN_TOKEN)
}

pub fn join_req(sale: &str) -> Req {
    Req::post(format!("/api/sales/{sale}/queue"))
}

pub fn status_req(sale: &str, token: &str) -> Req {
    Req::get(format!("/api/sales/{sale}/status")).bearer(token)
}

/// The hand-off token for the order the place behind `token` (queue token or ticket) bought.
pub fn payment_req(sale: &str, token: &str) -> Req {
    Req::post(format!("/api/sales/{sale}/payment")).bearer(token)
}

pub fn checkout_req(sale: &str, ticket: &str) -> Req {
    checkout_n_req(sale, ticket, 1)
}

pub fn checkout_n_req(sale: &str, ticket: &str, quantity: i64) -> Req {
    checkout_body_req(sale, ticket, &json!({ "quantity": quantity }))
}

/// One unit of a variant (a size) of a sale with variants.
pub fn checkout_variant_req(sale: &str, ticket: &str, variant: &str) -> Req {
    checkout_body_req(sale, ticket, &json!({ "quantity": 1, "variant": variant }))
}

pub fn checkout_body_req(sale: &str, ticket: &str, body: &Value) -> Req {
    Req::post(format!("/api/sales/{sale}/checkout"))
        .bearer(ticket)
        .json(body)
}

/// Creates a closed sale.
pub async fn create_sale(c: &mut Conn, id: &str, spec: &SaleSpec) -> Result<()> {
    let body = spec.body(id, &format!("bench {id}"));
    let r = c.send(&create_sale_req(&body)).await?;
    if r.status != 201 {
        bail!("create sale {id}: {}", r.describe());
    }
    Ok(())
}

/// `open`, `close` or `reconcile`.
pub async fn admin(c: &mut Conn, sale: &str, action: &str) -> Result<Value> {
    let r = c.send(&admin_req(sale, action)).await?;
    if r.status != 200 {
        bail!("{action} sale {sale}: {}", r.describe());
    }
    r.json()
}

pub async fn stats(c: &mut Conn, sale: &str) -> Result<Value> {
    let r = c.send(&stats_req(sale)).await?;
    if r.status != 200 {
        bail!("stats of sale {sale}: {}", r.describe());
    }
    r.json()
}

/// Polls the admin stats until `pred` holds.
pub async fn wait_stats(
    c: &mut Conn,
    sale: &str,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = stats(c, sale).await?;
        if pred(&s) {
            return Ok(s);
        }
        if Instant::now() > deadline {
            bail!("sale {sale} did not reach the expected state within {timeout:?}: {s}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A place in line as the bench keeps it.
#[derive(Clone, Debug)]
pub struct Place {
    pub token: String,
    /// The n-th shopper to join (assigned atomically by enqueue.lua): the FIFO order.
    pub seq: i64,
}

pub async fn join(c: &mut Conn, sale: &str) -> Result<Place> {
    let r = c.send(&join_req(sale)).await?;
    if r.status != 201 {
        bail!("join {sale}: {}", r.describe());
    }
    let v = r.json()?;
    let field = |k: &str| {
        v[k].as_str()
            .map(str::to_string)
            .with_context(|| format!("join reply without {k}: {v}"))
    };
    Ok(Place {
        token: field("token")?,
        seq: v["seq"].as_i64().context("join reply without seq")?,
    })
}

pub async fn status(c: &mut Conn, sale: &str, token: &str) -> Result<Value> {
    let r = c.send(&status_req(sale, token)).await?;
    if r.status != 200 {
        bail!("status in {sale}: {}", r.describe());
    }
    r.json()
}

/// An admission: the signed ticket and when it lapses (ms, Redis clock).
#[derive(Clone, Debug)]
pub struct Ticket {
    pub ticket: String,
    pub expires_at_ms: i64,
}

/// The ticket in a `/status` answer, if the shopper is admitted.
pub fn ticket_of(status: &Value) -> Option<Ticket> {
    Some(Ticket {
        ticket: status["ticket"].as_str()?.to_string(),
        expires_at_ms: status["ticket_expires_at"].as_i64()?,
    })
}

/// Polls `/status` until admitted.
pub async fn wait_ticket(
    c: &mut Conn,
    sale: &str,
    token: &str,
    timeout: Duration,
) -> Result<Ticket> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = status(c, sale, token).await?;
        if let Some(t) = ticket_of(&s) {
            return Ok(t);
        }
        if Instant::now() > deadline {
            bail!("not admitted to {sale} within {timeout:?}: {s}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The order id of a successful (2xx) checkout reply.
pub fn order_id(r: &Reply) -> Option<uuid::Uuid> {
    if !(200..300).contains(&r.status) {
        return None;
    }
    r.json().ok()?["order_id"].as_str()?.parse().ok()
}
