//! The integration tests, one binary: the real app on the real Redis and Postgres (started by
//! `scripts/test`), nginx and Chromium. Each test makes its own sale, so they run in parallel
//! on one Redis and one database. The harness is the test kit (`testkit/`, `waitroom_testkit`).
//!
//! One test stays outside: `tests/outage.rs` stops the shared Postgres, which no other test
//! may see, and cargo runs test binaries one after another. Tests that need a process of their
//! own (a global log capture) run in one started for them (`alone!`).

mod admission;
mod audit;
mod browser;
mod checkout;
mod cluster;
mod console;
mod door;
mod door_join;
mod door_session;
mod draw;
mod errors;
mod events;
mod finished;
mod fuzz;
mod handoff;
mod live_changes;
mod logs;
mod metrics;
mod model;
mod nginx;
mod ops;
mod outage_app;
mod outbox;
mod payments;
mod promises;
mod queue;
mod recovery;
mod redis_faults;
mod variants;
mod webhooks;
// The README's snippets, compiled and run by the tests that use them.
#[path = "../../docs/snippets/verify_webhook.rs"]
mod snippet_verify_webhook;
