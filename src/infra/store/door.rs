//! At the door: what the proof-of-work needs from Redis (the places cap lives in the
//! enqueue and admit scripts).

use redis::AsyncCommands;

use super::{key, Store};
use crate::core::domain::{QueueId, SaleId};
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

    /// Marks a challenge used by the place `qid` (`SET NX GET`, one round trip). The mark
    /// outlives the challenge by a minute so instances whose clocks disagree a little still
    /// refuse a second use.
    pub async fn claim_challenge(
        &self,
        sale: &SaleId,
        id: &str,
        qid: &QueueId,
        ttl_ms: i64,
    ) -> Result<Claim, Fault> {
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .get(true)
            .with_expiration(redis::SetExpiry::PX((ttl_ms.max(0) + 60_000) as u64));
        let before: Option<String> = self
            .conn()
            .set_options(challenge_key(sale, id), qid, opts)
            .await?;
        Ok(match before {
            None => Claim::New,
            Some(by) if by == qid.as_str() => Claim::Again,
            Some(_) => Claim::Taken,
        })
    }

    /// Gives back a challenge this request claimed when its join bought no place: the work
    /// was done, and the shopper may still spend it.
    pub async fn unclaim_challenge(&self, sale: &SaleId, id: &str) -> Result<(), Fault> {
        let _: () = self.conn().del(challenge_key(sale, id)).await?;
        Ok(())
    }
}

/// What a claim of a challenge found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Unused until now: this join spends it.
    New,
    /// Spent by this same place before (a join retried after its answer was lost).
    Again,
    /// Spent by another place.
    Taken,
}

fn challenge_key(sale: &SaleId, id: &str) -> String {
    key(sale, &format!("pow:{id}"))
}
