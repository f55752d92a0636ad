//! The order table: one order per admission ticket, and what the ledger made of an order
//! Redis accepted.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::Ledger;
use crate::core::domain::{OrderRecord, QueueId, ReleasedOrder, SaleId, VariantId};
use crate::core::fault::Fault;

#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct Order {
    #[serde(rename = "order_id")]
    pub id: Uuid,
    #[serde(skip)]
    pub sale_id: SaleId,
    /// The admission ticket's jti (= queue id) that bought it.
    #[serde(skip)]
    pub ticket_id: QueueId,
    pub status: String,
    pub quantity: i32,
    pub amount_cents: i64,
    /// Unix milliseconds, like every other time the API gives.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub hold_expires_at: DateTime<Utc>,
    #[serde(skip)]
    pub created_at: DateTime<Utc>,
    /// In a sale with variants, the one bought.
    #[sqlx(rename = "variant_id")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<VariantId>,
}

impl Order {
    /// The order as checkout.lua records it in Redis's `used` hash.
    pub fn record(&self) -> OrderRecord {
        OrderRecord {
            order_id: self.id,
            quantity: self.quantity,
            at: self.created_at,
            variant: self.variant.clone(),
        }
    }

    /// The order as a release gives its units back.
    pub fn released(&self) -> ReleasedOrder {
        ReleasedOrder {
            ticket: self.ticket_id.clone(),
            order_id: self.id,
            quantity: self.quantity,
            failed: self.status == "failed",
            variant: self.variant.clone(),
        }
    }

    /// Still holding its units: awaiting payment or paid.
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "pending_payment" | "paid")
    }
}

#[derive(Debug)]
pub enum Recorded {
    /// Written now, or found from an earlier attempt with the same ticket.
    Order(Order),
    /// The ledger refused: it would sell more than the sale's units. Redis's stock was wrong.
    WouldOversell,
}

impl Ledger {
    /// The order this ticket made, if any.
    pub async fn order_by_ticket(
        &self,
        sale: &SaleId,
        ticket: &QueueId,
    ) -> Result<Option<Order>, Fault> {
        Ok(order_by_ticket(&self.pool, sale, ticket).await?)
    }

    /// Live orders of a sale and the units they hold.
    pub async fn orders_count(&self, sale: &SaleId) -> Result<(i64, i64), Fault> {
        Ok(sqlx::query_as(
            "SELECT count(*), coalesce(sum(quantity), 0)::bigint FROM orders
             WHERE sale_id = $1 AND status IN ('pending_payment', 'paid')",
        )
        .bind(sale)
        .fetch_one(&self.pool)
        .await?)
    }
}

pub(super) async fn order_by_ticket<'c>(
    conn: impl sqlx::PgExecutor<'c>,
    sale: &SaleId,
    ticket: &QueueId,
) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, sale_id, ticket_id, status, quantity, amount_cents, hold_expires_at,
                created_at, variant_id
         FROM orders WHERE sale_id = $1 AND ticket_id = $2",
    )
    .bind(sale)
    .bind(ticket)
    .fetch_optional(conn)
    .await
}
