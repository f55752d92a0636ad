//! Postgres: the sales table and the order ledger, the authority on what was sold.
//!
//! Every statement keeps `sales.sold` equal to the units held by live orders (pending payment
//! or paid), and the `sold_within_units` CHECK refuses any write that would oversell, so this
//! is a second line of defence behind checkout.lua, not a second counter to trust less.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use std::collections::HashMap;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, oneshot, Mutex};
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
    /// The admission ticket's jti (= queue id) that bought it.
    #[serde(skip)]
    pub ticket_id: String,
    pub status: String,
    pub quantity: i32,
    pub amount_cents: i64,
    /// Unix milliseconds, like every other time the API gives.
    #[serde(with = "chrono::serde::ts_milliseconds")]
    pub hold_expires_at: DateTime<Utc>,
    #[serde(skip)]
    pub created_at: DateTime<Utc>,
}

impl Order {
    /// The order as checkout.lua records it in Redis's `used` hash.
    pub fn record(&self) -> OrderRecord {
        OrderRecord {
            order_id: self.id,
            quantity: self.quantity,
            at: self.created_at,
        }
    }

    /// The order as a release gives its units back.
    pub fn released(&self) -> Released {
        Released {
            ticket: self.ticket_id.clone(),
            order_id: self.id,
            quantity: self.quantity,
        }
    }

    /// Still holding its units: awaiting payment or paid.
    pub fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "pending_payment" | "paid")
    }
}

/// Units lapsed or failed orders of one sale give back, and their sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub sale: String,
    pub orders: Vec<Released>,
    pub units: i64,
}

/// A sale whose row this transaction holds (see `Ledger::with_sale_locked`). Reads go through
/// the same connection: the lock holder never waits for the pool that the writers queued on
/// its row are holding.
pub struct LockedSale {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    pub row: SaleRow,
    /// Orders released in the ledger that Redis has not confirmed taking back.
    pub released: Vec<Released>,
}

impl LockedSale {
    /// Of these tickets, the ones with an order in the ledger: ticket → order id.
    pub async fn orders_of(
        &mut self,
        tickets: &[String],
    ) -> Result<HashMap<String, Uuid>, AppError> {
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

/// One order the ledger released: the ticket that bought it, its id and its units.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Released {
    #[sqlx(rename = "ticket_id")]
    pub ticket: String,
    #[sqlx(rename = "id")]
    pub order_id: Uuid,
    pub quantity: i32,
}

/// An order as checkout.lua recorded it in Redis: `<order id>:<qty>:<ms>`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRecord {
    pub order_id: Uuid,
    pub quantity: i32,
    pub at: DateTime<Utc>,
}

impl std::fmt::Display for OrderRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.at.timestamp_millis();
        write!(f, "{}:{}:{ms}", self.order_id, self.quantity)
    }
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

/// A sale as the ledger knows it, for rebuilding Redis.
pub struct SaleState {
    pub sale: SaleRow,
    /// Queue id → order record (as checkout.lua writes it) of every live order.
    pub bought: HashMap<String, String>,
    /// Queue ids whose orders failed, expired or are due a refund.
    pub lapsed: Vec<String>,
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
    pub released: Option<Release>,
}

#[derive(Clone)]
pub struct Ledger {
    pool: PgPool,
    writer: mpsc::Sender<Job>,
}

/// One order waiting for the group writer.
struct Job {
    sale: String,
    ticket: String,
    rec: OrderRecord,
    reply: oneshot::Sender<Result<Recorded, AppError>>,
    queued: std::time::Instant,
}

impl Job {
    /// Answers 503 instead of writing an order that waited past `WRITE_DEADLINE` (None), or
    /// hands the job back to be written.
    fn give_up_if_late(self) -> Option<Self> {
        if self.queued.elapsed() <= WRITE_DEADLINE {
            return Some(self);
        }
        let late = AppError::unavailable("the ledger is slow; the order was not confirmed");
        let _ = self.reply.send(Err(late));
        None
    }
}

/// A statement gives up after this: a slow Postgres is an outage too.
const STATEMENT_TIMEOUT_SECS: u64 = 5;
const ACQUIRE_TIMEOUT_SECS: u64 = 3;
const WRITE_DEADLINE_SECS: u64 = 6;
/// An order still waiting for a writer this long after Redis accepted it is answered 503
/// and not written by that request (the ledger sync writes it later if Redis still has it).
const WRITE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(WRITE_DEADLINE_SECS);
/// No order commits later than this after Redis accepted it: the wait for a writer, then a
/// connection, then the statement. A sale Redis lost is settled only after this.
pub const LATEST_COMMIT: std::time::Duration = std::time::Duration::from_secs(
    WRITE_DEADLINE_SECS + ACQUIRE_TIMEOUT_SECS + STATEMENT_TIMEOUT_SECS,
);

/// Batches in flight at once: while one commits, the next collects.
const WRITERS: usize = 2;
const MAX_BATCH: usize = 512;

impl Ledger {
    /// A lazy pool: the app starts (and answers 503) while Postgres is still down. A slow
    /// Postgres is an outage too: statements give up after 5 s so a checkout answers 503
    /// (the order stays pending in Redis) instead of hanging.
    pub fn connect_lazy(url: &str, size: u32) -> Result<Self, sqlx::Error> {
        let timeout = format!("{STATEMENT_TIMEOUT_SECS}s");
        let options = PgConnectOptions::from_str(url)?.options([("statement_timeout", timeout)]);
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .acquire_timeout(std::time::Duration::from_secs(ACQUIRE_TIMEOUT_SECS))
            .connect_lazy_with(options);
        let (writer, jobs) = mpsc::channel(8192);
        let jobs = std::sync::Arc::new(Mutex::new(jobs));
        for _ in 0..WRITERS {
            tokio::spawn(group_writer(pool.clone(), jobs.clone()));
        }
        Ok(Self { pool, writer })
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
        Ok(
            sqlx::query_as("SELECT * FROM sales ORDER BY created_at DESC LIMIT 200")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// Writes the order Redis accepted, raising `sold` in the same statement. Idempotent on
    /// (sale, ticket): a second call returns the first call's order and changes nothing.
    ///
    /// Every order raises the same `sales` row, so one statement per order would serialise
    /// on that row lock and its commit (about 1,700 orders/s here). Concurrent orders are
    /// therefore written together, one statement and one commit per batch (group commit).
    pub async fn record(
        &self,
        sale: &str,
        ticket: &str,
        rec: &OrderRecord,
    ) -> Result<Recorded, AppError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            sale: sale.to_string(),
            ticket: ticket.to_string(),
            rec: rec.clone(),
            reply,
            queued: std::time::Instant::now(),
        };
        if self.writer.send(job).await.is_err() {
            return Err(AppError::unavailable("the order writer has stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(AppError::unavailable("the order writer has stopped")))
    }

    /// Released orders whose units Redis has not confirmed taking back, untouched for
    /// `min_age_secs` (younger ones are still being released by their own request).
    pub async fn restocks_due(&self, min_age_secs: f64) -> Result<Vec<Release>, AppError> {
        let rows: Vec<(String, String, Uuid, i32)> = sqlx::query_as(
            "SELECT sale_id, ticket_id, id, quantity FROM orders
             WHERE restock_due AND updated_at < now() - make_interval(secs => $1)
             ORDER BY sale_id LIMIT 1000",
        )
        .bind(min_age_secs)
        .fetch_all(&self.pool)
        .await?;
        Ok(group_releases(rows))
    }

    /// Redis took these units back.
    pub async fn restocked(&self, r: &Release) -> Result<(), AppError> {
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

    /// What Redis needs to rebuild a sale it lost, read from one snapshot: the sale, the
    /// record of every live order by ticket, and the tickets whose orders lapsed.
    pub async fn sale_state(&self, id: &str) -> Result<Option<SaleState>, AppError> {
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
                state.bought.insert(ticket, rec.to_string());
            } else {
                state.lapsed.push(ticket);
            }
        }
        Ok(Some(state))
    }

    /// Runs `f` while holding the sale's row lock: no order commits and no hold expires for
    /// this sale meanwhile, so what `f` reads of the ledger stays true until it is done.
    pub async fn with_sale_locked<T, F>(&self, id: &str, f: F) -> Result<T, AppError>
    where
        F: AsyncFnOnce(&mut LockedSale) -> Result<T, AppError>,
    {
        let mut tx = self.pool.begin().await?;
        let row: SaleRow = sqlx::query_as("SELECT * FROM sales WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(AppError::unknown_sale)?;
        // Releases commit under this row lock too, so this list and `sold` agree.
        let released: Vec<Released> = sqlx::query_as(
            "SELECT ticket_id, id, quantity FROM orders WHERE sale_id = $1 AND restock_due",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let mut locked = LockedSale { tx, row, released };
        let out = f(&mut locked).await?;
        locked.tx.commit().await?;
        Ok(out)
    }

    /// The order this ticket made, if any.
    pub async fn order_by_ticket(
        &self,
        sale: &str,
        ticket: &str,
    ) -> Result<Option<Order>, AppError> {
        Ok(order_by_ticket(&self.pool, sale, ticket).await?)
    }

    /// Every sale id (the restore check looks at all of them, however many).
    pub async fn sale_ids(&self) -> Result<Vec<String>, AppError> {
        Ok(sqlx::query_scalar("SELECT id FROM sales")
            .fetch_all(&self.pool)
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

    /// Expires lapsed holds everywhere, returning per sale what to give back to Redis. Safe
    /// on many instances at once: a hold changes status exactly once under its row lock.
    /// One statement per sale, so each locks one `sales` row and can never wait in a cycle
    /// with an order batch or another instance's sweeper.
    pub async fn expire_holds(&self) -> Result<Vec<Release>, AppError> {
        let sales: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT sale_id FROM orders
             WHERE status = 'pending_payment' AND hold_expires_at < now()",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for sale in sales {
            let rows: Vec<(String, String, Uuid, i32)> = sqlx::query_as(
                "WITH e AS (
                    UPDATE orders SET status = 'expired', restock_due = true, updated_at = now()
                    WHERE id IN (SELECT id FROM orders
                                 WHERE sale_id = $1 AND status = 'pending_payment'
                                   AND hold_expires_at < now()
                                 ORDER BY hold_expires_at LIMIT 1000
                                 FOR UPDATE SKIP LOCKED)
                    RETURNING sale_id, ticket_id, id, quantity
                 ), u AS (
                    UPDATE sales SET sold = sold - (SELECT sum(quantity) FROM e)
                    WHERE id = $1 AND EXISTS (SELECT 1 FROM e)
                 )
                 SELECT sale_id, ticket_id, id, quantity FROM e",
            )
            .bind(&sale)
            .fetch_all(&self.pool)
            .await?;
            out.extend(group_releases(rows));
        }
        Ok(out)
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
        let Some(mut order) = sqlx::query_as::<_, Order>(
            "SELECT id, sale_id, ticket_id, status, quantity, amount_cents, hold_expires_at,
                    created_at
             FROM orders WHERE id = $1 FOR UPDATE",
        )
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        // Postgres's clock, the one the hold sweeper goes by.
        let lapsed: bool = sqlx::query_scalar("SELECT $1 < now()")
            .bind(order.hold_expires_at)
            .fetch_one(&mut *tx)
            .await?;
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
            sqlx::query(
                "UPDATE orders SET status = $2, restock_due = restock_due OR $3,
                                   updated_at = now()
                 WHERE id = $1",
            )
            .bind(order_id)
            .bind(status)
            .bind(release)
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
        let released = release.then(|| Release {
            sale: order.sale_id.clone(),
            orders: vec![order.released()],
            units: order.quantity as i64,
        });
        Ok(Some(PaymentOutcome {
            order,
            duplicate: false,
            released,
        }))
    }
}

/// (sale, ticket, order id, quantity) rows sorted by sale, grouped into one release per sale.
fn group_releases(rows: Vec<(String, String, Uuid, i32)>) -> Vec<Release> {
    let mut out: Vec<Release> = Vec::new();
    for (sale, ticket, order_id, quantity) in rows {
        let order = Released {
            ticket,
            order_id,
            quantity,
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

async fn order_by_ticket(
    pool: &PgPool,
    sale: &str,
    ticket: &str,
) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, sale_id, ticket_id, status, quantity, amount_cents, hold_expires_at,
                created_at
         FROM orders WHERE sale_id = $1 AND ticket_id = $2",
    )
    .bind(sale)
    .bind(ticket)
    .fetch_optional(pool)
    .await
}

/// Takes whatever orders are waiting (at most `MAX_BATCH`) and writes them in one statement.
/// Batches grow with load by themselves: orders arriving while one batch commits form the next.
async fn group_writer(pool: PgPool, jobs: std::sync::Arc<Mutex<mpsc::Receiver<Job>>>) {
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
            let err = AppError::from(e);
            for job in batch {
                let _ = job.reply.send(Err(err.clone()));
            }
        }
    }
}

fn is_oversell(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23514"))
}

type MadeOrders = HashMap<(String, String), Order>;

/// Inserts the orders and raises each sale's `sold` by what was inserted, in one statement
/// (one commit). Orders whose ticket already has one are skipped: they are retries.
async fn insert_orders(pool: &PgPool, jobs: &[Job]) -> Result<MadeOrders, sqlx::Error> {
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.rec.order_id).collect();
    let sales: Vec<&str> = jobs.iter().map(|j| j.sale.as_str()).collect();
    let tickets: Vec<&str> = jobs.iter().map(|j| j.ticket.as_str()).collect();
    let qtys: Vec<i32> = jobs.iter().map(|j| j.rec.quantity).collect();
    let ats: Vec<DateTime<Utc>> = jobs.iter().map(|j| j.rec.at).collect();
    let rows = sqlx::query_as::<_, Order>(
        "WITH input AS (
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::timestamptz[])
                AS t(id, sale_id, ticket_id, quantity, at)
         ), o AS (
            INSERT INTO orders (id, sale_id, ticket_id, quantity, amount_cents, status,
                                hold_expires_at, created_at)
            SELECT i.id, s.id, i.ticket_id, i.quantity, s.price_cents * i.quantity,
                   'pending_payment', i.at + make_interval(secs => s.hold_secs), i.at
            FROM input i JOIN sales s ON s.id = i.sale_id
            ON CONFLICT (sale_id, ticket_id) DO NOTHING
            RETURNING id, sale_id, ticket_id, status, quantity, amount_cents, hold_expires_at,
                      created_at
         ), agg AS (
            SELECT sale_id, sum(quantity)::integer AS q FROM o GROUP BY sale_id
         ), u AS (
            UPDATE sales SET sold = sales.sold + agg.q FROM agg WHERE sales.id = agg.sale_id
         )
         SELECT * FROM o",
    )
    .bind(&ids)
    .bind(&sales)
    .bind(&tickets)
    .bind(&qtys)
    .bind(&ats)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|o| ((o.sale_id.clone(), o.ticket_id.clone()), o))
        .collect())
}

/// Replies to each job with the order made now or, for a retry, the order made before.
async fn answer(pool: &PgPool, batch: Vec<Job>, mut made: MadeOrders) {
    for job in batch {
        let result = match made.remove(&(job.sale.clone(), job.ticket.clone())) {
            Some(order) => Ok(Recorded::Order(order)),
            None => match order_by_ticket(pool, &job.sale, &job.ticket).await {
                Ok(Some(order)) => Ok(Recorded::Order(order)),
                Ok(None) => Err(AppError::unknown_sale()),
                Err(e) => Err(e.into()),
            },
        };
        let _ = job.reply.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_records_parse() {
        let id = Uuid::new_v4();
        let r = OrderRecord::parse(&format!("{id}:3:1700000000123")).unwrap();
        assert_eq!(
            (r.order_id, r.quantity, r.at.timestamp_millis()),
            (id, 3, 1700000000123)
        );
        assert_eq!(OrderRecord::parse(&r.to_string()), Some(r));
        assert!(OrderRecord::parse("nope").is_none());
    }
}
