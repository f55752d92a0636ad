//! The background loops, each in its own module, all started by `spawn_all`: the admission
//! `ticker`, the `sweeper`, the `rebuilder`, the `health` check, the `limits` sweep, the
//! dashboard's `sampler`, the webhook `relay`, and the hub's pub/sub `subscriber`
//! (`infra::events`). Every write a
//! loop makes is atomic in Redis or idempotent, so every instance runs every loop; state a
//! loop owns (the Redis `run_id` last seen, the sampler's last readings) lives in the loop.

mod every;
pub mod health;
pub mod limits;
pub mod rebuilder;
pub mod relay;
pub mod sampler;
pub mod sweeper;
pub mod ticker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::flows::console::Console;
use crate::flows::door::limits::{Limiters, SWEEP_EVERY};
use crate::flows::webhooks::relay::Relay;
use crate::flows::Deps;
use crate::infra::events;
use crate::infra::health::Health;
use crate::infra::outbound::Sender;
use crate::infra::store::Target;

pub use every::Every;

/// What the loops besides the flows' `Deps` look after.
pub struct Shared {
    pub limits: Arc<Limiters>,
    pub health: Arc<Health>,
    pub console: Arc<Console>,
    /// The webhook relay's HTTP client.
    pub outbound: Sender,
}

/// Starts every background loop of an instance; each returns once `shutdown` turns true.
pub fn spawn_all(deps: &Arc<Deps>, shared: &Shared, shutdown: &watch::Receiver<bool>) {
    let c = &deps.config;
    let every = |period: Duration| Every::new(period, shutdown);
    tokio::spawn(events::run_subscriber(
        deps.hub.clone(),
        Target::of(c),
        deps.store.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(ticker::run(deps.clone(), every(c.loops.tick)));
    tokio::spawn(health::run(
        deps.clone(),
        shared.health.clone(),
        every(crate::infra::health::CHECK_EVERY),
    ));
    tokio::spawn(sweeper::run(deps.clone(), every(c.loops.sweep)));
    tokio::spawn(rebuilder::run(deps.clone(), every(c.loops.sweep * 10)));
    tokio::spawn(limits::run(shared.limits.clone(), every(SWEEP_EVERY)));
    if c.webhooks.relay {
        let relay = Relay::new(
            deps.webhooks.clone(),
            shared.outbound.clone(),
            c.webhooks.clone(),
        );
        tokio::spawn(relay::run(relay, every(c.webhooks.poll)));
    }
    if let Some(period) = c.loops.console_sample {
        tokio::spawn(sampler::run(
            deps.clone(),
            shared.console.clone(),
            every(period),
        ));
    }
}
