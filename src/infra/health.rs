//! Readiness, kept by a background check: a probe reads two flags instead of costing Redis and
//! Postgres a round trip each, however often the load balancer asks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::infra::ledger::Ledger;
use crate::infra::store::Store;

/// How often readiness is checked, and how long a store may take to answer a probe: together
/// a store that stops answering takes the instance out of a load balancer within a second.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

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

    /// Asks both stores once and keeps the answers. A store that has not answered within
    /// `PROBE_TIMEOUT` counts as down: a stopped Postgres makes the pool retry connecting for
    /// its whole acquire timeout (3 s), and a load balancer must not send traffic meanwhile.
    /// The probes run as tasks of their own, so one cut short (a script reload) still ends.
    pub async fn check(&self, store: &Store, ledger: &Ledger) {
        let (store, ledger) = (store.clone(), ledger.clone());
        let redis = tokio::spawn(async move { store.ready().await.is_ok() });
        let postgres = tokio::spawn(async move { ledger.ping().await.is_ok() });
        let answered = |probe| async {
            matches!(
                tokio::time::timeout(PROBE_TIMEOUT, probe).await,
                Ok(Ok(true))
            )
        };
        let (redis, postgres) = tokio::join!(answered(redis), answered(postgres));
        self.redis.store(redis, Ordering::Relaxed);
        self.postgres.store(postgres, Ordering::Relaxed);
    }
}
