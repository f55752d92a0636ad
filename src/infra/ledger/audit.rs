//! The audit trail's statements: `sale_events` is only ever inserted into.

use serde::Serialize;

use super::Ledger;
use crate::core::domain::SaleId;
use crate::core::fault::Fault;

/// One row of a sale's audit trail.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub kind: String,
    pub source: String,
    pub detail: serde_json::Value,
}

impl Ledger {
    pub async fn append_event(
        &self,
        sale: &SaleId,
        kind: &str,
        source: &str,
        detail: &serde_json::Value,
    ) -> Result<(), Fault> {
        insert_event(&self.pool, sale, kind, source, detail).await
    }

    /// Copies open switches flipped in Redis (sale id, open) to `sales.open`, with an
    /// `opened`/`closed` row by source `redis` for each sale this statement changed: under
    /// the row lock, so when every instance's sweeper sees the same flip one row is written.
    pub async fn copy_open_flips(&self, flips: &[(SaleId, bool)]) -> Result<(), Fault> {
        let (ids, open): (Vec<&str>, Vec<bool>) =
            flips.iter().map(|(id, o)| (id.as_str(), *o)).unzip();
        sqlx::query(
            "WITH u AS (
                UPDATE sales SET open = f.open FROM UNNEST($1::text[], $2::bool[]) AS f(id, open)
                WHERE sales.id = f.id AND sales.open <> f.open
                RETURNING sales.id, f.open
             )
             INSERT INTO sale_events (sale_id, kind, source)
             SELECT id, CASE WHEN open THEN 'opened' ELSE 'closed' END, 'redis' FROM u",
        )
        .bind(ids)
        .bind(open)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The sale's rows after id `after`, oldest first.
    pub async fn events(
        &self,
        sale: &SaleId,
        after: i64,
        limit: i64,
    ) -> Result<Vec<AuditRow>, Fault> {
        Ok(sqlx::query_as(
            "SELECT id, at, kind, source, detail FROM sale_events
             WHERE sale_id = $1 AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(sale)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Appends a row through `e`: the pool, or a transaction whose change the row records (so
/// the row commits exactly when the change does).
pub(super) async fn insert_event<'e>(
    e: impl sqlx::PgExecutor<'e>,
    sale: &SaleId,
    kind: &str,
    source: &str,
    detail: &serde_json::Value,
) -> Result<(), Fault> {
    sqlx::query("INSERT INTO sale_events (sale_id, kind, source, detail) VALUES ($1, $2, $3, $4)")
        .bind(sale)
        .bind(kind)
        .bind(source)
        .bind(sqlx::types::Json(detail))
        .execute(e)
        .await?;
    Ok(())
}
