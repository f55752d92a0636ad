//! Postgres: the sales table and the order ledger, the authority on what was sold.
//!
//! Every statement keeps `sales.sold` equal to the units held by live orders (pending payment
//! or paid), and the `sold_within_units` CHECK refuses any write that would oversell, so this
//! is a second line of defence behind checkout.lua, not a second counter to trust less.
//!
//! By flow: `orders` (the order table and the ledger's verdict), `writer` (the group-commit
//! order writer), `payments` (webhook outcomes, hold expiry, releases) and `recovery` (what
//! rebuilding and settling a sale Redis lost needs from here); `webhooks` (outbound endpoints
//! and their deliveries from `outbox`, on a pool of their own).

mod audit;
mod draw;
mod ids;
mod orders;
mod payments;
mod recovery;
mod report;
mod sales;
pub mod webhooks;
mod writer;

pub use audit::AuditRow;
pub use draw::{draw_score, DrawRow, Drawn};
pub use orders::{Order, Recorded};
pub use payments::{Payment, PaymentOutcome, RedisStep, Refunds, Release};
pub use recovery::{LockedSale, Orders, SaleState, Standing};
pub use report::Fairness;
pub use webhooks::Webhooks;

use serde::Serialize;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, Mutex};

use chrono::{DateTime, Utc};

use crate::core::domain::{InvalidInput, SaleId, SaleSpec, Settings};
use crate::core::fault::Fault;

/// A sale as the ledger keeps it: its settings and what it has sold.
#[derive(Debug, Clone, sqlx::FromRow, Serialize)]
pub struct SaleRow {
    pub id: SaleId,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub settings: Settings,
    pub sold: i32,
    /// Last known state of Redis's open switch (see migrations/0004).
    pub open: bool,
    /// When its closing time ended it (migrations/0010): a rebuild restores that.
    #[serde(skip)]
    pub ended_at: Option<DateTime<Utc>>,
}

/// A row reads as its settings (`row.units`), as the table does.
impl std::ops::Deref for SaleRow {
    type Target = Settings;
    fn deref(&self) -> &Settings {
        &self.settings
    }
}

impl SaleRow {
    pub fn spec(&self) -> Result<SaleSpec, InvalidInput> {
        Ok(SaleSpec {
            id: self.id.clone(),
            settings: self.settings.clone(),
        })
    }
}

#[derive(Clone)]
pub struct Ledger {
    pool: PgPool,
    writer: mpsc::Sender<writer::Job>,
    /// Held (shared) by every order write while it is in flight: `earlier_writes_done` takes
    /// it alone to wait them out.
    in_flight: std::sync::Arc<tokio::sync::RwLock<()>>,
}

/// A statement gives up after this: a slow Postgres is an outage too.
const STATEMENT_TIMEOUT_SECS: u64 = 5;
const ACQUIRE_TIMEOUT_SECS: u64 = 3;
const WRITE_DEADLINE_SECS: u64 = 6;
/// An order still waiting for a writer this long after Redis accepted it is answered 503
/// and not written by that request (the ledger sync writes it later if Redis still has it).
pub(super) const WRITE_DEADLINE: std::time::Duration =
    std::time::Duration::from_secs(WRITE_DEADLINE_SECS);
/// No order commits later than this after Redis accepted it: the wait for a writer, then a
/// connection, then the statement. A sale Redis lost is settled only after this.
pub const LATEST_COMMIT: std::time::Duration = std::time::Duration::from_secs(
    WRITE_DEADLINE_SECS + ACQUIRE_TIMEOUT_SECS + STATEMENT_TIMEOUT_SECS,
);
const _: () = assert!(
    LATEST_COMMIT.as_secs() < crate::core::config::SETTLE_AFTER.as_secs(),
    "a rebuilt sale must not be settled before its last order can commit"
);

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
        for _ in 0..writer::WRITERS {
            tokio::spawn(writer::group_writer(pool.clone(), jobs.clone()));
        }
        Ok(Self {
            pool,
            writer,
            in_flight: Default::default(),
        })
    }

    /// Returns once every order write started before this call has committed or given up
    /// (writes started meanwhile wait behind it, for as long as that takes). After a Redis
    /// restart, an instance that passed this knows none of its orders accepted by the old Redis
    /// can still commit (see `recovery::confirm_writes`).
    pub async fn earlier_writes_done(&self) {
        drop(self.in_flight.write().await);
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        sqlx::migrate!("./migrations").run(&self.pool).await
    }

    pub async fn ping(&self) -> Result<(), Fault> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn sale(&self, id: &SaleId) -> Result<Option<SaleRow>, Fault> {
        Ok(sqlx::query_as("SELECT * FROM sales WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    pub async fn sales(&self) -> Result<Vec<SaleRow>, Fault> {
        Ok(
            sqlx::query_as("SELECT * FROM sales ORDER BY created_at DESC LIMIT 200")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The ids of sales not finished (the rebuild sweep looks at these; a finished sale
    /// Redis lost comes back when someone reads it). A sale created in the last few seconds
    /// is left out: its creator writes it to Redis right after the ledger, and a rebuild in
    /// between would mark it `unsettled` (checkouts 503 until a settle) for nothing.
    pub async fn live_sale_ids(&self) -> Result<Vec<SaleId>, Fault> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM sales
             WHERE finished_at IS NULL AND created_at < now() - interval '5 seconds'",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Marks the sale finished if every unit is sold, or its closing time ended it and it is
    /// closed, and no order of it is held or owes a release: then nothing can change. True if it is finished (now or before).
    pub async fn finish(&self, sale: &SaleId) -> Result<bool, Fault> {
        Ok(sqlx::query_scalar(
            "WITH f AS (
                UPDATE sales SET finished_at = now()
                WHERE id = $1 AND finished_at IS NULL
                  AND (sold >= units OR (ended_at IS NOT NULL AND NOT open))
                  AND NOT EXISTS (SELECT 1 FROM orders WHERE sale_id = $1
                                  AND (status = 'pending_payment' OR restock_due))
                RETURNING id
             )
             SELECT EXISTS (SELECT 1 FROM f)
                 OR EXISTS (SELECT 1 FROM sales WHERE id = $1 AND finished_at IS NOT NULL)",
        )
        .bind(sale)
        .fetch_one(&self.pool)
        .await?)
    }

    /// The sale is live again (reopened): the background loops look at it until it finishes.
    pub async fn unfinish(&self, sale: &SaleId) -> Result<(), Fault> {
        sqlx::query(
            "UPDATE sales SET finished_at = NULL WHERE id = $1 AND finished_at IS NOT NULL",
        )
        .bind(sale)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
