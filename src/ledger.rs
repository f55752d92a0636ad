//! Postgres: the sales table and the order ledger, the authority on what was sold.
//!
//! Every statement keeps `sales.sold` equal to the units held by live orders (pending payment
//! or paid), and the `sold_within_units` CHECK refuses any write that would oversell, so this
//! is a second line of defence behind checkout.lua, not a second counter to trust less.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

use crate::domain::SaleSpec;
use crate::error::AppError;

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct SaleRow {
    pub id: String,
    pub name: String,
    pub units: i32,
    pub sold: i32,
    pub price_cents: i64,
    pub rate_per_sec: i32,
    pub ticket_ttl_secs: i32,
    pub max_per_order: i32,
    pub max_active: i32,
    pub hold_secs: i32,
}

impl SaleRow {
    pub fn spec(&self) -> Result<SaleSpec, AppError> {
        Ok(SaleSpec {
            id: crate::domain::SaleId::parse(&self.id)?,
            name: self.name.clone(),
            units: self.units,
            price_cents: self.price_cents,
            rate_per_sec: self.rate_per_sec,
            ticket_ttl_secs: self.ticket_ttl_secs,
            max_per_order: self.max_per_order,
            max_active: self.max_active,
            hold_secs: self.hold_secs,
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Order {
    #[serde(rename = "order_id")]
    pub id: Uuid,
    #[serde(skip)]
    pub sale_id: String,
    pub status: String,
    pub quantity: i32,
    pub amount_cents: i64,
    pub hold_expires_at: DateTime<Utc>,
}

/// An order as checkout.lua recorded it in Redis: `<order id>:<qty>:<ms>`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRecord {
    pub order_id: Uuid,
    pub quantity: i32,
    pub at: DateTime<Utc>,
}

impl OrderRecord {
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.splitn(3, ':');
        let order_id = it.next()?.parse().ok()?;
        let quantity = it.next()?.parse().ok()?;
        let ms: i64 = it.next()?.parse().ok()?;
        Some(Self {
            order_id,
            quantity,
            at: Utc.timestamp_millis_opt(ms).single()?,
        })
    }
}

#[derive(Debug)]
pub enum Recorded {
    /// Written now, or found from an earlier attempt with the same ticket.
    Order(Order),
    /// The ledger refused: it would sell more than the sale's units. Redis's stock was wrong.
    WouldOversell,
}

pub struct PaymentOutcome {
    pub order: Order,
    pub duplicate: bool,
    /// Units to give back to Redis stock after the commit.
    pub released: Option<(String, i64)>,
}

#[derive(Clone)]
pub struct Ledger {
    pool: PgPool,
}

impl Ledger {
    /// A lazy pool: the app starts (and answers 503) while Postgres is still down.
    pub fn connect_lazy(url: &str, size: u32) -> Result<Self, sqlx::Error> {
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(std::time::Duration::from_secs(3))
            .connect_lazy(url)?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("./migrations").run(&self.pool).await
    }

    pub async fn ping(&self) -> Result<(), AppError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Inserts a new sale; false if the id is taken.
    pub async fn insert_sale(&self, s: &SaleSpec) -> Result<bool, AppError> {
        let done = sqlx::query(
            "INSERT INTO sales (id, name, units, price_cents, rate_per_sec, ticket_ttl_secs,
                                max_per_order, max_active, hold_secs)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        )
        .bind(s.id.as_str())
        .bind(&s.name)
        .bind(s.units)
        .bind(s.price_cents)
        .bind(s.rate_per_sec)
        .bind(s.ticket_ttl_secs)
        .bind(s.max_per_order)
        .bind(s.max_active)
        .bind(s.hold_secs)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn sale(&self, id: &str) -> Result<Option<SaleRow>, AppError> {
        Ok(sqlx::query_as("SELECT * FROM sales WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn sales(&self) -> Result<Vec<SaleRow>, AppError> {
        Ok(sqlx::query_as("SELECT * FROM sales ORDER BY created_at DESC LIMIT 200")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Writes the order Redis accepted, raising `sold` in the same statement. Idempotent on
    /// (sale, ticket): a second call returns the first call's order and changes nothing.
    pub async fn record(&self, sale: &str, ticket: &str, rec: &OrderRecord) -> Result<Recorded, AppError> {
        let inserted = sqlx::query_as::<_, Order>(
            "WITH o AS (
                INSERT INTO orders (id, sale_id, ticket_id, quantity, amount_cents, status,
                                    hold_expires_at, created_at)
                SELECT $1, s.id, $3, $4, s.price_cents * $4, 'pending_payment',
                       $5 + make_interval(secs => s.hold_secs), $5
                FROM sales s WHERE s.id = $2
                ON CONFLICT (sale_id, ticket_id) DO NOTHING
                RETURNING id, sale_id, status, quantity, amount_cents, hold_expires_at
             ), u AS (
                UPDATE sales SET sold = sales.sold + o.quantity FROM o WHERE sales.id = o.sale_id
             )
             SELECT * FROM o",
        )
        .bind(rec.order_id)
        .bind(sale)
        .bind(ticket)
        .bind(rec.quantity)
        .bind(rec.at)
        .fetch_optional(&self.pool)
        .await;
        match inserted {
            Ok(Some(order)) => Ok(Recorded::Order(order)),
            Ok(None) => match self.order_by_ticket(sale, ticket).await? {
                Some(order) => Ok(Recorded::Order(order)),
                None => Err(AppError::unknown_sale()),
            },
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23514") => {
                Ok(Recorded::WouldOversell)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn order_by_ticket(&self, sale: &str, ticket: &str) -> Result<Option<Order>, AppError> {
        Ok(sqlx::query_as(
            "SELECT id, sale_id, status, quantity, amount_cents, hold_expires_at
             FROM orders WHERE sale_id = $1 AND ticket_id = $2",
        )
        .bind(sale)
        .bind(ticket)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn orders_count(&self, sale: &str) -> Result<(i64, i64), AppError> {
        Ok(sqlx::query_as(
            "SELECT count(*), coalesce(sum(quantity), 0)::bigint FROM orders
             WHERE sale_id = $1 AND status IN ('pending_payment', 'paid')",
        )
        .bind(sale)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Expires lapsed holds everywhere, returning units per sale to give back to Redis. Safe
    /// on many instances at once: a hold changes status exactly once under its row lock.
    pub async fn expire_holds(&self) -> Result<Vec<(String, i64)>, AppError> {
        Ok(sqlx::query_as(
            "WITH e AS (
                UPDATE orders SET status = 'expired', updated_at = now()
                WHERE id IN (SELECT id FROM orders
                             WHERE status = 'pending_payment' AND hold_expires_at < now()
                             ORDER BY hold_expires_at LIMIT 1000
                             FOR UPDATE SKIP LOCKED)
                RETURNING sale_id, quantity
             ), agg AS (
                SELECT sale_id, sum(quantity)::integer AS q FROM e GROUP BY sale_id
             )
             UPDATE sales SET sold = sales.sold - agg.q FROM agg
             WHERE sales.id = agg.sale_id
             RETURNING sales.id, agg.q::bigint",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Applies a payment provider's verdict once per `event_id`.
    pub async fn apply_payment(
        &self,
        order_id: Uuid,
        event_id: &str,
        succeeded: bool,
    ) -> Result<Option<PaymentOutcome>, AppError> {
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO payment_events (event_id, order_id, outcome) VALUES ($1, $2, $3)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(order_id)
        .bind(if succeeded { "succeeded" } else { "failed" })
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let row: Option<(Order, bool)> = sqlx::query_as::<_, Order>(
            "SELECT id, sale_id, status, quantity, amount_cents, hold_expires_at
             FROM orders WHERE id = $1 FOR UPDATE",
        )
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|o| {
            let lapsed = o.hold_expires_at < Utc::now();
            (o, lapsed)
        });
        let Some((mut order, lapsed)) = row else {
            return Ok(None);
        };
        if !fresh {
            return Ok(Some(PaymentOutcome {
                order,
                duplicate: true,
                released: None,
            }));
        }
        let live = order.status == "pending_payment";
        // A success after the hold lapsed is money for units we may have resold: refund it.
        let (status, release) = match (succeeded, order.status.as_str(), lapsed) {
            (true, "pending_payment", false) => ("paid", false),
            (true, "pending_payment", true) => ("refund_due", true),
            (true, "expired" | "failed", _) => ("refund_due", false),
            (false, "pending_payment", _) => ("failed", true),
            (_, current, _) => (current, false),
        };
        debug_assert!(!release || live);
        if status != order.status {
            sqlx::query("UPDATE orders SET status = $2, updated_at = now() WHERE id = $1")
                .bind(order_id)
                .bind(status)
                .execute(&mut *tx)
                .await?;
        }
        if release {
            sqlx::query("UPDATE sales SET sold = sold - $2 WHERE id = $1")
                .bind(&order.sale_id)
                .bind(order.quantity)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        order.status = status.to_string();
        let released = release.then(|| (order.sale_id.clone(), order.quantity as i64));
        Ok(Some(PaymentOutcome {
            order,
            duplicate: false,
            released,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_records_parse() {
        let id = Uuid::new_v4();
        let r = OrderRecord::parse(&format!("{id}:3:1700000000123")).unwrap();
        assert_eq!((r.order_id, r.quantity, r.at.timestamp_millis()), (id, 3, 1700000000123));
        assert!(OrderRecord::parse("nope").is_none());
    }
}
