//! The deliveries' statements: fan-out from `outbox`, the claim, an attempt's outcome, the
//! admin's view and replay, and the backlog the metrics report.
//!
//! The ordering rule lives in `claim`: a delivery of an order is not due while an earlier
//! (lower seq) event of the same order is still pending to the same endpoint, or not yet
//! fanned out at all. One order's events get their seqs in commit order (its row lock
//! serialises them), so this sends them in the order they happened.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{secs, Webhooks};
use crate::core::fault::Fault;

/// A delivery claimed for one attempt, with what signing and sending it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub url: String,
    pub secret: String,
    /// The rotated-out secret while it still signs.
    pub previous_secret: Option<String>,
    /// The outbox row's `data` and `created_at`.
    pub data: sqlx::types::Json<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

/// One delivery as the admin API shows it.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct DeliveryRow {
    pub seq: i64,
    pub event_id: Uuid,
    #[sqlx(rename = "event_type")]
    #[serde(rename = "type")]
    pub event_type: String,
    pub order_id: Option<Uuid>,
    /// pending, paused (its endpoint is disabled), delivered or failed (given up).
    pub state: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When a pending delivery is tried next (while claimed: when the claim lapses).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Deliveries not yet delivered nor given up, over all endpoints.
#[derive(Debug, Clone, Copy, Default, sqlx::FromRow)]
pub struct Backlog {
    pub pending: i64,
    /// Age of the oldest, in seconds (0 with none).
    pub oldest_secs: f64,
}

/// A matching endpoint's filters, as SQL over `e` (endpoint) and `o` (outbox row).
const MATCHES: &str = "(cardinality(e.events) = 0 OR o.type = ANY (e.events))
     AND (cardinality(e.sales) = 0 OR o.sale_id = ANY (e.sales))";

impl Webhooks {
    /// Fans out up to `batch` events not fanned out yet, lowest seq first: a delivery for each
    /// enabled endpoint whose filters take it, and the rows marked, in one statement (`made`
    /// runs though nothing reads it: Postgres runs every data-modifying WITH). Rows another
    /// instance is fanning out are skipped. How many rows were fanned out.
    pub async fn fan_out(&self, batch: i64) -> Result<i64, Fault> {
        let sql = format!(
            "WITH o AS (
                SELECT seq, id, type, sale_id, order_id FROM outbox
                WHERE NOT fanned_out ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
             ), made AS (
                INSERT INTO webhook_deliveries (endpoint_id, seq, event_id, event_type, order_id)
                SELECT e.id, o.seq, o.id, o.type, o.order_id
                FROM o JOIN webhook_endpoints e ON e.enabled AND {MATCHES}
                ORDER BY o.seq
                ON CONFLICT (endpoint_id, seq) DO NOTHING
                RETURNING 1
             ), done AS (
                UPDATE outbox SET fanned_out = true FROM o WHERE outbox.seq = o.seq RETURNING 1
             )
             SELECT count(*) FROM done"
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(batch)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Claims up to `limit` due deliveries for one attempt each: counts the attempt and
    /// pushes `next_attempt_at` `lease` ahead in the same statement, so the HTTP call runs
    /// outside any transaction and, if this instance dies mid-attempt, another takes the
    /// delivery once the lease passes. Locked rows (another instance's claim) are skipped.
    pub async fn claim(&self, limit: i64, lease: Duration) -> Result<Vec<Claimed>, Fault> {
        Ok(sqlx::query_as(
            "WITH due AS (
                SELECT d.id FROM webhook_deliveries d
                JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.enabled
                WHERE d.state = 'pending' AND d.next_attempt_at <= now()
                  AND (d.order_id IS NULL OR (
                    NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                                WHERE p.endpoint_id = d.endpoint_id AND p.order_id = d.order_id
                                  AND p.state = 'pending' AND p.seq < d.seq)
                    AND NOT EXISTS (SELECT 1 FROM outbox u
                                    WHERE u.order_id = d.order_id AND NOT u.fanned_out
                                      AND u.seq < d.seq)))
                ORDER BY d.next_attempt_at, d.seq
                LIMIT $1
                FOR UPDATE OF d SKIP LOCKED
             )
             UPDATE webhook_deliveries w
             SET attempts = w.attempts + 1, last_attempt_at = now(),
                 next_attempt_at = now() + $2 * interval '1 second'
             FROM due, outbox o, webhook_endpoints e
             WHERE w.id = due.id AND o.seq = w.seq AND e.id = w.endpoint_id
             RETURNING w.id, w.endpoint_id, w.event_id, w.event_type, w.attempts, e.url,
                 e.secret,
                 CASE WHEN e.previous_until > now() THEN e.previous_secret END AS previous_secret,
                 o.data, o.created_at",
        )
        .bind(limit)
        .bind(secs(lease))
        .fetch_all(&self.pool)
        .await?)
    }

    /// A 2xx came back.
    pub async fn delivered(&self, id: i64, status: u16) -> Result<(), Fault> {
        sqlx::query(
            "UPDATE webhook_deliveries
             SET state = 'delivered', delivered_at = now(), last_status = $2, last_error = NULL
             WHERE id = $1",
        )
        .bind(id)
        .bind(i32::from(status))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A failed attempt: tried again after `retry`, or given up with None.
    pub async fn attempt_failed(
        &self,
        id: i64,
        status: Option<u16>,
        error: &str,
        retry: Option<Duration>,
    ) -> Result<(), Fault> {
        sqlx::query(
            "UPDATE webhook_deliveries
             SET last_status = $2, last_error = $3,
                 state = CASE WHEN $4::float8 IS NULL THEN 'failed' ELSE 'pending' END,
                 next_attempt_at = now() + COALESCE($4, 0) * interval '1 second'
             WHERE id = $1",
        )
        .bind(id)
        .bind(status.map(i32::from))
        .bind(error)
        .bind(retry.map(secs))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The receiver answered 410 Gone: the endpoint is disabled and its pending deliveries,
    /// this one included, wait (`'infinity'`) until it is enabled again.
    pub async fn gone(&self, id: i64, endpoint: Uuid, error: &str) -> Result<(), Fault> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2 WHERE id = $1",
        )
        .bind(endpoint)
        .bind("the receiver answered 410 Gone")
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET last_status = 410, last_error = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = 'infinity'
             WHERE endpoint_id = $1 AND state = 'pending'",
        )
        .bind(endpoint)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An endpoint's latest deliveries (by event, newest first), or one event's.
    pub async fn deliveries(
        &self,
        endpoint: Uuid,
        event: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<DeliveryRow>, Fault> {
        Ok(sqlx::query_as(
            "SELECT seq, event_id, event_type, order_id,
                CASE WHEN state = 'pending' AND next_attempt_at = 'infinity' THEN 'paused'
                     ELSE state END AS state,
                attempts, last_status, last_error, last_attempt_at,
                CASE WHEN state = 'pending' AND next_attempt_at <> 'infinity'
                     THEN next_attempt_at END AS next_attempt_at,
                delivered_at, created_at
             FROM webhook_deliveries
             WHERE endpoint_id = $1 AND ($2::uuid IS NULL OR event_id = $2)
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(endpoint)
        .bind(event)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Queues events again for one endpoint, from the first attempt: the event `event`, or
    /// up to `limit` events since `since` that its filters take. Events it never had a
    /// delivery for get one. A disabled endpoint's wait until it is enabled. How many.
    pub async fn replay(
        &self,
        endpoint: Uuid,
        event: Option<Uuid>,
        since: Option<DateTime<Utc>>,
        limit: i64,
    ) -> Result<u64, Fault> {
        let sql = format!(
            "INSERT INTO webhook_deliveries
                (endpoint_id, seq, event_id, event_type, order_id, next_attempt_at)
             SELECT e.id, o.seq, o.id, o.type, o.order_id,
                 CASE WHEN e.enabled THEN now() ELSE 'infinity' END
             FROM webhook_endpoints e JOIN outbox o ON {MATCHES}
             WHERE e.id = $1 AND ($2::uuid IS NULL OR o.id = $2)
               AND ($3::timestamptz IS NULL OR o.created_at >= $3)
             ORDER BY o.seq LIMIT $4
             ON CONFLICT (endpoint_id, seq) DO UPDATE
             SET state = 'pending', attempts = 0, delivered_at = NULL,
                 next_attempt_at = EXCLUDED.next_attempt_at"
        );
        let done = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(endpoint)
            .bind(event)
            .bind(since)
            .bind(limit)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The pending deliveries over every endpoint, for the metrics.
    pub async fn backlog(&self) -> Result<Backlog, Fault> {
        Ok(sqlx::query_as(
            "SELECT count(*) AS pending,
                COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 AS oldest_secs
             FROM webhook_deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?)
    }
}
