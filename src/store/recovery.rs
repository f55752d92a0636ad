//! Redis's side of recovering a sale it lost (the story is in `crate::recovery`): rebuild it
//! from the ledger's facts, settle its stock, and settle one order the ledger judged.

use std::collections::HashMap;
use std::time::Duration;

use uuid::Uuid;

use super::scripts::{REBUILD, SETTLE, SETTLE_ORDER};
use super::{cfg_fields, key, time_ms, Store, SALES_KEY};
use crate::domain::{OrderRecord, ReleasedOrder, SaleSpec};
use crate::fault::Fault;
use redis::AsyncCommands;

/// What the ledger made of an order Redis accepted, when it was not simply that order.
pub enum Verdict<'a> {
    /// The ledger holds another order for this ticket (Redis had forgotten it): keep it.
    Kept(&'a OrderRecord),
    /// The ledger refused the order: it would have oversold.
    Refused,
}

/// What the sweeper has to do for one sale.
#[derive(Debug, Clone, Copy)]
pub struct SweepWork {
    pub pending: bool,
    pub unsettled_due: bool,
}

impl Store {
    /// Rebuilds a lost sale (lua/rebuild.lua): `used` maps the queue ids that bought to their
    /// order records, `lapsed` lists those whose orders lapsed. False if it was there already.
    pub async fn rebuild_sale(
        &self,
        spec: &SaleSpec,
        stock: i64,
        used: &HashMap<String, OrderRecord>,
        lapsed: &[String],
    ) -> Result<bool, Fault> {
        let sale = spec.id.as_str();
        let used: HashMap<&str, String> =
            used.iter().map(|(q, r)| (q.as_str(), r.encode())).collect();
        let state = serde_json::json!({
            "cfg": cfg_fields(spec).into_iter().collect::<HashMap<_, _>>(),
            "stock": stock,
            "used": used,
            "lapsed": lapsed,
        });
        let mut c = self.conn();
        // Listed first: were this to fail after the rebuild, no later call would list it
        // (they all find the sale present), and the ticker and ledger sync would skip it.
        let _: () = c.sadd(SALES_KEY, sale).await?;
        Ok(REBUILD
            .on(sale)
            .arg(state.to_string())
            .invoke_async(&mut c)
            .await?)
    }

    /// Sets stock from the ledger's `units` and `sold`, read under the sale's row lock, with
    /// the orders it released that Redis has not confirmed and, of the tickets in `pending`,
    /// those Postgres has recorded: ticket → order id (see lua/settle.lua).
    pub async fn settle_sale(
        &self,
        sale: &str,
        units: i64,
        sold: i64,
        released: &[ReleasedOrder],
        recorded: &HashMap<String, Uuid>,
        settle_after: Duration,
    ) -> Result<i64, Fault> {
        let released: Vec<[String; 2]> = released
            .iter()
            .map(|o| [o.ticket.clone(), o.order_id.to_string()])
            .collect();
        let args = serde_json::json!({
            "units": units, "sold": sold, "released": released, "recorded": recorded,
            "settle_after_ms": settle_after.as_millis() as u64,
        });
        Ok(SETTLE
            .on(sale)
            .arg(args.to_string())
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// Makes Redis agree with the ledger's verdict on one ticket (lua/settle_order.lua).
    pub async fn settle_order(
        &self,
        sale: &str,
        qid: &str,
        verdict: Verdict<'_>,
    ) -> Result<i64, Fault> {
        let mut call = SETTLE_ORDER.on(sale);
        call.arg(qid);
        match verdict {
            Verdict::Kept(record) => call.arg("kept").arg(record.encode()),
            Verdict::Refused => call.arg("refused"),
        };
        Ok(call.invoke_async(&mut self.conn()).await?)
    }

    /// Of these sales, those the sweeper has work for: orders Redis accepted that Postgres has
    /// not confirmed, or a rebuild at least `settle_after` old, by Redis's clock. One round trip.
    pub async fn needing_sweep(
        &self,
        sales: &[String],
        settle_after: Duration,
    ) -> Result<Vec<(String, SweepWork)>, Fault> {
        if sales.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("TIME");
        for sale in sales {
            pipe.scard(key(sale, "pending")).get(key(sale, "unsettled"));
        }
        let mut reply: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let rest = reply.split_off(1);
        let bad = |_| super::unexpected("needing_sweep");
        let (secs, micros): (i64, i64) =
            redis::from_redis_value(reply.pop().ok_or_else(|| super::unexpected("TIME"))?)
                .map_err(bad)?;
        let now_ms = time_ms(secs, micros);
        let pairs: Vec<(i64, Option<i64>)> =
            redis::from_redis_value(redis::Value::Array(rest)).map_err(bad)?;
        Ok(sales
            .iter()
            .zip(pairs)
            .map(|(sale, (pending, since))| {
                let work = SweepWork {
                    pending: pending > 0,
                    unsettled_due: since
                        .is_some_and(|t| now_ms - t >= settle_after.as_millis() as i64),
                };
                (sale.clone(), work)
            })
            .filter(|(_, w)| w.pending || w.unsettled_due)
            .collect())
    }
}
