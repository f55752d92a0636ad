//! The waitroom HTTP API as the scenarios use it (mirrors tests/common/mod.rs).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::client::{Conn, Reply, Req};
use crate::load::par_map;
use crate::server::ADMIN_TOKEN;

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
}

/// Creates a closed sale.
pub async fn create_sale(c: &mut Conn, id: &str, spec: &SaleSpec) -> Result<()> {
    let body = json!({
        "id": id, "name": format!("bench {id}"), "units": spec.units, "price_cents": 2500,
        "rate_per_sec": spec.rate_per_sec, "ticket_ttl_secs": spec.ticket_ttl_secs,
        "max_per_order": spec.max_per_order
    });
    let r = c
        .send(
            &Req::post("/api/admin/sales")
                .bearer(ADMIN_TOKEN)
                .json(&body),
        )
        .await?;
    if r.status != 201 {
        bail!("create sale {id}: {}", r.describe());
    }
    Ok(())
}

/// `open`, `close` or `reconcile`.
pub async fn admin(c: &mut Conn, sale: &str, action: &str) -> Result<Value> {
    let r = c
        .send(&Req::post(format!("/api/admin/sales/{sale}/{action}")).bearer(ADMIN_TOKEN))
        .await?;
    if r.status != 200 {
        bail!("{action} sale {sale}: {}", r.describe());
    }
    r.json()
}

pub async fn stats(c: &mut Conn, sale: &str) -> Result<Value> {
    let r = c
        .send(&Req::get(format!("/api/admin/sales/{sale}")).bearer(ADMIN_TOKEN))
        .await?;
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

#[derive(Clone, Debug)]
pub struct Joined {
    pub token: String,
    /// The n-th shopper to join (assigned atomically by enqueue.lua): the FIFO order.
    pub seq: i64,
}

pub fn join_req(sale: &str) -> Req {
    Req::post(format!("/api/sales/{sale}/queue"))
}

pub async fn join(c: &mut Conn, sale: &str) -> Result<Joined> {
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
    Ok(Joined {
        token: field("token")?,
        seq: v["seq"].as_i64().context("join reply without seq")?,
    })
}

/// `n` shoppers join, spread round robin over `addrs`; in index order (not join order).
pub async fn join_many(
    addrs: &[SocketAddr],
    sale: &str,
    n: usize,
    workers: usize,
) -> Result<Vec<Joined>> {
    let sale = sale.to_string();
    par_map(addrs, n, workers, move |mut c, _| {
        let sale = sale.clone();
        async move {
            let r = join(&mut c, &sale).await;
            (c, r)
        }
    })
    .await
    .into_iter()
    .collect()
}

pub fn status_req(sale: &str, token: &str) -> Req {
    Req::get(format!("/api/sales/{sale}/status")).bearer(token)
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

pub fn checkout_req(sale: &str, ticket: &str) -> Req {
    checkout_n_req(sale, ticket, 1)
}

pub fn checkout_n_req(sale: &str, ticket: &str, quantity: i64) -> Req {
    Req::post(format!("/api/sales/{sale}/checkout"))
        .bearer(ticket)
        .json(&json!({ "quantity": quantity }))
}

/// The order id of a successful (2xx) checkout reply.
pub fn order_id(r: &Reply) -> Option<uuid::Uuid> {
    if !(200..300).contains(&r.status) {
        return None;
    }
    r.json().ok()?["order_id"].as_str()?.parse().ok()
}
