//! What recovering a sale Redis lost needs from the ledger (the story is in
//! `flows::recovery`): a consistent snapshot to rebuild from, and the sale's row held while
//! Redis's stock is set from it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use uuid::Uuid;

use super::{Ledger, Order, SaleRow};
use crate::core::domain::{OrderRecord, QueueId, ReleasedOrder, SaleId, VariantId};
use crate::core::fault::Fault;

/// A sale whose row this transaction holds (see `Ledger::with_sale_locked`). Reads go through
/// the same connection: the lock holder never waits for the pool that the writers queued on
/// its row are holding.
pub struct LockedSale {
    pub(super) tx: sqlx::Transaction<'static, sqlx::Postgres>,
    pub row: SaleRow,
    /// Orders released in the ledger that Redis has not confirmed taking back.
    pub released: Vec<ReleasedOrder>,
}

impl LockedSale {
    /// Every order of the sale by ticket, as no order can change while the row is held.
    pub async fn orders(&mut self) -> Result<Orders, Fault> {
        Orders::read(&mut self.tx, &self.row.id).await
    }

    /// The order this ticket made, if any, read under the lock.
    pub async fn order_by_ticket(&mut self, ticket: &QueueId) -> Result<Option<Order>, Fault> {
        Ok(super::orders::order_by_ticket(&mut *self.tx, &self.row.id, ticket).await?)
    }
}

/// A sale's orders by ticket, as Redis keeps them.
#[derive(Default)]
pub struct Orders {
    /// Queue id → order record (as checkout.lua writes it) of every live order.
    pub bought: HashMap<QueueId, OrderRecord>,
    /// Queue ids whose orders failed, expired or are due a refund.
    pub lapsed: Vec<QueueId>,
    /// Queue ids whose orders are paid (no longer held).
    pub paid: Vec<QueueId>,
    /// Queue ids whose payment failed (their shoppers read `failed`).
    pub failed: Vec<QueueId>,
    /// Queue ids whose orders are due a refund (their shoppers read `refund_due`).
    pub refunds: Vec<QueueId>,
    /// Queue ids admitted that never ordered, with their admission time (Redis µs): a lapsed
    /// one must not get its place in line back, a live one still holds its admission.
    pub admitted: Vec<(QueueId, i64)>,
}

/// (ticket, order id, quantity, created at, status, variant).
type OrderRow = (QueueId, Uuid, i32, DateTime<Utc>, String, Option<VariantId>);

impl Orders {
    async fn read(conn: &mut sqlx::PgConnection, sale: &SaleId) -> Result<Self, Fault> {
        let rows: Vec<OrderRow> = sqlx::query_as(
            "SELECT ticket_id, id, quantity, created_at, status, variant_id FROM orders
             WHERE sale_id = $1",
        )
        .bind(sale)
        .fetch_all(&mut *conn)
        .await?;
        let mut orders = Self::default();
        for (ticket, order_id, quantity, at, status, variant) in rows {
            match status.as_str() {
                "paid" => orders.paid.push(ticket.clone()),
                "failed" => orders.failed.push(ticket.clone()),
                "refund_due" => orders.refunds.push(ticket.clone()),
                _ => {}
            }
            if status == "pending_payment" || status == "paid" {
                let rec = OrderRecord {
                    order_id,
                    quantity,
                    at,
                    variant,
                };
                orders.bought.insert(ticket, rec);
            } else {
                orders.lapsed.push(ticket);
            }
        }
        orders.admitted = sqlx::query_as(
            "SELECT queue_id, admitted_us FROM admissions a
             WHERE sale_id = $1 AND NOT EXISTS
                   (SELECT 1 FROM orders o WHERE o.sale_id = a.sale_id AND o.ticket_id = a.queue_id)",
        )
        .bind(sale)
        .fetch_all(conn)
        .await?;
        Ok(orders)
    }
}

/// A sale as the ledger knows it, for rebuilding Redis.
pub struct SaleState {
    pub sale: SaleRow,
    pub orders: Orders,
}

/// What the ledger says of a sale's stock and switch, for comparing Redis with it.
#[derive(sqlx::FromRow)]
pub struct Standing {
    pub id: SaleId,
    pub units: i32,
    pub sold: i32,
    pub open: bool,
}

impl Ledger {
    /// What Redis needs to rebuild a sale it lost, read from one snapshot: the sale, the
    /// record of every live order by ticket, and the tickets whose orders lapsed.
    pub async fn sale_state(&self, id: &SaleId) -> Result<Option<SaleState>, Fault> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let Some(sale) = sqlx::query_as::<_, SaleRow>("SELECT * FROM sales WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let orders = Orders::read(&mut tx, id).await?;
        tx.commit().await?;
        Ok(Some(SaleState { sale, orders }))
    }

    /// When `qid` was admitted to the sale (Redis µs), if it was.
    pub async fn admitted_at(&self, sale: &SaleId, qid: &QueueId) -> Result<Option<i64>, Fault> {
        Ok(sqlx::query_scalar(
            "SELECT admitted_us FROM admissions WHERE sale_id = $1 AND queue_id = $2",
        )
        .bind(sale)
        .bind(qid)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// `units`, `sold` and `open` of these sales, in one statement.
    pub async fn standing(&self, ids: &[SaleId]) -> Result<Vec<Standing>, Fault> {
        Ok(
            sqlx::query_as("SELECT id, units, sold, open FROM sales WHERE id = ANY($1)")
                .bind(ids)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The admin's switch (open or closed), kept. A schedule time already passed is cleared
    /// with it: it fired (its own ledger write may still be retrying) or the admin's switch
    /// overrides it, and either way a rebuild from this row must not arm it again (an opening
    /// time re-armed would reopen a sale the admin closed).
    pub async fn set_open(&self, sale: &SaleId, open: bool) -> Result<(), Fault> {
        sqlx::query(
            "UPDATE sales SET open = $2,
                              ended_at = CASE WHEN $2 THEN NULL ELSE ended_at END,
                              opens_at = CASE WHEN opens_at <= now() THEN NULL ELSE opens_at END,
                              closes_at = CASE WHEN closes_at <= now() THEN NULL ELSE closes_at END
             WHERE id = $1",
        )
        .bind(sale)
        .bind(open)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs `f` while holding the sale's row lock: no order commits and no hold expires for
    /// this sale meanwhile, so what `f` reads of the ledger stays true until it is done.
    /// None if the ledger has no such sale.
    pub async fn with_sale_locked<T, F>(&self, id: &SaleId, f: F) -> Result<Option<T>, Fault>
    where
        F: AsyncFnOnce(&mut LockedSale) -> Result<T, Fault>,
    {
        let mut tx = self.pool.begin().await?;
        let row: Option<SaleRow> = sqlx::query_as("SELECT * FROM sales WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        // Releases commit under this row lock too, so this list and `sold` agree.
        let released: Vec<ReleasedOrder> = sqlx::query_as(
            "SELECT ticket_id, id, quantity, variant_id FROM orders
             WHERE sale_id = $1 AND restock_due",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let mut locked = LockedSale { tx, row, released };
        let out = f(&mut locked).await?;
        locked.tx.commit().await?;
        Ok(Some(out))
    }
}
