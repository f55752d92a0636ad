//! Sales: creating them, opening and closing them, what they look like live, and keeping
//! Redis's copy of them consistent with the Postgres ledger.

use futures_util::future::join_all;
use serde::Serialize;

use crate::domain::{NewSaleRequest, SaleId, SaleSpec};
use crate::error::AppError;
use crate::ledger::{Order, OrderRecord, Recorded, SaleRow};
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
    // The admin sees the sale as it is, not zeros, right after Redis lost it.
    restore(s, id).await?;
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
    for ((qid, rec), result) in due.iter().zip(written) {
        settle(s, sale, qid, rec, result?).await?;
        METRICS.ledger_synced.inc();
        done.push(qid.as_str());
    }
    s.store.clear_pending(sale, &done).await?;
    Ok(done.len())
}

/// Brings Redis in line with what the ledger made of an order Redis accepted. Returns the
/// ledger's order, or None if the ledger refused it.
pub async fn settle(
    s: &AppState,
    sale: &str,
    qid: &str,
    rec: &OrderRecord,
    recorded: Recorded,
) -> Result<Option<Order>, AppError> {
    let recorded = match recorded {
        // Another copy of this order (the ledger sync racing its own checkout) may have been
        // recorded meanwhile: then it stands, and voiding the ticket would lose it.
        Recorded::WouldOversell => match s.ledger.order_by_ticket(sale, qid).await? {
            Some(order) => Recorded::Order(order),
            None => Recorded::WouldOversell,
        },
        recorded => recorded,
    };
    match recorded {
        Recorded::Order(order) if order.id == rec.order_id => Ok(Some(order)),
        Recorded::Order(order) => {
            // The ticket had bought before Redis lost its record of it: keep the ledger's
            // order and give back what Redis took a second time.
            tracing::warn!(
                sale,
                qid,
                "ticket bought twice in redis; the second is undone"
            );
            s.store
                .amend(sale, qid, &order.record().to_string())
                .await?;
            Ok(Some(order))
        }
        Recorded::WouldOversell => {
            tracing::error!(
                sale,
                qid,
                "ledger refused an order redis accepted: redis stock was ahead; reconciling"
            );
            s.store.void(sale, qid).await?;
            reset_stock(s, sale).await?;
            Ok(None)
        }
    }
}

/// Tells Redis what the ledger knows of a ticket's order, for a ticket Redis has no trace of
/// (it lost the sale and the rebuild came before this order was committed): a live order
/// marks the ticket as having bought, a lapsed one marks it spent and its units released.
pub async fn remember(s: &AppState, sale: &str, order: &Order) -> Result<(), AppError> {
    if order.is_live() {
        s.store
            .amend(sale, &order.ticket_id, &order.record().to_string())
            .await?;
    } else {
        s.store.release(sale, &[order.released()]).await?;
    }
    Ok(())
}

/// Brings Redis's copy of a sale in line with the ledger: rebuilds it if lost, writes the
/// orders Postgres missed, then resets stock. Returns the stock now in Redis.
pub async fn reconcile(s: &AppState, id: &SaleId) -> Result<i64, AppError> {
    if !restore(s, id).await? {
        return Err(AppError::unknown_sale());
    }
    sync_pending(s, id.as_str(), 0).await?;
    reset_stock(s, id.as_str()).await
}

/// Sets Redis stock from the ledger (see lua/reconcile.lua) while holding the sale's row, so
/// no order commits between reading `sold` and setting stock.
async fn reset_stock(s: &AppState, sale: &str) -> Result<i64, AppError> {
    s.ledger
        .with_sale_locked(sale, async |locked| {
            // No order of this sale commits while the row is held, so the ledger's answer for
            // these tickets holds until the script has run.
            let pending: Vec<String> = s
                .store
                .pending(sale)
                .await?
                .into_iter()
                .map(|(q, _)| q)
                .collect();
            let recorded = locked.orders_of(&pending).await?;
            let (units, sold) = (locked.row.units as i64, locked.row.sold as i64);
            s.store
                .reconcile(sale, units, sold, &locked.released, &recorded, SETTLE_AFTER)
                .await
        })
        .await
}

/// Makes sure Redis has the sale, rebuilding it from the ledger if Redis lost it (flushed,
/// or a new Redis): settings, stock = units − sold, and who bought or lapsed, so nobody
/// buys twice or rejoins ahead of the line. The waiting line itself comes back as shoppers
/// re-present their queue tokens. False if Postgres does not know the sale either.
pub async fn restore(s: &AppState, id: &SaleId) -> Result<bool, AppError> {
    // One rebuild of a sale at a time per instance: a herd of requests finding it gone waits
    // for the one rebuilding it, then looks once, instead of each reading the ledger (and,
    // with Postgres down, each waiting out its timeout in turn).
    let lock = s
        .restoring
        .lock()
        .expect("restoring lock")
        .entry(id.to_string())
        .or_default()
        .clone();
    let Ok(_one) = lock.try_lock() else {
        drop(lock.lock().await);
        return match s.store.has_sale(id.as_str()).await? {
            true => Ok(true),
            false => Err(AppError::unavailable("the sale is being restored")),
        };
    };
    let rebuilt = rebuild(s, id).await;
    s.restoring
        .lock()
        .expect("restoring lock")
        .remove(id.as_str());
    rebuilt
}

async fn rebuild(s: &AppState, id: &SaleId) -> Result<bool, AppError> {
    if s.store.has_sale(id.as_str()).await? {
        return Ok(true);
    }
    let Some(state) = s.ledger.sale_state(id.as_str()).await? else {
        return Ok(false);
    };
    let stock = (state.sale.units - state.sale.sold) as i64;
    let spec = state.sale.spec()?;
    if s.store
        .restore_sale(&spec, stock, &state.bought, &state.lapsed)
        .await?
    {
        // Until a sweeper reconciles it (see `settle_rebuilt`), the sale is `unsettled`.
        tracing::warn!(
            sale = %id, stock, buyers = state.bought.len(),
            "sale was missing from redis; rebuilt from postgres"
        );
    }
    Ok(true)
}

/// Redis answered that it does not know this sale. If the caller proved the sale existed
/// (a token signed for it) or this instance has seen it, Redis lost it: rebuild it and
/// answer whether it is back. Unproven ids never reach Postgres, so made-up sale ids
/// cost one Redis round trip only.
pub async fn recover(s: &AppState, id: &SaleId, proven: bool) -> Result<bool, AppError> {
    if !proven && s.hub.progress(id.as_str()).is_none() {
        return Ok(false);
    }
    restore(s, id).await
}

/// By then every order Redis accepted before it lost a sale has committed or given up (see
/// `ledger::LATEST_COMMIT`), and a reconcile settles the rebuilt sale for good.
const SETTLE_AFTER: std::time::Duration =
    crate::ledger::LATEST_COMMIT.saturating_add(std::time::Duration::from_secs(1));

/// Reconciles the sale if it was rebuilt at least `SETTLE_AFTER` ago: a checkout Redis
/// accepted before the loss may have committed after the rebuild read the ledger. The mark
/// is in Redis, so whichever instance's sweeper comes first does it, even if the instance
/// that rebuilt the sale is gone.
pub async fn settle_rebuilt(s: &AppState, sale: &str) -> Result<(), AppError> {
    if s.store.unsettled_for(sale, SETTLE_AFTER).await? {
        let stock = reconcile(s, &SaleId::parse(sale)?).await?;
        tracing::info!(sale, stock, "rebuilt sale reconciled");
    }
    Ok(())
}

/// Rebuilds the Redis state of every sale Redis has lost.
pub async fn restore_missing(s: &AppState) -> Result<usize, AppError> {
    let ids = s.ledger.sale_ids().await?;
    let missing = s.store.missing(&ids).await?;
    for sale in &missing {
        restore(s, &SaleId::parse(sale)?).await?;
    }
    Ok(missing.len())
}
