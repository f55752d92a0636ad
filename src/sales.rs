//! Sales: creating them, opening and closing them, what they look like live, and keeping
//! Redis's copy of them consistent with the Postgres ledger.

use futures_util::future::join_all;
use serde::Serialize;

use crate::domain::{NewSaleRequest, SaleId, SaleSpec};
use crate::error::AppError;
use crate::ledger::{OrderRecord, Recorded, SaleRow};
use crate::metrics::METRICS;
use crate::state::AppState;

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

pub async fn create(s: &AppState, req: NewSaleRequest) -> Result<SaleRow, AppError> {
    let spec = SaleSpec::parse(req)?;
    if !s.ledger.insert_sale(&spec).await? {
        return Err(AppError::conflict(
            "sale_exists",
            "a sale with this id already exists",
        ));
    }
    s.store.put_sale(&spec, spec.units as i64).await?;
    row(s, &spec.id).await
}

async fn row(s: &AppState, id: &SaleId) -> Result<SaleRow, AppError> {
    s.ledger
        .sale(id.as_str())
        .await?
        .ok_or_else(AppError::unknown_sale)
}

pub async fn stats(s: &AppState, id: &SaleId) -> Result<AdminStats, AppError> {
    let sale = row(s, id).await?;
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

async fn public(s: &AppState, sale: SaleRow) -> Result<PublicSale, AppError> {
    let live = s.store.live(&sale.id).await?;
    Ok(PublicSale {
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
    })
}

pub async fn public_one(s: &AppState, id: &SaleId) -> Result<PublicSale, AppError> {
    public(s, row(s, id).await?).await
}

pub async fn public_list(s: &AppState) -> Result<Vec<PublicSale>, AppError> {
    let mut out = Vec::new();
    for sale in s.ledger.sales().await? {
        out.push(public(s, sale).await?);
    }
    Ok(out)
}

/// Sets or clears `wr:{id}:open`: exactly what `SET wr:{id}:open 1` in redis-cli does.
pub async fn set_open(s: &AppState, id: &SaleId, open: bool) -> Result<AdminStats, AppError> {
    row(s, id).await?;
    s.store.set_open(id.as_str(), open).await?;
    stats(s, id).await
}

/// Writes to Postgres every order Redis accepted but Postgres has not recorded, older than
/// `min_age_ms` (younger ones are still in flight in their own request). All at once, so
/// the ledger's group writer batches them after an outage.
pub async fn sync_pending(s: &AppState, sale: &str, min_age_ms: i64) -> Result<usize, AppError> {
    let now = chrono::Utc::now().timestamp_millis();
    let due: Vec<(String, OrderRecord)> = s
        .store
        .pending(sale)
        .await?
        .into_iter()
        .filter_map(|(qid, raw)| match OrderRecord::parse(&raw) {
            Some(rec) => Some((qid, rec)),
            None => {
                tracing::error!(sale, qid, raw, "unreadable order record in redis");
                None
            }
        })
        .filter(|(_, rec)| now - rec.at.timestamp_millis() >= min_age_ms)
        .collect();
    let written = join_all(due.iter().map(|(qid, rec)| s.ledger.record(sale, qid, rec))).await;
    let mut done = Vec::new();
    for ((qid, _), result) in due.iter().zip(written) {
        if let Recorded::WouldOversell = result? {
            tracing::error!(
                sale,
                qid,
                "ledger refused an order redis accepted: redis stock was ahead of postgres"
            );
        }
        METRICS.ledger_synced.inc();
        done.push(qid.as_str());
    }
    s.store.clear_pending(sale, &done).await?;
    Ok(done.len())
}

/// Sets Redis stock from the ledger (see lua/reconcile.lua for why this is safe while
/// checkouts run). Returns the stock now in Redis.
pub async fn reconcile(s: &AppState, id: &SaleId) -> Result<i64, AppError> {
    let sale = row(s, id).await?;
    if !s.store.has_sale(id.as_str()).await? {
        s.store.put_sale(&sale.spec()?, 0).await?;
    }
    sync_pending(s, id.as_str(), 0).await?;
    let sale = row(s, id).await?;
    s.store
        .reconcile(id.as_str(), sale.units as i64, sale.sold as i64)
        .await
}

/// Rebuilds the Redis state of every sale Redis has lost (flushed, or a new Redis). The
/// queue itself comes back as shoppers re-present their tokens.
pub async fn restore_missing(s: &AppState) -> Result<usize, AppError> {
    let mut restored = 0;
    for sale in s.ledger.sales().await? {
        if !s.store.has_sale(&sale.id).await? {
            let id = SaleId::parse(&sale.id)?;
            tracing::warn!(sale = %id, "sale missing from redis; rebuilding it from postgres");
            reconcile(s, &id).await?;
            restored += 1;
        }
    }
    Ok(restored)
}
