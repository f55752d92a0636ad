//! The dashboard's sampler: once a period, one sample of every sale for every open dashboard.

use std::sync::Arc;

use crate::flows::console::{Console, Sampler};
use crate::flows::Deps;
use crate::tasks::every::Every;

/// The sampling loop; ends on shutdown.
pub async fn run(deps: Arc<Deps>, console: Arc<Console>, mut every: Every) {
    let mut sampler = Sampler::default();
    while every.tick().await {
        match sampler.step(&deps.store, &deps.ledger).await {
            Ok(sample) => console.record(&sample),
            Err(e) => tracing::debug!(error = %e, "console sample failed"),
        }
    }
}
