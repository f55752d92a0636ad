//! waitroom: a virtual waiting room and admission controller for flash sales.
//!
//! Layers, bottom up; a module names only its own layer and those below it (`scripts/layers`
//! checks this in `./scripts/test`):
//! - `core`: domain types parsed once at the edge, the `Fault` of the stores, configuration.
//! - `infra`: Redis (`store`, owning every key and script), Postgres (`ledger`, every SQL
//!   statement), the JWTs (`tokens`), this instance's live hub (`events`), metrics, logging.
//! - `flows`: what the product does — join, admit, buy, pay, run a sale, recover a sale Redis
//!   lost, the audit trail, the report, the door's policy. Each takes `flows::Deps` or less.
//! - `http`: routes, the one error mapping, SSE, the dashboard's session, the door's
//!   extractors and middleware.
//! - `tasks`: the background loops, spawned together by `tasks::spawn_all`.
//! - `startup`: builds an instance from a `Config`; `main.rs` and the tests start it.

pub mod core;
pub mod flows;
pub mod http;
pub mod infra;
pub mod startup;
pub mod tasks;
