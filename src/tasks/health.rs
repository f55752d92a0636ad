//! Readiness kept current: both stores asked once a period, whatever the probes' rate.

use std::sync::Arc;

use crate::flows::Deps;
use crate::infra::health::Health;
use crate::tasks::every::Every;

/// Re-checks readiness every period until shutdown.
pub async fn run(deps: Arc<Deps>, health: Arc<Health>, mut every: Every) {
    while every.tick().await {
        health.check(&deps.store, &deps.ledger).await;
    }
}
