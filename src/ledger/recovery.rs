//! What recovering a sale Redis lost needs from the ledger (the story is in
//! `crate::recovery`): a consistent snapshot to rebuild from, and the sale's row held while
//! Redis's stock is set from it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use uuid::Uuid;

use super::{Ledger, SaleRow};
use crate::domain::{OrderRecord, ReleasedOrder};
use crate::fault::Fault;

/// A sale whose row this transaction holds (see `Ledger::with_sale_locked`). Reads go through
/// the same connection: the lock holder never waits for the pool that the writers queued on
/// its row are holding.
pub struct LockedSale {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    pub row: SaleRow,
    /// Orders released in the ledger that Redis has not confirmed taking back.
    pub released: Vec<ReleasedOrder>,
}

impl LockedSale {
    /// Of these tickets, the ones with an order in the ledger: ticket → order id.
    pub async fn orders_of(&mut self, tickets: &[String]) -> Result<HashMap<String, Uuid>, Fault> {
        let rows: Vec<(String, Uuid)> = sqlx::query_as(
            "SELECT ticket_id, id FROM orders WHERE sale_id = $1 AND ticket_id = ANY($2)",
        )
        .bind(&self.row.id)
        .bind(tickets)
        .fetch_all(&mut *self.tx)
        .await?;
        Ok(rows.into_iter().collect())
    }
}

/// A sale as the ledger knows it, for rebuilding Redis.
pub struct SaleState {
    pub sale: SaleRow,
    /// Queue id → order record (as checkout.lua writes it) of every live order.
    pub bought: HashMap<String, OrderRecord>,
    /// Queue ids whose orders failed, expired or are due a refund.
    pub lapsed: Vec<String>,
}

impl Ledger {
    /// What Redis needs to rebuild a sale it lost, read from one snapshot: the sale, the
    /// record of every live order by ticket, and the tickets whose orders lapsed.
    pub async fn sale_state(&self, id: &str) -> Result<Option<SaleState>, Fault> {
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
        let orders: Vec<(String, Uuid, i32, DateTime<Utc>, bool)> = sqlx::query_as(
            "SELECT ticket_id, id, quantity, created_at, status IN ('pending_payment', 'paid')
             FROM orders WHERE sale_id = $1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut state = SaleState {
            sale,
            bought: HashMap::new(),
            lapsed: Vec::new(),
        };
        for (ticket, order_id, quantity, at, live) in orders {
            if live {
                let rec = OrderRecord {
                    order_id,
                    quantity,
                    at,
                };
                state.bought.insert(ticket, rec);
            } else {
                state.lapsed.push(ticket);
            }
        }
        Ok(Some(state))
    }

    /// Runs `f` while holding the sale's row lock: no order commits and no hold expires for
    /// this sale meanwhile, so what `f` reads of the ledger stays true until it is done.
    /// None if the ledger has no such sale.
    pub async fn with_sale_locked<T, F>(&self, id: &str, f: F) -> Result<Option<T>, Fault>
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
            "SELECT ticket_id, id, quantity FROM orders WHERE sale_id = $1 AND restock_due",
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
