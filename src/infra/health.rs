//! Readiness, kept by a background check: a probe reads two flags instead of costing Redis and
//! Postgres a round trip each, however often the load balancer asks.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::infra::ledger::Ledger;
use crate::infra::store::Store;

#[derive(Default)]
pub struct Health {
    redis: AtomicBool,
    postgres: AtomicBool,
}

impl Health {
    /// (Redis answers with every script loaded, Postgres answers), as last checked.
    pub fn ready(&self) -> (bool, bool) {
        (
            self.redis.load(Ordering::Relaxed),
            self.postgres.load(Ordering::Relaxed),
        )
    }

    /// Asks both stores once and keeps the answers.
    pub async fn check(&self, store: &Store, ledger: &Ledger) {
        let (redis, postgres) = tokio::join!(store.ready(), ledger.ping());
        self.redis.store(redis.is_ok(), Ordering::Relaxed);
        self.postgres.store(postgres.is_ok(), Ordering::Relaxed);
    }
}
