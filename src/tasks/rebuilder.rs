//! The rebuilder: sales the ledger has and Redis lost come back even if nobody asks for them.

use std::sync::Arc;

use crate::flows::Deps;
use crate::tasks::every::Every;

/// Every ten sweeps: rebuilds the sales Redis has lost, so one nobody looks at comes back
/// too. A loop of its own: a Redis that lost hundreds of sales must not hold up hold expiry,
/// releases and settling behind their rebuilds.
pub async fn run(s: Arc<Deps>, mut every: Every) {
    while every.tick().await {
        if let Err(e) = crate::flows::recovery::detect_lost_sales(&s).await {
            tracing::debug!(error = %e, "rebuilding lost sales failed");
        }
    }
}
