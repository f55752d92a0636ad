//! The audit trail's statements: `sale_events` is only ever inserted into.

use serde::Serialize;

use super::Ledger;
use crate::fault::Fault;

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
        sale: &str,
        kind: &str,
        source: &str,
        detail: &serde_json::Value,
    ) -> Result<(), Fault> {
        sqlx::query(
            "INSERT INTO sale_events (sale_id, kind, source, detail) VALUES ($1, $2, $3, $4)",
        )
        .bind(sale)
        .bind(kind)
        .bind(source)
        .bind(sqlx::types::Json(detail))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The sale's rows after id `after`, oldest first.
    pub async fn events(&self, sale: &str, after: i64, limit: i64) -> Result<Vec<AuditRow>, Fault> {
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
