//! The fairness report's statements, and the admissions table they read (migrations/0008).

use super::Ledger;
use crate::core::domain::{SaleId, VariantId, VariantsLeft};
use crate::core::fault::Fault;

/// A sale's admissions and orders as the ledger saw them (see `report::Report`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Fairness {
    pub admitted: i64,
    pub bought: i64,
    pub lapsed: i64,
    pub wait_p50_ms: Option<f64>,
    pub wait_p95_ms: Option<f64>,
    pub fifo_inversions: i64,
    /// Admitted after the first admitting tick, and the µs from that tick to the last.
    pub after_first: i64,
    pub span_us: Option<i64>,
}

impl Ledger {
    /// Units each variant of the sale has sold (live orders: awaiting payment or paid), as
    /// `sale_variants` counts them; empty for a sale without variants.
    pub async fn variants_sold(&self, sale: &SaleId) -> Result<VariantsLeft, Fault> {
        let rows: Vec<(VariantId, i32)> =
            sqlx::query_as("SELECT variant_id, sold FROM sale_variants WHERE sale_id = $1")
                .bind(sale)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(|(v, n)| (v, n.into())).collect())
    }

    /// Keeps one tick's admissions (queue id, join score µs) and its `admitted` audit row, in
    /// one statement: one round trip per tick that let anyone in.
    pub async fn record_admissions(
        &self,
        sale: &SaleId,
        admitted: &[(String, i64)],
        at_us: i64,
    ) -> Result<(), Fault> {
        let (ids, joined): (Vec<&str>, Vec<i64>) =
            admitted.iter().map(|(q, j)| (q.as_str(), *j)).unzip();
        let detail = serde_json::json!({"count": admitted.len(), "tick_at_ms": at_us / 1000});
        sqlx::query(
            "WITH a AS (
                INSERT INTO admissions (sale_id, queue_id, joined_us, admitted_us)
                SELECT $1, q, j, $4 FROM UNNEST($2::text[], $3::bigint[]) AS t(q, j)
                ON CONFLICT (sale_id, queue_id) DO NOTHING
             )
             INSERT INTO sale_events (sale_id, kind, source, detail)
             VALUES ($1, 'admitted', 'system', $5)",
        )
        .bind(sale)
        .bind(ids)
        .bind(joined)
        .bind(at_us)
        .bind(sqlx::types::Json(detail))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The report's numbers from the ledger. `now_ms` is Redis's clock and `ticket_ttl_secs`
    /// the sale's, so a ticket counts as lapsed exactly when checkout.lua would call it
    /// expired. A FIFO inversion is an admission whose join time is earlier than that of
    /// someone admitted in an earlier tick: the window is every admission strictly before.
    pub async fn fairness(
        &self,
        sale: &SaleId,
        now_ms: i64,
        ticket_ttl_secs: i32,
    ) -> Result<Fairness, Fault> {
        Ok(sqlx::query_as(
            "WITH a AS (
                SELECT queue_id, joined_us, admitted_us,
                       (admitted_us - joined_us)::float8 / 1000 AS wait_ms,
                       max(joined_us) OVER (ORDER BY admitted_us
                           RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS latest_before
                FROM admissions WHERE sale_id = $1
             ), span AS (SELECT min(admitted_us) AS t0, max(admitted_us) AS t1 FROM a)
             SELECT count(*) AS admitted,
                    (SELECT count(*) FROM orders
                     WHERE sale_id = $1 AND status IN ('pending_payment', 'paid')) AS bought,
                    count(*) FILTER (
                        WHERE a.admitted_us / 1000 + $3::bigint * 1000 <= $2
                          AND NOT EXISTS (SELECT 1 FROM orders o
                                          WHERE o.sale_id = $1 AND o.ticket_id = a.queue_id)
                    ) AS lapsed,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY wait_ms) AS wait_p50_ms,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_ms) AS wait_p95_ms,
                    count(*) FILTER (WHERE joined_us < latest_before) AS fifo_inversions,
                    count(*) FILTER (WHERE admitted_us > (SELECT t0 FROM span)) AS after_first,
                    (SELECT t1 - t0 FROM span) AS span_us
             FROM a",
        )
        .bind(sale)
        .bind(now_ms)
        .bind(ticket_ttl_secs)
        .fetch_one(&self.pool)
        .await?)
    }
}
