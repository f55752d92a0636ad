//! The outbound webhooks' settings (`WAITROOM_WEBHOOK_*`).

use std::time::Duration;

use super::{boolean, bounded, parse, ConfigError, Var};

/// Outbound webhooks: the relay (`tasks::relay`) and the endpoints' checks.
#[derive(Debug, Clone)]
pub struct Webhooks {
    /// `WAITROOM_WEBHOOK_ALLOW_PRIVATE`: endpoints may be `http://` and on private, loopback or
    /// link-local addresses (development, tests, `./scripts/run`). Off in production.
    pub allow_private: bool,
    /// `WAITROOM_WEBHOOK_RETRY_SCALE`: multiplies the retry schedule (`core::webhooks::SCHEDULE`);
    /// tests shorten it (0.001 makes 5 min 300 ms).
    pub retry_scale: f64,
    /// `WAITROOM_WEBHOOK_TIMEOUT_MS`: one attempt, connect to the end of the answer.
    pub timeout: Duration,
    /// `WAITROOM_WEBHOOK_POLL_MS`: how often the relay looks for new events and due retries.
    pub poll: Duration,
    /// `WAITROOM_WEBHOOK_CONCURRENCY`: attempts in flight on one instance.
    pub concurrency: usize,
    /// `WAITROOM_WEBHOOK_ROTATION_OVERLAP_SECS`: after a rotation, how long the old secret
    /// still signs beside the new one.
    pub rotation_overlap: Duration,
    /// `WAITROOM_WEBHOOK_PG_POOL`: Postgres connections of the relay and the webhook admin
    /// API, a pool apart from the checkout's.
    pub pool_size: u32,
    /// Whether this instance relays. Not a variable: off only in test instances whose other
    /// settings (private destinations refused) must not meet the suite's deliveries.
    pub relay: bool,
}

impl Default for Webhooks {
    fn default() -> Self {
        Self {
            allow_private: false,
            retry_scale: 1.0,
            timeout: Duration::from_secs(15),
            poll: Duration::from_millis(250),
            concurrency: 32,
            rotation_overlap: Duration::from_secs(24 * 3600),
            pool_size: 4,
            relay: true,
        }
    }
}

impl Webhooks {
    pub(super) fn read(&mut self, var: Var) -> Result<(), ConfigError> {
        if let Some(v) = var("WAITROOM_WEBHOOK_ALLOW_PRIVATE") {
            self.allow_private = boolean("WAITROOM_WEBHOOK_ALLOW_PRIVATE", &v)?;
        }
        if let Some(v) = var("WAITROOM_WEBHOOK_RETRY_SCALE") {
            let name = "WAITROOM_WEBHOOK_RETRY_SCALE";
            let scale: f64 = parse(name, &v)?;
            if !(scale > 0.0 && scale <= 100.0) {
                return Err(ConfigError::new(name, "a number above 0, at most 100"));
            }
            self.retry_scale = scale;
        }
        let ms = |name: &'static str, v: &str, min, max| {
            bounded(name, v, min, max).map(Duration::from_millis)
        };
        if let Some(v) = var("WAITROOM_WEBHOOK_TIMEOUT_MS") {
            self.timeout = ms("WAITROOM_WEBHOOK_TIMEOUT_MS", &v, 100, 120_000)?;
        }
        if let Some(v) = var("WAITROOM_WEBHOOK_POLL_MS") {
            self.poll = ms("WAITROOM_WEBHOOK_POLL_MS", &v, 10, 60_000)?;
        }
        if let Some(v) = var("WAITROOM_WEBHOOK_CONCURRENCY") {
            self.concurrency = bounded("WAITROOM_WEBHOOK_CONCURRENCY", &v, 1, 1000)? as usize;
        }
        if let Some(v) = var("WAITROOM_WEBHOOK_ROTATION_OVERLAP_SECS") {
            let (name, month) = ("WAITROOM_WEBHOOK_ROTATION_OVERLAP_SECS", 30 * 86_400);
            self.rotation_overlap = Duration::from_secs(bounded(name, &v, 0, month)?);
        }
        if let Some(v) = var("WAITROOM_WEBHOOK_PG_POOL") {
            self.pool_size = bounded("WAITROOM_WEBHOOK_PG_POOL", &v, 1, 100)? as u32;
        }
        Ok(())
    }
}
