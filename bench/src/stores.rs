//! Straight to Redis and Postgres: the correctness checks trust the stores, not the API, and
//! the bench removes the sales it made so repeated runs do not slow every later ticker.

use std::collections::HashSet;

use anyhow::{Context, Result};
use redis::AsyncCommands;
use sqlx::postgres::{PgPool, PgPoolOptions};
use uuid::Uuid;

pub struct Stores {
    pub redis: redis::Client,
    pub pg: PgPool,
}

/// What the ledger says about one sale, against the orders the API accepted.
#[derive(Debug, Default)]
pub struct LedgerCheck {
    pub units: i64,
    /// `sales.sold` in Postgres.
    pub sold: i64,
    /// Orders in Postgres holding units (pending payment or paid).
    pub live_orders: i64,
    /// Units beyond `units`: in Postgres, in accepted orders, or as negative Redis stock.
    pub oversold: u64,
    /// Accepted (2xx) order ids that Postgres does not have.
    pub lost: u64,
}

impl Stores {
    pub async fn connect(redis_url: &str, database_url: &str) -> Result<Self> {
        let redis = redis::Client::open(redis_url).context("WAITROOM_REDIS_URL")?;
        let pg = PgPoolOptions::new()
            .max_connections(2)
            .connect(database_url)
            .await
            .with_context(|| format!("connect to Postgres at {database_url}"))?;
        Ok(Self { redis, pg })
    }

    pub async fn redis_conn(&self) -> Result<redis::aio::MultiplexedConnection> {
        Ok(self.redis.get_multiplexed_async_connection().await?)
    }

    pub async fn check_ledger(&self, sale: &str, accepted: &[Uuid]) -> Result<LedgerCheck> {
        let (units, sold): (i32, i32) =
            sqlx::query_as("SELECT units, sold FROM sales WHERE id = $1")
                .bind(sale)
                .fetch_one(&self.pg)
                .await
                .with_context(|| format!("sale {sale} in Postgres"))?;
        let rows: Vec<(Uuid, String, i32)> =
            sqlx::query_as("SELECT id, status, quantity FROM orders WHERE sale_id = $1")
                .bind(sale)
                .fetch_all(&self.pg)
                .await?;
        let in_pg: HashSet<Uuid> = rows.iter().map(|r| r.0).collect();
        let live_units: i64 = rows
            .iter()
            .filter(|r| r.1 == "pending_payment" || r.1 == "paid")
            .map(|r| r.2 as i64)
            .sum();
        let accepted: HashSet<Uuid> = accepted.iter().copied().collect();
        let lost = accepted.difference(&in_pg).count() as u64;
        let stock: Option<i64> = self
            .redis_conn()
            .await?
            .get(format!("wr:{{{sale}}}:stock"))
            .await?;
        let units = units as i64;
        let most_sold = (sold as i64).max(live_units).max(accepted.len() as i64);
        let oversold = (most_sold - units).max(0) + (-stock.unwrap_or(0)).max(0);
        Ok(LedgerCheck {
            units,
            sold: sold as i64,
            live_orders: rows.len() as i64,
            oversold: oversold as u64,
            lost,
        })
    }

    /// Units sold beyond any variant's units, in Postgres (by its live orders) or in Redis
    /// (a size's stock below zero): 0 when every size sold at most what it had.
    pub async fn variants_oversold(&self, sale: &str) -> Result<u64> {
        let over: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(greatest(held - units, 0)), 0)::bigint FROM (
                SELECT v.units, (SELECT coalesce(sum(quantity), 0) FROM orders o
                                 WHERE o.sale_id = v.sale_id AND o.variant_id = v.variant_id
                                   AND o.status IN ('pending_payment', 'paid')) AS held
                FROM sale_variants v WHERE v.sale_id = $1) t",
        )
        .bind(sale)
        .fetch_one(&self.pg)
        .await?;
        let left: std::collections::HashMap<String, i64> = self
            .redis_conn()
            .await?
            .hgetall(format!("wr:{{{sale}}}:vstock"))
            .await?;
        let below: i64 = left.values().map(|n| (-n).max(0)).sum();
        Ok((over + below) as u64)
    }

    /// Retires the bench's sales: marked finished in Postgres first (the audit trail is
    /// append-only, so the rows stay in the bench's own database), so no running instance
    /// rebuilds one in Redis from the ledger after its keys are gone; then the keys go.
    pub async fn cleanup(&self, sales: &[String]) -> Result<()> {
        if sales.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE sales SET finished_at = now() WHERE id = ANY($1) AND finished_at IS NULL",
        )
        .bind(sales)
        .execute(&self.pg)
        .await?;
        let mut r = self.redis_conn().await?;
        for sale in sales {
            let keys: Vec<String> = r.keys(format!("wr:{{{sale}}}:*")).await?;
            if !keys.is_empty() {
                let _: () = r.del(keys).await?;
            }
            let _: () = r.srem("wr:sales", sale).await?;
        }
        Ok(())
    }
}
