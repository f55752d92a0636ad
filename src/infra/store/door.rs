//! At the door: what the proof-of-work needs from Redis (the places cap lives in the
//! enqueue and admit scripts).

use redis::AsyncCommands;

use super::{key, Store};
use crate::core::domain::SaleId;
use crate::core::fault::Fault;

impl Store {
    /// The sale's `pow_difficulty`; None if Redis does not know the sale.
    pub async fn pow_difficulty(&self, sale: &SaleId) -> Result<Option<u32>, Fault> {
        let (exists, bits): (bool, Option<u32>) = redis::pipe()
            .exists(key(sale, "cfg"))
            .hget(key(sale, "cfg"), "pow_difficulty")
            .query_async(&mut self.conn())
            .await?;
        Ok(exists.then_some(bits.unwrap_or(0)))
    }

    /// Marks a challenge used; false if it was already. The mark outlives the challenge by
    /// a minute so instances whose clocks disagree a little still refuse a second use.
    pub async fn claim_challenge(
        &self,
        sale: &SaleId,
        id: &str,
        ttl_ms: i64,
    ) -> Result<bool, Fault> {
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX((ttl_ms.max(0) + 60_000) as u64));
        let set: Option<String> = self
            .conn()
            .set_options(key(sale, &format!("pow:{id}")), 1, opts)
            .await?;
        Ok(set.is_some())
    }
}
