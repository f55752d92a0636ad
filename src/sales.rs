//! Sales: creating them, opening and closing them, what they look like live, and the
//! admin's reconcile.

use serde::Serialize;

use crate::domain::{InvalidInput, NewSaleRequest, SaleId, SaleSpec};
use crate::fault::Fault;
use crate::ledger::SaleRow;
use crate::state::AppState;
use crate::store::Live;
use crate::{checkout, recovery};

#[derive(Debug, thiserror::Error)]
pub enum SaleError {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    #[error("a sale with this id already exists")]
    Exists,
    #[error("unknown sale")]
    UnknownSale,
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// A sale as shoppers see it.
#[derive(Debug, Serialize)]
pub struct PublicSale {
    pub id: String,
    pub name: String,
    pub units: i32,
    pub remaining: i64,
    pub price_cents: i64,
    pub open: bool,
    pub sold_out: bool,
    pub rate_per_sec: i32,
    pub max_per_order: i32,
    pub ticket_ttl_secs: i32,
    pub queue_len: i64,
    pub max_places_per_client: i32,
    /// The page solves a challenge of this many bits before it joins (0 = none).
    pub pow_difficulty: i32,
}

/// A sale as its admin watches it.
#[derive(Debug, Serialize)]
pub struct AdminStats {
    #[serde(flatten)]
    pub sale: SaleRow,
    pub remaining: i64,
    pub queue_len: i64,
    pub admitted_active: i64,
    pub admitted_total: i64,
    pub open: bool,
    pub sold_out: bool,
    /// Orders Redis accepted that Postgres has not recorded yet (non-zero only briefly, or
    /// while Postgres is down).
    pub pending_sync: usize,
}

pub async fn create(s: &AppState, req: NewSaleRequest) -> Result<SaleRow, SaleError> {
    let spec = SaleSpec::parse(req)?;
    if !s.ledger.insert_sale(&spec).await? {
        return Err(SaleError::Exists);
    }
    s.store.put_sale(&spec, spec.units as i64).await?;
    row(s, &spec.id).await
}

async fn row(s: &AppState, id: &SaleId) -> Result<SaleRow, SaleError> {
    s.ledger
        .sale(id.as_str())
        .await?
        .ok_or(SaleError::UnknownSale)
}

pub async fn stats(s: &AppState, id: &SaleId) -> Result<AdminStats, SaleError> {
    let sale = row(s, id).await?;
    // The admin sees the sale as it is, not zeros, right after Redis lost it.
    recovery::rebuild(s, id).await?;
    let live = s.store.live(id.as_str()).await?;
    let pending_sync = s.store.pending(id.as_str()).await?.len();
    Ok(AdminStats {
        sale,
        remaining: live.remaining,
        queue_len: live.queue_len,
        admitted_active: live.admitted_active,
        admitted_total: live.admitted_total,
        open: live.open,
        sold_out: live.remaining <= 0,
        pending_sync,
    })
}

fn public(sale: SaleRow, live: Live) -> PublicSale {
    PublicSale {
        id: sale.id,
        name: sale.name,
        units: sale.units,
        remaining: live.remaining,
        price_cents: sale.price_cents,
        open: live.open,
        sold_out: live.remaining <= 0,
        rate_per_sec: sale.rate_per_sec,
        max_per_order: sale.max_per_order,
        ticket_ttl_secs: sale.ticket_ttl_secs,
        queue_len: live.queue_len,
        max_places_per_client: sale.max_places_per_client,
        pow_difficulty: sale.pow_difficulty,
    }
}

pub async fn public_one(s: &AppState, id: &SaleId) -> Result<PublicSale, SaleError> {
    let sale = row(s, id).await?;
    let live = s.store.live(&sale.id).await?;
    Ok(public(sale, live))
}

/// Every sale with its live numbers: one Postgres query and one Redis round trip.
pub async fn public_list(s: &AppState) -> Result<Vec<PublicSale>, SaleError> {
    let sales = s.ledger.sales().await?;
    let ids: Vec<&str> = sales.iter().map(|r| r.id.as_str()).collect();
    let (_, live) = s.store.live_many(&ids).await?;
    Ok(sales
        .into_iter()
        .zip(live)
        .map(|(r, l)| public(r, l))
        .collect())
}

/// Sets or clears `wr:{id}:open`: what `SET wr:{id}:open 1` in redis-cli does, kept in the
/// ledger first so a sale Redis loses comes back as the admin left it. Opening also makes a
/// finished sale live again.
pub async fn set_open(s: &AppState, id: &SaleId, open: bool) -> Result<AdminStats, SaleError> {
    row(s, id).await?;
    s.ledger.set_open(&[(id.to_string(), open)]).await?;
    if open {
        s.ledger.unfinish(id.as_str()).await?;
    }
    s.store.set_open(id.as_str(), open).await?;
    stats(s, id).await
}

/// A sale Redis sees sold out with nothing pending: if the ledger agrees no unit can come
/// back, the ticker and sweeper stop looking at it (per-tick cost is O(live sales)).
pub async fn retire_if_finished(s: &AppState, sale: &str) -> Result<bool, Fault> {
    if !s.ledger.finish(sale).await? {
        return Ok(false);
    }
    s.store.unlist_sale(sale).await?;
    tracing::info!(sale, "sale finished; the background loops leave it");
    Ok(true)
}

/// The admin's reconcile: rebuilds the sale if Redis lost it, writes the orders Postgres
/// missed, then sets Redis's stock from the ledger. Returns the stock now in Redis.
pub async fn reconcile(s: &AppState, id: &SaleId) -> Result<i64, SaleError> {
    if !recovery::rebuild(s, id).await? {
        return Err(SaleError::UnknownSale);
    }
    let synced = checkout::sync_pending(s, id.as_str(), 0).await?;
    let stock = recovery::settle_stock(s, id.as_str())
        .await?
        .ok_or(SaleError::UnknownSale)?;
    let detail = serde_json::json!({"stock": stock, "orders_synced": synced});
    let (kind, source) = (crate::audit::Kind::Reconciled, crate::audit::Source::Api);
    crate::audit::record(s, id.as_str(), kind, source, detail).await;
    Ok(stock)
}
