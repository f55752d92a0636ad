//! Integration tests on the real Redis and Postgres (started by `scripts/test`). Each test
//! makes its own sale, so they run in parallel on one Redis and one database.

#[path = "../common/mod.rs"]
mod common;

mod admission;
mod audit;
mod checkout;
mod cluster;
mod console;
mod door;
mod door_join;
mod door_session;
mod errors;
mod events;
mod finished;
mod fuzz;
mod live_changes;
mod metrics;
mod model;
mod nginx;
mod nginx_proc;
mod ops;
mod payments;
mod promises;
mod queue;
mod recovery;
