//! `Deps`: what the flows share.

use std::sync::Arc;

use crate::core::config::Config;
use crate::core::domain::SaleId;
use crate::flows::door::pow::PowKey;
use crate::flows::schedule::Schedules;
use crate::infra::events::Hub;
use crate::infra::ledger::{Ledger, Webhooks};
use crate::infra::store::Store;
use crate::infra::tokens::Keys;

/// What the flows share: the two stores, the signing keys, this instance's live hub, the
/// settings, and the two pieces of state more than one flow touches (a sale's rebuild lock,
/// the schedules this instance expects). Built once in `startup`.
pub struct Deps {
    pub config: Config,
    /// This instance's name among the instances (`wr:instances`), new at every start.
    pub instance: String,
    pub store: Store,
    pub ledger: Ledger,
    /// The webhook endpoints and deliveries, on a pool apart from the ledger's.
    pub webhooks: Webhooks,
    pub keys: Keys,
    pub hub: Arc<Hub>,
    /// Signs and checks proof-of-work challenges (`door::pow`).
    pub pow: PowKey,
    /// Per sale, held while rebuilding it after Redis lost it (`recovery::rebuild`).
    pub rebuilding: RebuildLocks,
    /// Sales with an opening or closing pending, and when (`schedule`).
    pub schedules: Schedules,
}

impl Deps {
    pub fn new(
        config: Config,
        store: Store,
        ledger: Ledger,
        webhooks: Webhooks,
        keys: Keys,
    ) -> Self {
        Self {
            instance: uuid::Uuid::new_v4().simple().to_string(),
            pow: PowKey::from_config(&config),
            config,
            store,
            ledger,
            webhooks,
            keys,
            hub: Arc::new(Hub::default()),
            rebuilding: Default::default(),
            schedules: Default::default(),
        }
    }
}

/// Per sale, held while rebuilding it after Redis lost it (see `recovery::rebuild`).
pub type RebuildLocks =
    std::sync::Mutex<std::collections::HashMap<SaleId, Arc<tokio::sync::Mutex<()>>>>;
