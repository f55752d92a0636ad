//! The fairness report (`GET /api/admin/sales/{id}/report`): was the line fair, and did it
//! move at the speed it was set to? Its data is the `admissions` table each tick fills
//! (`record_tick`), the order ledger, and Redis's join count.

use std::sync::Arc;

use serde::Serialize;

use crate::core::domain::variant::{self, VariantStock};
use crate::core::domain::SaleId;
use crate::core::fault::Fault;
use crate::flows::Deps;
use crate::infra::ledger::Refunds;
use crate::infra::store::Tick;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Places ever taken in the line (enqueue.lua's join sequence; a restored place is not a
    /// new one). Never below `admitted`: Redis losing the sale restarts its count.
    pub joined: i64,
    /// Shoppers let in (one per place; a place restored and admitted again counts once).
    pub admitted: i64,
    /// Orders holding their units: paid or awaiting payment (failed, lapsed and refunded
    /// orders are not bought).
    pub bought: i64,
    /// Admitted shoppers whose ticket ran out (by Redis's clock) without any order.
    pub lapsed: i64,
    /// Median and 95th percentile wait from join to admission (Redis time), None before
    /// anyone was admitted.
    pub wait_p50_ms: Option<f64>,
    pub wait_p95_ms: Option<f64>,
    /// Admissions whose join time is earlier than that of someone admitted in an earlier
    /// tick: someone who joined later got in first.
    pub fifo_inversions: i64,
    /// Admissions per second achieved: those after the first admitting tick divided by the
    /// seconds from the first admitting tick to the last (Redis time). The first tick's are
    /// left out as they mark the start of the span, so a line admitted at exactly the
    /// configured rate reads as that rate. None with fewer than two admitting ticks. Time the
    /// line stood empty or the sale closed inside the span lowers it.
    pub admission_rate: Option<f64>,
    /// The sale's `rate_per_sec` now.
    pub configured_rate: i32,
    /// Money that came too late (after the hold lapsed or the payment failed): orders owed a
    /// refund, and their sum.
    #[serde(flatten)]
    pub refunds: Refunds,
    /// Each variant's units and what it sold (live orders), in a sale with variants.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub by_variant: Vec<VariantStock>,
    /// A draw sale's draw: entries, commitment verified, rank inversions (flows::draw).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draw: Option<crate::flows::draw::DrawReport>,
}

/// The sale's report; None if the ledger has no such sale.
pub async fn report(s: &Deps, sale: &SaleId) -> Result<Option<Report>, Fault> {
    let Some(row) = s.ledger.sale(sale).await? else {
        return Ok(None);
    };
    let (joined, now_ms) = s.store.joined(sale).await?;
    let f = s.ledger.fairness(sale, now_ms, row.ticket_ttl_secs).await?;
    let refunds = s.ledger.refunds(sale).await?;
    let by_variant = match row.variants.is_empty() {
        true => Vec::new(),
        false => {
            let sold = s.ledger.variants_sold(sale).await?;
            variant::by_variant(&row.variants, None, Some(&sold))
        }
    };
    let admission_rate = f
        .span_us
        .filter(|&span| span > 0)
        .map(|span| f.after_first as f64 * 1e6 / span as f64);
    Ok(Some(Report {
        joined: joined.unwrap_or(0).max(f.admitted),
        admitted: f.admitted,
        bought: f.bought,
        lapsed: f.lapsed,
        wait_p50_ms: f.wait_p50_ms,
        wait_p95_ms: f.wait_p95_ms,
        fifo_inversions: f.fifo_inversions,
        admission_rate,
        configured_rate: row.rate_per_sec,
        refunds,
        by_variant,
        draw: crate::flows::draw::report(s, sale).await?,
    }))
}

/// Keeps a tick's admissions and its `admitted` audit row, from a task so the ticker never
/// waits on Postgres. Called by the instance whose tick let them in, so each admission is
/// written once. If Postgres is down at that moment the tick's rows are lost (logged): the
/// report then undercounts `admitted`, `lapsed` and the waits, and cannot see inversions
/// involving those shoppers; the trail misses that tick's count.
pub fn record_tick(s: &Arc<Deps>, sale: &SaleId, t: &Tick) {
    if t.admitted.is_empty() {
        return;
    }
    let (s, sale, admitted, at_us) = (s.clone(), sale.clone(), t.admitted.clone(), t.at_us);
    tokio::spawn(async move {
        if let Err(e) = s.ledger.record_admissions(&sale, &admitted, at_us).await {
            let count = admitted.len();
            tracing::warn!(%sale, count, error = %e, "admissions not kept for the report");
        }
    });
}
