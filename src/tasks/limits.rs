//! The limiter sweep: forgets rate-limit keys of clients that went quiet.

use std::sync::Arc;

use crate::flows::door::limits::Limiters;
use crate::tasks::every::Every;

/// Every `SWEEP_EVERY`, forgets idle clients, so a flood from millions of addresses costs
/// memory for as long as it lasts and no longer. Stops when the instance shuts down.
pub async fn run(limits: Arc<Limiters>, mut every: Every) {
    while every.tick().await {
        // A sweep walks every key under shard locks: off the async workers.
        let limits = limits.clone();
        let _ = tokio::task::spawn_blocking(move || limits.forget_idle()).await;
    }
}
