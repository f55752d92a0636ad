//! What handlers share: the flows' `Deps`, and what only the HTTP edge uses (the door's
//! limiters, readiness, the dashboard's samples, the shutdown signal that ends streams).

use std::sync::Arc;

use tokio::sync::watch;

use crate::flows::console::Console;
use crate::flows::door::limits::Limiters;
use crate::flows::Deps;
use crate::infra::health::Health;

pub struct AppState {
    pub flows: Arc<Deps>,
    /// Per-client request rates (`flows::door::limits`), shared by every worker of this process.
    pub limits: Arc<Limiters>,
    /// Readiness as the background check last saw it (`tasks::health`).
    pub health: Arc<Health>,
    /// Open event streams per client on this instance (`flows::door::streams`).
    pub client_streams: Arc<crate::flows::door::streams::ClientStreams>,
    /// The dashboard's samples (`tasks::sampler`).
    pub console: Arc<Console>,
    /// Flips to true when the instance stops: streams end.
    pub shutdown: watch::Receiver<bool>,
}

/// A handler calls a flow with `&state`: the flow sees the `Deps` and nothing of the edge.
impl std::ops::Deref for AppState {
    type Target = Deps;

    fn deref(&self) -> &Deps {
        &self.flows
    }
}
