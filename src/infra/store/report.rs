//! What the fairness report needs from Redis: how many places were ever taken.

use super::{key, Store};
use crate::core::domain::SaleId;
use crate::core::fault::Fault;

impl Store {
    /// The sale's join count (enqueue.lua's `seq.n`: every new place, never a restored one;
    /// None if Redis does not have it) and Redis's clock (ms), the one tickets expire by.
    pub async fn joined(&self, sale: &SaleId) -> Result<(Option<i64>, i64), Fault> {
        let mut pipe = redis::pipe();
        pipe.cmd("TIME").hget(key(sale, "seq"), "n");
        let ((secs, micros), n): ((i64, i64), Option<i64>) =
            pipe.query_async(&mut self.conn()).await?;
        Ok((n, secs * 1000 + micros / 1000))
    }
}
