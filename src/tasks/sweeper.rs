//! The sweeper: holds, releases, the ledger sync, settling rebuilt sales, finishing sales.
//! Its writes are idempotent, so every instance runs it.

use std::sync::Arc;

use crate::flows::Deps;
use crate::tasks::every::Every;

/// Every `sweep`: expires lapsed holds, writes Redis-accepted orders that missed Postgres,
/// settles sales rebuilt a while ago, and retires finished sales from the working set.
pub async fn run(s: Arc<Deps>, mut every: Every) {
    // The `run_id` of the Redis this instance last saw (`recovery::watch`), and the one it
    // confirmed its writes for (`recovery::confirm_writes`).
    let (mut redis_seen, mut confirmed) = (None, None);
    while every.tick().await {
        if let Err(e) = crate::flows::payments::expire_holds(&s).await {
            tracing::debug!(error = %e, "hold sweep failed");
        }
        // One round trip finds the few sales with work; idle sales cost nothing more.
        let due = match s.store.sale_ids().await {
            Ok(ids) => {
                if let Err(e) = crate::flows::recovery::watch(&s, &mut redis_seen, &ids).await {
                    tracing::debug!(error = %e, "watching redis against the ledger failed");
                }
                if let Err(e) = s.store.heartbeat(&s.instance).await {
                    tracing::debug!(error = %e, "heartbeat failed");
                }
                let confirmed_at =
                    crate::flows::recovery::after_restart(&s, &redis_seen, &mut confirmed).await;
                s.store
                    .needing_sweep(&ids, s.config.loops.settle_after, confirmed_at)
                    .await
            }
            Err(e) => Err(e),
        };
        match due {
            Ok(due) => {
                for (sale, work) in due {
                    // Orders younger than this are still inside their own checkout request.
                    if work.pending {
                        if let Err(e) = crate::flows::checkout::sync_pending(&s, &sale, 3_000).await
                        {
                            tracing::debug!(%sale, error = %e, "ledger sync failed");
                        }
                    }
                    if work.unsettled_due {
                        if let Err(e) =
                            crate::flows::recovery::settle_rebuilt(&s, &sale, work.early).await
                        {
                            tracing::warn!(%sale, error = %e, "settling a rebuilt sale failed");
                        }
                    }
                    if work.maybe_finished {
                        if let Err(e) = crate::flows::sales::retire_if_finished(&s, &sale).await {
                            tracing::debug!(%sale, error = %e, "finishing a sale failed");
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "sweep cannot list sales"),
        }
    }
}
