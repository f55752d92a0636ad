//! Checkout: one admission ticket buys once, each unit is sold once, every accepted order
//! reaches the ledger.
//!
//! Order of trust: checkout.lua decides (atomically: admitted, unused, enough stock); then the
//! order goes to Postgres. If Postgres fails, the order stays in Redis's `pending` set and the
//! shopper gets 503: a retry with the same ticket, or the sync (`sync_pending`), writes it
//! later, exactly once (the ledger is idempotent on the ticket).

use futures_util::future::join_all;
use uuid::Uuid;

use crate::core::domain::{OrderRecord, QueueId, SaleId, VariantId, VariantsLeft};
use crate::core::fault::Fault;
use crate::flows::audit;
use crate::flows::recovery;
use crate::flows::Deps;
use crate::infra::ledger::Order;
use crate::infra::metrics::METRICS;
use crate::infra::store::Take;
use crate::infra::tokens::{self, TokenError};

pub struct Bought {
    /// A new order (false: the same ticket again, answered with its order).
    pub fresh: bool,
    pub order: Order,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("no admission ticket")]
    MissingTicket,
    #[error("ticket: {0:?}")]
    Ticket(TokenError),
    #[error("quantity must be at least 1")]
    InvalidQuantity,
    #[error("at most {0} per order")]
    TooMany(i64),
    #[error("the ticket expired")]
    Expired,
    #[error("sold out")]
    SoldOut,
    #[error("only {0} left")]
    Insufficient(i64),
    #[error("the sale has no such variant")]
    UnknownVariant,
    #[error("this variant is sold out")]
    VariantSoldOut(VariantsLeft),
    #[error("unknown sale")]
    UnknownSale,
    #[error(transparent)]
    Fault(#[from] Fault),
}

pub async fn checkout(
    s: &Deps,
    sale: &SaleId,
    ticket: Option<&str>,
    quantity: i32,
    variant: Option<&VariantId>,
) -> Result<Bought, CheckoutError> {
    let result = buy(s, sale, ticket, quantity, variant).await;
    if result.is_err() {
        METRICS.checkout_rejected.inc();
    }
    result
}

async fn buy(
    s: &Deps,
    sale: &SaleId,
    ticket: Option<&str>,
    quantity: i32,
    variant: Option<&VariantId>,
) -> Result<Bought, CheckoutError> {
    // The herd after the last unit: answered from memory, before any signature or Redis work.
    // Buyers retrying still get their order (the slow path below).
    if s.hub
        .refuses_as_sold_out(sale, ticket.and_then(tokens::unverified_subject).as_deref())
    {
        return Err(CheckoutError::SoldOut);
    }
    let token = ticket.ok_or(CheckoutError::MissingTicket)?;
    let claims = s
        .keys
        .verify_ticket(token, sale)
        .map_err(CheckoutError::Ticket)?;
    // The upper bound (the sale's max_per_order) is checked inside checkout.lua.
    if quantity < 1 {
        return Err(CheckoutError::InvalidQuantity);
    }
    let qid = &claims.jti;
    let order_id = Uuid::now_v7();
    let exp_ms = claims.exp * 1000;
    let take = || s.store.take(sale, qid, quantity, variant, order_id, exp_ms);
    let mut taken = take().await?;
    if taken == Take::Unknown && recovery::detect(s, sale, true).await? {
        taken = take().await?;
    }
    let (rec, fresh) = match taken {
        Take::Taken(r) => (r, true),
        Take::Last(r) => {
            // Off the request's path: the shopper waits for their order, not the trail.
            let detail = serde_json::json!({"order_id": r.order_id,
                "at_ms": r.at.timestamp_millis(), "variant": r.variant});
            audit::record_later(
                &s.ledger,
                sale,
                audit::Kind::AllHeld,
                audit::Source::System,
                detail,
            );
            (r, true)
        }
        Take::Again(r) => (r, false),
        Take::Expired => return Err(CheckoutError::Expired),
        Take::SoldOut { held } => {
            s.hub.heard_sold_out(sale, None, Some(held));
            learn_buyers(s, sale);
            return Err(CheckoutError::SoldOut);
        }
        Take::Insufficient(left) => return Err(CheckoutError::Insufficient(left)),
        Take::TooMany(max) => return Err(CheckoutError::TooMany(max)),
        Take::UnknownVariant => return Err(CheckoutError::UnknownVariant),
        Take::VariantSoldOut(left) => return Err(CheckoutError::VariantSoldOut(left)),
        Take::Unknown => return Err(CheckoutError::UnknownSale),
        Take::Unsettled => return Err(Fault::Busy("the sale is being reconciled").into()),
    };
    let Some(order) = record(s, sale, qid, &rec).await? else {
        return Err(CheckoutError::SoldOut);
    };
    // The order is safe in Postgres; if this fails the sync clears it later.
    let _ = s.store.clear_pending(sale, &[qid]).await;
    let fresh = fresh && order.id == rec.order_id;
    if fresh {
        METRICS.orders.inc();
    }
    Ok(Bought { fresh, order })
}

/// Reads who bought, once per instance and off the request's path, so the rest of the herd
/// is answered from memory; no refusal waits on (or repeats) a read that grows with the buyers.
fn learn_buyers(s: &Deps, sale: &SaleId) {
    let Some(gen) = s.hub.buyers_wanted(sale) else {
        return;
    };
    let (store, hub, sale) = (s.store.clone(), s.hub.clone(), sale.clone());
    tokio::spawn(async move {
        let buyers = store.buyers(&sale).await.ok();
        hub.set_buyers(&sale, gen, buyers);
    });
}

/// Writes an order Redis accepted to the ledger and settles any disagreement. None if the
/// ledger refused it (it would have oversold).
async fn record(
    s: &Deps,
    sale: &SaleId,
    qid: &QueueId,
    rec: &OrderRecord,
) -> Result<Option<Order>, Fault> {
    let recorded = s.ledger.record(sale, qid, rec).await?;
    recovery::settle_order(s, sale, qid, rec, recorded).await
}

/// Writes to Postgres every order Redis accepted but Postgres has not recorded, older than
/// `min_age_ms` (younger ones are still in flight in their own request). All at once, so
/// the ledger's group writer batches them after an outage.
pub async fn sync_pending(s: &Deps, sale: &SaleId, min_age_ms: i64) -> Result<usize, Fault> {
    let now = chrono::Utc::now().timestamp_millis();
    let due: Vec<(QueueId, OrderRecord)> = s
        .store
        .pending(sale)
        .await?
        .into_iter()
        .filter(|(_, rec)| now - rec.at.timestamp_millis() >= min_age_ms)
        .collect();
    let written = join_all(due.iter().map(|(qid, rec)| record(s, sale, qid, rec))).await;
    let mut done = Vec::new();
    for ((qid, _), result) in due.iter().zip(written) {
        result?;
        METRICS.ledger_synced.inc();
        done.push(qid);
    }
    s.store.clear_pending(sale, &done).await?;
    Ok(done.len())
}
