//! Redis's side of recovering a sale it lost (the story is in `flows::recovery`): rebuild it
//! from the ledger's facts, settle its stock, and settle one order the ledger judged.

use std::collections::HashMap;
use std::time::Duration;

use super::scripts::{REBUILD, SETTLE, SETTLE_ORDER};
use super::{cfg_fields, key, time_ms, vunits, Store, SALES_KEY};
use crate::core::domain::{OrderRecord, QueueId, ReleasedOrder, SaleId, SaleSpec, Variant};
use crate::core::fault::Fault;
use crate::infra::ledger::Orders;
use redis::AsyncCommands;

/// What the ledger made of an order Redis accepted, when it was not simply that order.
pub enum Verdict<'a> {
    /// The ledger holds another order for this ticket (Redis had forgotten it): keep it.
    Kept(&'a OrderRecord),
    /// The ledger refused the order: it would have oversold.
    Refused,
}

/// The ledger's side of a settle, read under the sale's row lock.
pub struct Settlement<'a> {
    pub units: i64,
    pub sold: i64,
    pub open: bool,
    pub released: &'a [ReleasedOrder],
    pub orders: &'a Orders,
    pub variants: &'a [Variant],
}

/// Queue id → order record as checkout.lua writes it.
fn encoded(bought: &HashMap<QueueId, OrderRecord>) -> HashMap<&str, String> {
    bought
        .iter()
        .map(|(q, r)| (q.as_str(), r.encode()))
        .collect()
}

/// What Redis holds of a sale, for comparing it with the ledger (`Store::standing`).
#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub present: bool,
    pub unsettled: bool,
    pub open: bool,
    pub stock: i64,
}

/// Per sale: pending orders, unsettled since (ms), stock, ended at (ms).
type SweepReply = (i64, Option<i64>, Option<i64>, Option<i64>);

/// The instances and the time of their last sweep (Redis ms).
const INSTANCES_KEY: &str = "wr:instances";

/// Set when an instance saw Redis restart into `run_id`.
fn restart_key(run_id: &str) -> String {
    format!("wr:restart:{run_id}")
}

/// Instances whose order writes from before the restart that began `run_id` are done.
fn confirmed_key(run_id: &str) -> String {
    format!("wr:restart:{run_id}:confirmed")
}

async fn redis_time_ms(c: &mut super::conn::Conn) -> Result<i64, Fault> {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(c).await?;
    Ok(time_ms(secs, micros))
}

/// What the sweeper has to do for one sale.
#[derive(Debug, Clone, Copy)]
pub struct SweepWork {
    pub pending: bool,
    pub unsettled_due: bool,
    /// Due because every instance confirmed its writes from before the restart, before the
    /// fallback wait: settled without waiting it out.
    pub early: bool,
    /// Sold out with nothing pending or unsettled here: the ledger says if it is finished.
    pub maybe_finished: bool,
}

impl Store {
    /// Rebuilds a lost sale (lua/rebuild.lua) from the ledger's orders, open switch and the
    /// time its closing time ended it, if it did (unix ms). False if it was there already.
    pub async fn rebuild_sale(
        &self,
        spec: &SaleSpec,
        stock: i64,
        orders: &Orders,
        (open, ended_ms): (bool, Option<i64>),
    ) -> Result<bool, Fault> {
        let sale = &spec.id;
        let ttl_ms = i64::from(spec.settings.ticket_ttl_secs) * 1000;
        // Each admission's ticket ends `ticket_ttl_secs` after it was let in.
        let admitted: Vec<(&str, i64)> = orders
            .admitted
            .iter()
            .map(|(qid, at_us)| (qid.as_str(), at_us / 1000 + ttl_ms))
            .collect();
        let mut cfg: HashMap<_, _> = cfg_fields(spec).into_iter().collect();
        if let Some(ms) = ended_ms {
            // The sweeper then finishes it once nothing is held, as before the loss.
            cfg.insert("ended".into(), ms);
        }
        let state = serde_json::json!({
            "cfg": cfg,
            "stock": stock,
            "used": encoded(&orders.bought),
            "lapsed": orders.lapsed,
            "paid": orders.paid,
            "failed": orders.failed,
            "refunds": orders.refunds,
            "admitted": admitted,
            "open": open,
            "vunits": vunits(&spec.settings.variants),
        });
        let mut c = self.conn();
        // Listed first: were this to fail after the rebuild, no later call would list it
        // (they all find the sale present), and the ticker and ledger sync would skip it.
        let _: () = c.sadd(SALES_KEY, sale).await?;
        REBUILD.on(sale).arg(state.to_string()).run(self).await
    }

    /// An admission the ledger knows and Redis lost, for a shopper who never ordered: back in
    /// `admitted` with its ticket's expiry, never in the line. A lapsed one is moved to
    /// `expired` by the next admission tick (admit.lua), on Redis's clock.
    pub async fn restore_admission(
        &self,
        sale: &SaleId,
        qid: &QueueId,
        expires_ms: i64,
    ) -> Result<(), Fault> {
        let _: () = self
            .conn()
            .zadd(key(sale, "admitted"), qid, expires_ms)
            .await?;
        Ok(())
    }

    /// Makes Redis agree with the ledger, read under the sale's row lock: its orders, the
    /// orders it released that Redis has not confirmed, its stock and, for a sale marked
    /// `unsettled`, its open switch (see lua/settle.lua).
    pub async fn settle_sale(
        &self,
        sale: &SaleId,
        ledger: Settlement<'_>,
        settle_after: Duration,
    ) -> Result<i64, Fault> {
        let released: Vec<[String; 2]> = ledger
            .released
            .iter()
            .map(|o| [o.ticket.to_string(), o.order_id.to_string()])
            .collect();
        let args = serde_json::json!({
            "units": ledger.units, "sold": ledger.sold, "open": ledger.open,
            "released": released,
            "bought": encoded(&ledger.orders.bought), "lapsed": ledger.orders.lapsed,
            "paid": ledger.orders.paid,
            "failed": ledger.orders.failed,
            "refunds": ledger.orders.refunds,
            "settle_after_ms": settle_after.as_millis() as u64,
            "vunits": vunits(ledger.variants),
        });
        SETTLE.on(sale).arg(args.to_string()).run(self).await
    }

    /// Makes Redis agree with the ledger's verdict on one ticket (lua/settle_order.lua).
    pub async fn settle_order(
        &self,
        sale: &SaleId,
        qid: &QueueId,
        verdict: Verdict<'_>,
    ) -> Result<i64, Fault> {
        let mut call = SETTLE_ORDER.on(sale);
        call.arg(qid);
        match verdict {
            Verdict::Kept(record) => call.arg("kept").arg(record.encode()),
            Verdict::Refused => call.arg("refused"),
        };
        call.run(self).await
    }

    /// Of these sales, those the sweeper has work for: orders Redis accepted that Postgres has
    /// not confirmed, a rebuild at least `settle_after` old, by Redis's clock, or a sale that
    /// may have finished. One round trip.
    /// `confirmed_at`: when every instance confirmed its writes from before Redis's restart
    /// (`writes_confirmed`); a sale marked unsettled by then is due at once.
    pub async fn needing_sweep(
        &self,
        sales: &[SaleId],
        settle_after: Duration,
        confirmed_at: Option<i64>,
    ) -> Result<Vec<(SaleId, SweepWork)>, Fault> {
        if sales.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        for sale in sales {
            pipe.scard(key(sale, "pending"))
                .get(key(sale, "unsettled"))
                .get(key(sale, "stock"))
                .hget(key(sale, "cfg"), "ended");
        }
        let mut reply: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let rest = reply.split_off(1);
        let bad = |_| super::unexpected("needing_sweep");
        let (secs, micros): (i64, i64) =
            redis::from_redis_value(reply.pop().ok_or_else(|| super::unexpected("TIME"))?)
                .map_err(bad)?;
        let now_ms = time_ms(secs, micros);
        let replies: Vec<SweepReply> =
            redis::from_redis_value(redis::Value::Array(rest)).map_err(bad)?;
        Ok(sales
            .iter()
            .zip(replies)
            .map(|(sale, (pending, since, stock, ended))| {
                let waited = since.is_some_and(|t| now_ms - t >= settle_after.as_millis() as i64);
                let early = !waited && since.zip(confirmed_at).is_some_and(|(t, c)| t <= c);
                let work = SweepWork {
                    pending: pending > 0,
                    unsettled_due: waited || early,
                    early,
                    maybe_finished: pending == 0
                        && since.is_none()
                        && (stock.is_some_and(|s| s <= 0) || ended.is_some()),
                };
                (sale.clone(), work)
            })
            .filter(|(_, w)| w.pending || w.unsettled_due || w.maybe_finished)
            .collect())
    }

    /// This instance is alive (`wr:instances`: instance → Redis time of its last sweep, ms).
    pub async fn heartbeat(&self, instance: &str) -> Result<(), Fault> {
        let mut c = self.conn();
        let now = redis_time_ms(&mut c).await?;
        let _: () = redis::pipe()
            .zadd(INSTANCES_KEY, instance, now)
            .ignore()
            // Instances gone for a day are forgotten.
            .zrembyscore(INSTANCES_KEY, "-inf", now - 86_400_000)
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// An instance saw Redis restart into `run_id`: confirmations of writes count from now on.
    pub async fn declare_restart(&self, run_id: &str) -> Result<(), Fault> {
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::EX(86_400));
        let _: Option<String> = self
            .conn()
            .set_options(restart_key(run_id), 1, opts)
            .await?;
        Ok(())
    }

    /// Whether an instance saw Redis restart into `run_id` (`declare_restart`).
    pub async fn restart_declared(&self, run_id: &str) -> Result<bool, Fault> {
        Ok(self.conn().exists(restart_key(run_id)).await?)
    }

    /// This instance's order writes from before Redis's restart (`run_id`) are all done.
    pub async fn confirm_writes(&self, run_id: &str, instance: &str) -> Result<(), Fault> {
        let mut c = self.conn();
        let now = redis_time_ms(&mut c).await?;
        let key = confirmed_key(run_id);
        let _: () = redis::pipe()
            .zadd(&key, instance, now)
            .ignore()
            .expire(&key, 86_400)
            .ignore()
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// When every instance alive within `window` has confirmed its writes from before the
    /// restart that began `run_id`: the last confirmation's time (ms). None while one has not
    /// (it may still be writing: the settle waits for its fallback then).
    pub async fn writes_confirmed(
        &self,
        run_id: &str,
        window: Duration,
    ) -> Result<Option<i64>, Fault> {
        let mut c = self.conn();
        if !self.restart_declared(run_id).await? {
            return Ok(None);
        }
        let now = redis_time_ms(&mut c).await?;
        let since = now - window.as_millis() as i64;
        let alive: Vec<String> = c.zrangebyscore(INSTANCES_KEY, since, "+inf").await?;
        let confirmed: Vec<(String, i64)> =
            c.zrange_withscores(confirmed_key(run_id), 0, -1).await?;
        let all = alive.iter().all(|i| confirmed.iter().any(|(c, _)| c == i));
        Ok(all
            .then(|| confirmed.iter().map(|(_, t)| *t).max())
            .flatten())
    }

    /// Redis's identity: `run_id` changes with every restart, so an instance that sees it
    /// change knows Redis may have come back from an AOF missing its last second. On a cluster,
    /// every node's (the client asks them all), so a failover changes it too.
    pub async fn run_id(&self) -> Result<String, Fault> {
        let reply: redis::Value = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.conn())
            .await?;
        let replies = match reply {
            redis::Value::Map(nodes) => nodes.into_iter().map(|(_, info)| info).collect(),
            info => vec![info],
        };
        let mut ids = Vec::with_capacity(replies.len());
        for info in replies {
            let info: String =
                redis::from_redis_value(info).map_err(|_| super::unexpected("INFO server"))?;
            let id = info.lines().find_map(|l| l.strip_prefix("run_id:"));
            ids.push(
                id.ok_or_else(|| super::unexpected("INFO server"))?
                    .trim()
                    .to_string(),
            );
        }
        ids.sort_unstable();
        Ok(ids.join(","))
    }

    /// Scripts gone: Redis restarted, failed over or was flushed, and may have lost its last
    /// writes. Every sale it has is marked `unsettled` (checkouts answer 503 until a settle
    /// has reconciled it with the ledger) before the scripts come back, so no script runs
    /// against a stock that went back in time unmarked.
    pub async fn scripts_lost(&self) -> Result<(), Fault> {
        let sales = self.sale_ids().await?;
        self.mark_unsettled(&sales).await?;
        // A Redis with no sales (a fresh one, at every first start) has nothing to hold.
        if sales.is_empty() {
            tracing::info!("redis has no scripts and no sales; loading the scripts");
        } else {
            tracing::warn!(
                sales = sales.len(),
                "redis lost its scripts (restart or failover): sales held until reconciled"
            );
        }
        self.load_scripts().await
    }

    /// Marks these sales `unsettled` from now (by Redis's clock) unless they are already, and
    /// tells the hubs to drop their buyer lists.
    pub async fn mark_unsettled(&self, sales: &[SaleId]) -> Result<(), Fault> {
        if sales.is_empty() {
            return Ok(());
        }
        let mut c = self.conn();
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut c).await?;
        let now = time_ms(secs, micros);
        let mut pipe = redis::pipe();
        for sale in sales {
            pipe.set_options(
                key(sale, "unsettled"),
                now,
                redis::SetOptions::default().conditional_set(redis::ExistenceCheck::NX),
            )
            .ignore()
            .cmd("SPUBLISH")
            .arg(key(sale, "events"))
            .arg(r#"{"type":"unsettled"}"#)
            .ignore();
        }
        let _: () = pipe.query_async(&mut c).await?;
        Ok(())
    }

    /// What Redis holds of these sales, in one round trip.
    pub async fn standing(&self, sales: &[SaleId]) -> Result<Vec<Held>, Fault> {
        if sales.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for sale in sales {
            pipe.exists(key(sale, "cfg"))
                .exists(key(sale, "unsettled"))
                .get(key(sale, "open"))
                .get(key(sale, "stock"));
        }
        let rows: Vec<(bool, bool, Option<String>, Option<i64>)> =
            pipe.query_async(&mut self.conn()).await?;
        Ok(rows
            .into_iter()
            .map(|(present, unsettled, open, stock)| Held {
                present,
                unsettled,
                open: open.as_deref() == Some("1"),
                stock: stock.unwrap_or(0),
            })
            .collect())
    }

    pub async fn stock(&self, sale: &SaleId) -> Result<Option<i64>, Fault> {
        Ok(self.conn().get(key(sale, "stock")).await?)
    }
}
