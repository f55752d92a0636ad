//! The test kit: what `tests/` and `bench/` share to drive a real waitroom on the real Redis
//! and Postgres that `scripts/test` runs. Nothing here fakes the app: instances are the real
//! `Application`, in this process (`app`) or as the release binary (`process`).
//!
//! - `api`: the HTTP API as typed requests, and the calls the bench makes with them
//! - `client`: a lean keep-alive HTTP/1.1 client (the bench's load, the processes' readiness)
//! - `app`: an instance in this process (`spawn_app_with(tweak)`) and `TestApp`, its client
//! - `process`: the release binary as a child process, to kill for real
//! - `services`: where the suite's Redis and Postgres are, and connections to them
//! - `wait`: waiting on a condition (never on the clock)
//! - `proxy`: a TCP proxy a test cuts or freezes in front of Redis or Postgres
//! - `cluster`: the three-master Redis Cluster, and one a test owns and kills
//! - `nginx`, `webdriver`: nginx in front of instances; Chromium through chromedriver
//! - `shop`: a shop's payment page that verifies the hand-off token from the JWKS
//! - `events`, `sessions`: a shopper's event stream; the browsers' session cookies
//! - `receiver`: a webhook receiver on its own port that verifies signatures, records what
//!   arrives and misbehaves on request
//! - `logs`, `alone`: log capture, and running a test in a process of its own

pub mod alone;
pub mod api;
pub mod app;
pub mod client;
pub mod cluster;
pub mod events;
pub mod logs;
pub mod nginx;
pub mod process;
pub mod proxy;
pub mod receiver;
pub mod services;
pub mod sessions;
pub mod shop;
pub mod wait;
pub mod webdriver;

// Tests import the kit whole (`use waitroom_testkit::*`); the bench names modules.
pub use api::{unique, ADMIN_TOKEN, PAYMENT_SECRET};
pub use app::*;
pub use cluster::*;
pub use events::{open_events, Events};
pub use logs::{capture_logs, captured_logs};
pub use process::*;
pub use proxy::*;
pub use receiver::{accepted_ids, Answer, Received, Receiver};
pub use services::*;
pub use sessions::{as_browser, remember_session, remember_sid, session_cookie};
pub use wait::*;
