//! The webhook relay's loop: every `WAITROOM_WEBHOOK_POLL_MS` a round of fan-out and sends
//! (`flows::webhooks::relay`), and every few seconds the backlog into the metrics. Claims are
//! `FOR UPDATE SKIP LOCKED`, so every instance runs it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::flows::webhooks::relay::Relay;
use crate::tasks::every::Every;

/// How often the backlog gauges are read from Postgres.
const BACKLOG_EVERY: Duration = Duration::from_secs(2);
/// Rounds one tick may run back to back while each fills every free slot (a backlog drains
/// at the receivers' pace, not one batch per poll); then the tick ends, so a stop is seen.
const ROUNDS_PER_TICK: usize = 50;

pub async fn run(relay: Arc<Relay>, mut every: Every) {
    let mut backlog_read: Option<Instant> = None;
    while every.tick().await {
        for _ in 0..ROUNDS_PER_TICK {
            match relay.round().await {
                // Every slot busy with slow receivers: the next tick fans out and tries again.
                Ok(true) if !relay.slot_free().await => break,
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "webhook relay round failed");
                    break;
                }
            }
        }
        if backlog_read.is_none_or(|at| at.elapsed() >= BACKLOG_EVERY) {
            backlog_read = Some(Instant::now());
            if let Err(e) = relay.report_backlog().await {
                tracing::debug!(error = %e, "webhook backlog not read");
            }
        }
    }
}
