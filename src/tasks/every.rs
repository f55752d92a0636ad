//! The clock of every background loop.

use tokio::sync::watch;

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
