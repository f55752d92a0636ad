//! The audit trail: every change to a sale, kept in Postgres `sale_events` (append-only).
//!
//! `record` never fails the flow that calls it: the change has already happened, so a
//! Postgres hiccup loses the row (logged at WARN) rather than turning a done change into an
//! error for the admin or shopper.

use serde_json::Value;

use crate::state::AppState;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Created,
    Changed,
    Opened,
    Closed,
    SoldOut,
    Restocked,
    Rebuilt,
    Reconciled,
    Payment,
    Admitted,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Created => "created",
            Kind::Changed => "changed",
            Kind::Opened => "opened",
            Kind::Closed => "closed",
            Kind::SoldOut => "sold_out",
            Kind::Restocked => "restocked",
            Kind::Rebuilt => "rebuilt",
            Kind::Reconciled => "reconciled",
            Kind::Payment => "payment",
            Kind::Admitted => "admitted",
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
pub async fn record(s: &AppState, sale: &str, kind: Kind, source: Source, detail: Value) {
    let kind = kind.as_str();
    if let Err(e) = s
        .ledger
        .append_event(sale, kind, source.as_str(), &detail)
        .await
    {
        tracing::warn!(sale, kind, error = %e, "an audit row was not written");
    }
}
