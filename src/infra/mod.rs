//! What the flows stand on: Redis (`store`), Postgres (`ledger`), the JWTs (`tokens`), this
//! instance's live hub and its pub/sub subscriber (`events`), metrics, logging, readiness,
//! and outbound webhook HTTP (`outbound`).
//! Names only `core`.

pub mod events;
pub mod health;
pub mod ledger;
pub mod metrics;
pub mod outbound;
pub mod store;
pub mod telemetry;
pub mod tokens;
