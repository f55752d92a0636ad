//! What the product does, one module per flow: `queue` (joining, status), `checkout` (buying,
//! the ledger sync), `handoff` (the buyer to the shop's payment page), `payments` (the provider's webhook, lapsed holds), `sales` (the admin's
//! changes), `schedule` (opening and closing on time), `recovery` (a sale Redis lost: detect,
//! rebuild, settle), `audit` (the trail), `report` (fairness), `console` (the dashboard's
//! samples), `door` (what a place costs a client), `webhooks` (the shop's endpoints and the
//! relay from `outbox` to them). Names only `core` and `infra`.
//!
//! A flow takes `&Deps`, or less where it needs less: never the HTTP layer's state.
//! Within the layer, calls run one way: the request flows (`queue`, `checkout`, `payments`,
//! `sales`) call `recovery` and `audit`; `recovery` calls `audit`; `audit` calls nothing.

pub mod audit;
pub mod checkout;
pub mod console;
pub mod door;
pub mod draw;
pub mod handoff;
pub mod payments;
pub mod queue;
pub mod recovery;
pub mod report;
pub mod sales;
pub mod schedule;
pub mod webhooks;

mod deps;

pub use deps::{Deps, RebuildLocks};
