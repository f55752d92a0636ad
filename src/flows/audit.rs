//! The audit trail: every change to a sale, kept in Postgres `sale_events` (append-only).
//!
//! `record` never fails the flow that calls it: the change has already happened, so a
//! Postgres hiccup loses the row (logged at WARN) rather than turning a done change into an
//! error for the admin or shopper.

use serde::Serialize;
use serde_json::Value;

use crate::core::domain::SaleId;
use crate::core::fault::Fault;
use crate::infra::ledger::{AuditRow, Ledger};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Created,
    Changed,
    Opened,
    Closed,
    /// The last unit went, held for payment: joins are waitlisted until the holds settle.
    AllHeld,
    /// Nothing left or held: the last hold was paid.
    SoldOut,
    Restocked,
    Rebuilt,
    Reconciled,
    Payment,
    /// Money arrived for an order that had lapsed or failed: it is owed back. Written by the
    /// ledger in the webhook's transaction, beside its `payment` row.
    RefundDue,
    Admitted,
    /// A draw's seed was made: its commitment (flows::draw).
    DrawCommitted,
    /// The draw ran: seed revealed, entries' root and count.
    Drawn,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Created => "created",
            Kind::Changed => "changed",
            Kind::Opened => "opened",
            Kind::Closed => "closed",
            Kind::AllHeld => "all_held",
            Kind::SoldOut => "sold_out",
            Kind::Restocked => "restocked",
            Kind::Rebuilt => "rebuilt",
            Kind::Reconciled => "reconciled",
            Kind::Payment => "payment",
            Kind::RefundDue => "refund_due",
            Kind::Admitted => "admitted",
            Kind::DrawCommitted => "draw_committed",
            Kind::Drawn => "drawn",
        }
    }
}

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The admin API (or the dashboard, which uses it).
    Api,
    /// `opens_at` / `closes_at`.
    Schedule,
    /// A flip of the open switch made outside the API (redis-cli).
    Redis,
    /// The app itself: the ticker, the sweeper, recovery, the payment provider's webhook.
    System,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Schedule => "schedule",
            Source::Redis => "redis",
            Source::System => "system",
        }
    }
}

/// Appends one row to the sale's trail.
pub async fn record(ledger: &Ledger, sale: &SaleId, kind: Kind, source: Source, detail: Value) {
    append(ledger, sale, kind, source, detail).await
}

/// `record` from a task of its own, for hot paths (checkout) that must not wait on Postgres.
pub fn record_later(ledger: &Ledger, sale: &SaleId, kind: Kind, source: Source, detail: Value) {
    let (ledger, sale) = (ledger.clone(), sale.clone());
    tokio::spawn(async move { append(&ledger, &sale, kind, source, detail).await });
}

async fn append(ledger: &Ledger, sale: &SaleId, kind: Kind, source: Source, detail: Value) {
    let kind = kind.as_str();
    if let Err(e) = ledger
        .append_event(sale, kind, source.as_str(), &detail)
        .await
    {
        tracing::warn!(%sale, kind, error = %e, "an audit row was not written");
    }
}

/// One page of a sale's trail, oldest first, and the `after` that reads the next one.
#[derive(Debug, Serialize)]
pub struct Page {
    pub events: Vec<AuditRow>,
    pub next_after: i64,
}

/// The rows after id `after` (at most `limit`); None if the ledger has no such sale.
pub async fn page(
    ledger: &Ledger,
    sale: &SaleId,
    after: i64,
    limit: i64,
) -> Result<Option<Page>, Fault> {
    if ledger.sale(sale).await?.is_none() {
        return Ok(None);
    }
    let events = ledger.events(sale, after, limit).await?;
    let next_after = events.last().map_or(after, |e| e.id);
    Ok(Some(Page { events, next_after }))
}
