//! Payments in the ledger: a provider's verdict applied once per event, holds that lapse, and
//! the units both give back (`restock_due` until Redis confirms it took them).

use uuid::Uuid;

use super::orders::Order;
use super::Ledger;
use crate::core::domain::{EventId, QueueId, ReleasedOrder, SaleId, VariantId};
use crate::core::fault::Fault;

/// Units lapsed or failed orders of one sale give back, and their sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub sale: SaleId,
    pub orders: Vec<ReleasedOrder>,
    pub units: i64,
}

/// Money a sale owes back: orders paid after they lapsed or failed (status `refund_due`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize, sqlx::FromRow)]
pub struct Refunds {
    pub refunds_due: i64,
    pub refund_due_cents: i64,
}

/// What became of a provider's event.
pub enum Payment {
    /// Boxed: an order is large beside the other answers.
    Applied(Box<PaymentOutcome>),
    UnknownOrder,
    /// The event id was first used for another order: nothing is recorded, since one of the
    /// two is the provider's mistake and quietly answering "duplicate" would drop a payment.
    EventReused,
}

pub struct PaymentOutcome {
    pub order: Order,
    pub duplicate: bool,
    /// This event made the order `refund_due`: money arrived for units it no longer holds.
    pub refund_due: bool,
    /// Units to give back to Redis stock after the commit.
    pub released: Option<Release>,
}

/// A step Redis must still take for an order the ledger already changed. Its mark is set in
/// the same statement as the change and cleared once Redis took the step; the sweeper takes
/// the step again for marks left behind (`redis_steps_due`).
#[derive(Debug, Clone, Copy)]
pub enum RedisStep {
    /// paid.lua: the units are sold for good (`orders.paid_due`, migrations/0009).
    Paid,
    /// The shopper's refund marker (`orders.refund_mark_due`, migrations/0011).
    RefundMark,
}

impl RedisStep {
    /// The mark's column: one of two names, never input.
    fn column(self) -> &'static str {
        match self {
            RedisStep::Paid => "paid_due",
            RedisStep::RefundMark => "refund_mark_due",
        }
    }
}

impl Ledger {
    /// Released orders whose units Redis has not confirmed taking back, untouched for
    /// `min_age_secs` (younger ones are still being released by their own request).
    pub async fn restocks_due(&self, min_age_secs: f64) -> Result<Vec<Release>, Fault> {
        let rows: Vec<ReleaseRow> = sqlx::query_as(
            "SELECT sale_id, ticket_id, id, quantity, status = 'failed', variant_id FROM orders
             WHERE restock_due AND updated_at < now() - make_interval(secs => $1)
             ORDER BY sale_id LIMIT 1000",
        )
        .bind(min_age_secs)
        .fetch_all(&self.pool)
        .await?;
        Ok(group_releases(rows))
    }

    /// Orders whose `step` Redis has not confirmed for at least `min_age_secs` (the request
    /// that changed them is done with them by then): the sweeper takes the step again.
    pub async fn redis_steps_due(
        &self,
        step: RedisStep,
        min_age_secs: f64,
    ) -> Result<Vec<Order>, Fault> {
        let sql = format!(
            "SELECT id, sale_id, ticket_id, status, quantity, amount_cents, hold_expires_at,
                    created_at, variant_id
             FROM orders
             WHERE {} AND updated_at < now() - make_interval(secs => $1)
             ORDER BY sale_id LIMIT 1000",
            step.column()
        );
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(min_age_secs)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Redis took `step` for this order.
    pub async fn redis_step_done(&self, step: RedisStep, order_id: Uuid) -> Result<(), Fault> {
        let col = step.column();
        let sql = format!("UPDATE orders SET {col} = false WHERE id = $1 AND {col}");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The refunds a sale owes: how many orders are `refund_due`, and their sum.
    pub async fn refunds(&self, sale: &SaleId) -> Result<Refunds, Fault> {
        Ok(sqlx::query_as(
            "SELECT count(*) AS refunds_due,
                    coalesce(sum(amount_cents), 0)::bigint AS refund_due_cents
             FROM orders WHERE sale_id = $1 AND status = 'refund_due'",
        )
        .bind(sale)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Redis took these units back.
    pub async fn restocked(&self, r: &Release) -> Result<(), Fault> {
        let tickets: Vec<&str> = r.orders.iter().map(|o| o.ticket.as_str()).collect();
        sqlx::query(
            "UPDATE orders SET restock_due = false
             WHERE sale_id = $1 AND ticket_id = ANY($2) AND restock_due",
        )
        .bind(&r.sale)
        .bind(&tickets)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Expires lapsed holds everywhere, returning per sale what to give back to Redis. Safe
    /// on many instances at once: a hold changes status exactly once under its row lock.
    /// One statement per sale, so each locks one `sales` row and can never wait in a cycle
    /// with an order batch or another instance's sweeper.
    pub async fn expire_holds(&self) -> Result<Vec<Release>, Fault> {
        let sales: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT sale_id FROM orders
             WHERE status = 'pending_payment' AND hold_expires_at < now()",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for sale in sales {
            let rows: Vec<ReleaseRow> = sqlx::query_as(
                "WITH e AS (
                    UPDATE orders SET status = 'expired', restock_due = true, updated_at = now()
                    WHERE id IN (SELECT id FROM orders
                                 WHERE sale_id = $1 AND status = 'pending_payment'
                                   AND hold_expires_at < now()
                                 ORDER BY hold_expires_at LIMIT 1000
                                 FOR UPDATE SKIP LOCKED)
                    RETURNING sale_id, ticket_id, id, quantity, variant_id
                 ), u AS (
                    UPDATE sales SET sold = sold - (SELECT sum(quantity) FROM e)
                    WHERE id = $1 AND EXISTS (SELECT 1 FROM e)
                 )
                 SELECT sale_id, ticket_id, id, quantity, false, variant_id FROM e",
            )
            .bind(&sale)
            .fetch_all(&self.pool)
            .await?;
            out.extend(group_releases(rows));
        }
        Ok(out)
    }

    /// Applies a payment provider's verdict once per `event_id`: a redelivery for the same
    /// order is a duplicate, the same id for another order is refused.
    pub async fn apply_payment(
        &self,
        order_id: Uuid,
        event_id: &EventId,
        succeeded: bool,
    ) -> Result<Payment, Fault> {
        let outcome = if succeeded { "succeeded" } else { "failed" };
        let mut tx = self.pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO payment_events (event_id, order_id, outcome) VALUES ($1, $2, $3)
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id.as_str())
        .bind(order_id)
        .bind(outcome)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            let first: Option<Uuid> =
                sqlx::query_scalar("SELECT order_id FROM payment_events WHERE event_id = $1")
                    .bind(event_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            if first != Some(order_id) {
                return Ok(Payment::EventReused);
            }
        }
        let Some(mut order) = sqlx::query_as::<_, Order>(
            "SELECT id, sale_id, ticket_id, status, quantity, amount_cents, hold_expires_at,
                    created_at, variant_id
             FROM orders WHERE id = $1 FOR UPDATE",
        )
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(Payment::UnknownOrder);
        };
        // Postgres's clock, the one the hold sweeper goes by.
        let lapsed: bool = sqlx::query_scalar("SELECT $1 < now()")
            .bind(order.hold_expires_at)
            .fetch_one(&mut *tx)
            .await?;
        if !fresh {
            return Ok(Payment::Applied(Box::new(PaymentOutcome {
                order,
                duplicate: true,
                refund_due: false,
                released: None,
            })));
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
        let refund_due = status == "refund_due" && order.status != status;
        if release {
            // The sale's row before the order's variant's (the status change below moves its
            // `sale_variants` row): the order writer locks them in that order too.
            sqlx::query("UPDATE sales SET sold = sold - $2 WHERE id = $1")
                .bind(&order.sale_id)
                .bind(order.quantity)
                .execute(&mut *tx)
                .await?;
        }
        if status != order.status {
            sqlx::query(
                "UPDATE orders SET status = $2, restock_due = restock_due OR $3,
                                   paid_due = paid_due OR $2 = 'paid',
                                   refund_mark_due = refund_mark_due OR $2 = 'refund_due',
                                   updated_at = now()
                 WHERE id = $1",
            )
            .bind(order_id)
            .bind(status)
            .bind(release)
            .execute(&mut *tx)
            .await?;
            // In the same transaction: a redelivered event changes nothing and writes no row.
            let detail = serde_json::json!({"order_id": order_id, "outcome": outcome,
                "status": status, "variant": order.variant});
            super::audit::insert_event(&mut *tx, &order.sale_id, "payment", "system", &detail)
                .await?;
        }
        if refund_due {
            // A row of its own, so an operator finds every refund owed without reading
            // payment details: what is owed, and why (the hold lapsed, or it had failed).
            let detail = serde_json::json!({
                "order_id": order_id, "amount_cents": order.amount_cents, "quantity": order.quantity,
                "was": order.status, "hold_lapsed": lapsed, "variant": order.variant,
            });
            super::audit::insert_event(&mut *tx, &order.sale_id, "refund_due", "system", &detail)
                .await?;
        }
        tx.commit().await?;
        order.status = status.to_string();
        let released = release.then(|| Release {
            sale: order.sale_id.clone(),
            orders: vec![order.released()],
            units: order.quantity as i64,
        });
        Ok(Payment::Applied(Box::new(PaymentOutcome {
            order,
            duplicate: false,
            refund_due,
            released,
        })))
    }
}

/// (sale, ticket, order id, quantity, payment failed, variant) of an order whose units go back.
type ReleaseRow = (SaleId, QueueId, Uuid, i32, bool, Option<VariantId>);

/// Rows sorted by sale, grouped into one release per sale.
fn group_releases(rows: Vec<ReleaseRow>) -> Vec<Release> {
    let mut out: Vec<Release> = Vec::new();
    for (sale, ticket, order_id, quantity, failed, variant) in rows {
        let order = ReleasedOrder {
            ticket,
            order_id,
            quantity,
            failed,
            variant,
        };
        match out.last_mut() {
            Some(r) if r.sale == sale => {
                r.units += quantity as i64;
                r.orders.push(order);
            }
            _ => out.push(Release {
                sale,
                units: quantity as i64,
                orders: vec![order],
            }),
        }
    }
    out
}
