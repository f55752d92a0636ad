//! The endpoints' statements. Secrets are read only where a message is signed (`claim`) or
//! shown once (create, rotate); no other query selects them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{secs, Webhooks};
use crate::core::fault::Fault;

/// An endpoint as the admin API shows it: never its secret.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub sales: Vec<String>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// While a rotation's old secret still signs, until when.
    pub previous_until: Option<DateTime<Utc>>,
}

/// How an endpoint's deliveries are going.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Health {
    /// Deliveries not yet delivered nor given up (paused ones included).
    pub pending: i64,
    /// Pending deliveries that have failed at least once.
    pub failing: i64,
    /// Deliveries given up after the last retry.
    pub failed: i64,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct EndpointView {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub endpoint: Endpoint,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub health: Health,
}

pub struct NewEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<String>,
    pub sales: Vec<String>,
    pub secret: String,
}

const COLUMNS: &str = "e.id, e.url, e.description, e.events, e.sales, e.enabled, \
     e.disabled_reason, e.created_at, \
     CASE WHEN e.previous_until > now() THEN e.previous_until END AS previous_until";

/// The view's select: an endpoint and its health, from the indexes on pending, failed and
/// the latest attempt (not a scan of its history).
const VIEW: &str = "SELECT e.id, e.url, e.description, e.events, e.sales, e.enabled,
        e.disabled_reason, e.created_at,
        CASE WHEN e.previous_until > now() THEN e.previous_until END AS previous_until,
        p.pending, p.failing,
        (SELECT count(*) FROM webhook_deliveries f
          WHERE f.endpoint_id = e.id AND f.state = 'failed') AS failed,
        l.last_status, l.last_error, l.last_attempt_at
     FROM webhook_endpoints e
     CROSS JOIN LATERAL (
        SELECT count(*) AS pending, count(*) FILTER (WHERE d.attempts > 0) AS failing
        FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.state = 'pending'
     ) p
     LEFT JOIN LATERAL (
        SELECT d.last_status, d.last_error, d.last_attempt_at FROM webhook_deliveries d
        WHERE d.endpoint_id = e.id AND d.last_attempt_at IS NOT NULL
        ORDER BY d.last_attempt_at DESC LIMIT 1
     ) l ON true";

impl Webhooks {
    pub async fn create_endpoint(&self, e: &NewEndpoint) -> Result<Endpoint, Fault> {
        let sql = format!(
            "INSERT INTO webhook_endpoints AS e (id, url, description, events, sales, secret)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(e.id)
            .bind(&e.url)
            .bind(&e.description)
            .bind(&e.events)
            .bind(&e.sales)
            .bind(&e.secret)
            .fetch_one(&self.pool)
            .await?)
    }

    /// Every endpoint, oldest first, with its health.
    pub async fn endpoints(&self) -> Result<Vec<EndpointView>, Fault> {
        let sql = format!("{VIEW} ORDER BY e.created_at, e.id LIMIT 1000");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?)
    }

    pub async fn endpoint(&self, id: Uuid) -> Result<Option<EndpointView>, Fault> {
        let sql = format!("{VIEW} WHERE e.id = $1");
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// Deletes the endpoint and its deliveries. False if there was none.
    pub async fn delete_endpoint(&self, id: Uuid) -> Result<bool, Fault> {
        let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// A new secret; the current one keeps signing for `overlap` (an older previous one stops
    /// at once). The end of the overlap, or None for an unknown endpoint.
    pub async fn rotate_secret(
        &self,
        id: Uuid,
        secret: &str,
        overlap: std::time::Duration,
    ) -> Result<Option<DateTime<Utc>>, Fault> {
        Ok(sqlx::query_scalar(
            "UPDATE webhook_endpoints
             SET previous_secret = secret, secret = $2,
                 previous_until = now() + $3 * interval '1 second'
             WHERE id = $1 RETURNING previous_until",
        )
        .bind(id)
        .bind(secret)
        .bind(secs(overlap))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Re-enables an endpoint: its paused deliveries are due at once. False if unknown.
    pub async fn enable_endpoint(&self, id: Uuid) -> Result<bool, Fault> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = true, disabled_reason = NULL WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = now()
             WHERE endpoint_id = $1 AND state = 'pending' AND next_attempt_at = 'infinity'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
