//! The group-commit order writer: concurrent orders go to Postgres together, one statement
//! and one commit per batch, because every order raises the same `sales` row.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Mutex};
use uuid::Uuid;

use super::orders::{order_by_ticket, Order, Recorded};
use super::{Ledger, WRITE_DEADLINE};
use crate::core::domain::{OrderRecord, QueueId, SaleId};
use crate::core::fault::Fault;

const STOPPED: Fault = Fault::Busy("the order writer has stopped");

impl Ledger {
    /// Writes the order Redis accepted, raising `sold` in the same statement. Idempotent on
    /// (sale, ticket): a second call returns the first call's order and changes nothing.
    ///
    /// Every order raises the same `sales` row, so one statement per order would serialise
    /// on that row lock and its commit (about 1,700 orders/s here). Concurrent orders are
    /// therefore written together, one statement and one commit per batch (group commit).
    pub async fn record(
        &self,
        sale: &SaleId,
        ticket: &QueueId,
        rec: &OrderRecord,
    ) -> Result<Recorded, Fault> {
        let _writing = self.in_flight.read().await;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            sale: sale.clone(),
            ticket: ticket.clone(),
            rec: rec.clone(),
            reply,
            queued: std::time::Instant::now(),
        };
        if self.writer.send(job).await.is_err() {
            return Err(STOPPED);
        }
        answer.await.unwrap_or(Err(STOPPED))
    }
}

/// One order waiting for the group writer.
pub(super) struct Job {
    sale: SaleId,
    ticket: QueueId,
    rec: OrderRecord,
    reply: oneshot::Sender<Result<Recorded, Fault>>,
    queued: std::time::Instant,
}

impl Job {
    /// Answers 503 instead of writing an order that waited past `WRITE_DEADLINE` (None), or
    /// hands the job back to be written.
    fn give_up_if_late(self) -> Option<Self> {
        if self.queued.elapsed() <= WRITE_DEADLINE {
            return Some(self);
        }
        let _ = self.reply.send(Err(Fault::Busy(
            "the ledger is slow; the order was not confirmed",
        )));
        None
    }
}

/// Batches in flight at once: while one commits, the next collects.
pub(super) const WRITERS: usize = 2;
const MAX_BATCH: usize = 512;

/// Takes whatever orders are waiting (at most `MAX_BATCH`) and writes them in one statement.
/// Batches grow with load by themselves: orders arriving while one batch commits form the next.
pub(super) async fn group_writer(pool: PgPool, jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = jobs.lock().await;
            match rx.recv().await {
                Some(job) => batch.push(job),
                None => return,
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
        }
        // One statement per sale: each locks a single `sales` row, so batches spanning
        // several sales cannot lock them in opposite orders and deadlock.
        batch.sort_by(|a, b| (&a.sale, &a.ticket).cmp(&(&b.sale, &b.ticket)));
        while !batch.is_empty() {
            let n = batch.iter().take_while(|j| j.sale == batch[0].sale).count();
            let rest = batch.split_off(n);
            write_batch(&pool, batch).await;
            batch = rest;
        }
    }
}

/// Writes one sale's orders in one statement (one commit), refusing only those that would
/// oversell.
async fn write_batch(pool: &PgPool, batch: Vec<Job>) {
    let batch: Vec<Job> = batch.into_iter().filter_map(Job::give_up_if_late).collect();
    if batch.is_empty() {
        return;
    }
    match insert_orders(pool, &batch).await {
        Ok(made) => answer(pool, batch, made).await,
        // The batch as a whole would oversell: write one by one so only the orders that
        // do not fit are refused.
        Err(e) if is_oversell(&e) => {
            for job in batch.into_iter().filter_map(Job::give_up_if_late) {
                match insert_orders(pool, std::slice::from_ref(&job)).await {
                    Ok(made) => answer(pool, vec![job], made).await,
                    Err(e) if is_oversell(&e) => {
                        let _ = job.reply.send(Ok(Recorded::WouldOversell));
                    }
                    Err(e) => {
                        let _ = job.reply.send(Err(e.into()));
                    }
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "order batch not written");
            for job in batch {
                let _ = job
                    .reply
                    .send(Err(Fault::Busy("the order ledger is unavailable")));
            }
        }
    }
}

fn is_oversell(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23514"))
}

type MadeOrders = HashMap<(SaleId, QueueId), Order>;

/// Inserts the orders and raises each sale's `sold` (and each variant's, in
/// `sale_variants`) by what was inserted, in one statement (one commit). Orders whose ticket already has one are skipped: they are retries.
async fn insert_orders(pool: &PgPool, jobs: &[Job]) -> Result<MadeOrders, sqlx::Error> {
    // A ticket retried at once can be in the batch twice with the same order id: insert it
    // once. A copy in another batch committing at once conflicts on the primary key as well as
    // on the ticket, so the insert skips any conflict (no target); `answer` then finds the
    // order by its ticket.
    let mut seen = std::collections::HashSet::new();
    let jobs: Vec<&Job> = jobs
        .iter()
        .filter(|j| seen.insert((j.sale.as_str(), j.ticket.as_str())))
        .collect();
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.rec.order_id).collect();
    let sales: Vec<&str> = jobs.iter().map(|j| j.sale.as_str()).collect();
    let tickets: Vec<&str> = jobs.iter().map(|j| j.ticket.as_str()).collect();
    let qtys: Vec<i32> = jobs.iter().map(|j| j.rec.quantity).collect();
    let ats: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.rec.at).collect();
    let variants: Vec<Option<&str>> = jobs
        .iter()
        .map(|j| j.rec.variant.as_ref().map(|v| v.as_str()))
        .collect();
    let rows = sqlx::query_as::<_, Order>(
        "WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::timestamptz[],
                                 $6::text[])
                AS t(id, sale_id, ticket_id, quantity, at, variant_id)
         ), o AS (
            INSERT INTO orders (id, sale_id, ticket_id, quantity, amount_cents, status,
                                hold_expires_at, created_at, variant_id)
            SELECT i.id, s.id, i.ticket_id, i.quantity, s.price_cents * i.quantity,
                   'pending_payment', i.at + make_interval(secs => s.hold_secs), i.at,
                   i.variant_id
            FROM input i JOIN sales s ON s.id = i.sale_id
            ON CONFLICT DO NOTHING
            RETURNING id, sale_id, ticket_id, status, quantity, amount_cents, hold_expires_at,
                      created_at, variant_id
         ), agg AS (
            SELECT sale_id, sum(quantity)::integer AS q FROM o GROUP BY sale_id
         ), u AS (
            UPDATE sales SET sold = sales.sold + agg.q FROM agg WHERE sales.id = agg.sale_id
            RETURNING sales.id
         ), vagg AS (
            SELECT sale_id, variant_id, sum(quantity)::integer AS q FROM o
            WHERE variant_id IS NOT NULL GROUP BY sale_id, variant_id
         ), uv AS (
            -- Joined with `u`, so the sale's row is locked before any variant's: every writer
            -- (and a payment, see payments.rs) takes them in that order, and none deadlocks.
            UPDATE sale_variants v SET sold = v.sold + vagg.q FROM vagg JOIN u ON u.id = vagg.sale_id
            WHERE v.sale_id = vagg.sale_id AND v.variant_id = vagg.variant_id
         )
         SELECT * FROM o",
    )
    .bind(&ids)
    .bind(&sales)
    .bind(&tickets)
    .bind(&qtys)
    .bind(&ats)
    .bind(&variants)
    .fetch_all(pool)
    .await?;
    Ok(by_sale_and_ticket(rows))
}

/// Replies to each job with the order made now or, for a retry, the order made before.
async fn answer(pool: &PgPool, batch: Vec<Job>, mut made: MadeOrders) {
    // Retries find the earlier orders in one query per sale, not one per retry: a herd of
    // retried checkouts would otherwise hold the writer past its deadline.
    let retried: Vec<&Job> = batch
        .iter()
        .filter(|j| !made.contains_key(&(j.sale.clone(), j.ticket.clone())))
        .collect();
    let earlier = match retried.first() {
        None => Ok(MadeOrders::new()),
        Some(first) => {
            let tickets: Vec<&QueueId> = retried.iter().map(|j| &j.ticket).collect();
            orders_by_tickets(pool, &first.sale, &tickets).await
        }
    };
    let earlier = match earlier {
        Ok(orders) => orders,
        Err(e) => {
            tracing::warn!(error = %e, "earlier orders not read");
            MadeOrders::new()
        }
    };
    made.extend(earlier);
    for job in batch {
        // `get`, not `remove`: a ticket in the batch twice gets its order both times.
        let result = match made.get(&(job.sale.clone(), job.ticket.clone())).cloned() {
            Some(order) => Ok(Recorded::Order(order)),
            None => match order_by_ticket(pool, &job.sale, &job.ticket).await {
                Ok(Some(order)) => Ok(Recorded::Order(order)),
                Ok(None) => Err(Fault::bug(format!(
                    "sale {} is not in the ledger",
                    job.sale
                ))),
                Err(e) => Err(e.into()),
            },
        };
        let _ = job.reply.send(result);
    }
}

/// The orders these tickets of one sale made, by (sale, ticket).
async fn orders_by_tickets(
    pool: &PgPool,
    sale: &SaleId,
    tickets: &[&QueueId],
) -> Result<MadeOrders, sqlx::Error> {
    let rows: Vec<Order> = sqlx::query_as(
        "SELECT id, sale_id, ticket_id, status, quantity, amount_cents, hold_expires_at,
                created_at, variant_id
         FROM orders WHERE sale_id = $1 AND ticket_id = ANY($2)",
    )
    .bind(sale)
    .bind(tickets)
    .fetch_all(pool)
    .await?;
    Ok(by_sale_and_ticket(rows))
}

fn by_sale_and_ticket(orders: Vec<Order>) -> MadeOrders {
    orders
        .into_iter()
        .map(|o| ((o.sale_id.clone(), o.ticket_id.clone()), o))
        .collect()
}
