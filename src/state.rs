//! What every handler and background task shares.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::door::pow::PowKey;
use crate::events::Hub;
use crate::ledger::Ledger;
use crate::store::Store;
use crate::tokens::Keys;

pub struct AppState {
    pub config: Config,
    pub store: Store,
    pub ledger: Ledger,
    pub keys: Keys,
    /// Signs and checks proof-of-work challenges (`door::pow`).
    pub pow: PowKey,
    pub hub: Arc<Hub>,
    /// The dashboard's samples (`console::sampler`).
    pub console: crate::console::Console,
    /// Readiness as the background check last saw it (`health`).
    pub health: crate::health::Health,
    /// Per-client request rates (`door::limits`), shared by every worker of this process.
    pub limits: crate::door::limits::Limiters,
    /// Per sale, held while rebuilding it after Redis lost it (see `recovery::rebuild`).
    pub rebuilding: crate::recovery::RebuildLocks,
    /// The Redis `run_id` last seen (`recovery::watch`).
    pub redis_seen: crate::recovery::RedisSeen,
    /// Sales with an opening or closing pending, and when (`schedule`).
    pub schedules: crate::schedule::Schedules,
    /// Flips to true when the instance stops: streams end and background loops return.
    pub shutdown: watch::Receiver<bool>,
}

/// The clock of a background loop: `tick` waits for the next period (a late tick is delayed,
/// never bunched) and answers false once the instance is stopping.
pub struct Every {
    interval: tokio::time::Interval,
    shutdown: watch::Receiver<bool>,
    lag: std::time::Duration,
}

impl Every {
    pub fn new(period: std::time::Duration, shutdown: &watch::Receiver<bool>) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            interval,
            shutdown: shutdown.clone(),
            lag: std::time::Duration::ZERO,
        }
    }

    pub async fn tick(&mut self) -> bool {
        tokio::select! {
            due = self.interval.tick() => {
                self.lag = due.elapsed();
                true
            }
            _ = self.shutdown.changed() => false,
        }
    }

    /// How late the last tick ran against its schedule (a busy runtime, or a previous round
    /// that overran its period).
    pub fn lag(&self) -> std::time::Duration {
        self.lag
    }
}
