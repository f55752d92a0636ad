//! What the operator's dashboard samples every second (`console::sampler`): one pipelined
//! read for every sale it looks at, whatever the number of dashboards open.

use std::collections::HashSet;

use super::{key, live_and_variants, live_of, time_ms, unexpected, Live, Store, SALES_KEY};
use crate::core::domain::SaleId;
use crate::core::fault::Fault;

/// One sale's numbers at one read.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub live: Live,
    /// Orders Redis accepted that the ledger has not confirmed (the `pending` set).
    pub pending: i64,
    /// Orders Redis holds for the sale (the `used` hash): its growth is the order rate.
    pub orders: i64,
    /// Shoppers whose money is owed back (the `refunds` set: orders the ledger made
    /// `refund_due`), read here so the dashboard needs no Postgres query a second.
    pub refunds: i64,
}

/// A read: Redis's time (ms), the sales the background loops look at (`wr:sales`), and the
/// readings of the sales asked for, in order.
pub struct ConsoleRead {
    pub at_ms: i64,
    pub listed: HashSet<SaleId>,
    pub readings: Vec<Reading>,
}

/// Replies per sale this module adds after `live_and_variants`: SCARD pending, HLEN used and
/// SCARD refunds.
const OWN: usize = 3;

impl Store {
    pub async fn console_read(&self, sales: &[SaleId]) -> Result<ConsoleRead, Fault> {
        let mut pipe = redis::pipe();
        pipe.cmd("TIME").smembers(SALES_KEY);
        for sale in sales {
            live_and_variants(&mut pipe, sale)
                .scard(key(sale, "pending"))
                .hlen(key(sale, "used"))
                .scard(key(sale, "refunds"));
        }
        let mut flat: Vec<redis::Value> = pipe.query_async(&mut self.conn()).await?;
        let rest = flat.split_off(2.min(flat.len()));
        // However many replies `live_and_variants` gives, each sale's chunk ends with ours.
        let per_sale = rest.len().checked_div(sales.len()).unwrap_or(OWN + 1);
        if flat.len() != 2 || per_sale <= OWN || rest.len() != per_sale * sales.len() {
            return Err(unexpected("console_read"));
        }
        let listed: Vec<String> = redis::from_redis_value(flat.pop().expect("two replies"))
            .map_err(|_| unexpected("SMEMBERS"))?;
        let listed: HashSet<SaleId> = super::sale_ids_of(listed).into_iter().collect();
        let (secs, micros): (i64, i64) = redis::from_redis_value(flat.pop().expect("two replies"))
            .map_err(|_| unexpected("TIME"))?;
        let readings = rest
            .chunks(per_sale)
            .map(|c| {
                let (live, own) = c.split_at(per_sale - OWN);
                let live = live_of(live)?;
                let (pending, orders, refunds): (i64, i64, i64) =
                    redis::from_redis_value(redis::Value::Array(own.to_vec()))
                        .map_err(|_| unexpected("console_read"))?;
                Ok(Reading {
                    live,
                    pending,
                    orders,
                    refunds,
                })
            })
            .collect::<Result<_, Fault>>()?;
        Ok(ConsoleRead {
            at_ms: time_ms(secs, micros),
            listed,
            readings,
        })
    }
}
