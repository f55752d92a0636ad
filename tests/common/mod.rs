//! Shared by every test binary: start the real app against the real Redis and Postgres that
//! `scripts/test` runs, one sale id per test so tests run in parallel without FLUSHDB.
#![allow(dead_code)]

mod cluster;
mod events;
mod logs;
mod process;
mod proxy;
mod sessions;

// Each test binary uses some of these.
#[allow(unused_imports)] // only the api binary runs on a cluster
pub use cluster::*;
#[allow(unused_imports)]
pub use events::{open_events, Events};
#[allow(unused_imports)]
pub use logs::{capture_logs, captured_logs};
#[allow(unused_imports)] // only tests that kill instances for real
pub use process::*;
#[allow(unused_imports)] // not every test binary cuts Redis
pub use proxy::*;
#[allow(unused_imports)]
pub use sessions::{as_browser, remember_session, remember_sid, session_cookie};

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::{json, Value};
use waitroom::core::config::{Config, RateLimits};
use waitroom::http::state::AppState;
use waitroom::startup::{AppHandle, Application};

pub const ADMIN_TOKEN: &str = "test-admin-token-123";
pub const PAYMENT_SECRET: &str = "test-payment-secret";

/// One signing key for the whole test binary, so instances verify each other's tokens.
static KEY_PEM: LazyLock<String> = LazyLock::new(waitroom::infra::tokens::generate_pem);

/// The defaults are what `scripts/test` exports: the suite's own Redis DB and database, so the
/// dev data of `scripts/run` (DB 0, database `waitroom`) is never touched.
pub fn redis_url() -> String {
    std::env::var("WAITROOM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390/1".into())
}

pub fn database_url() -> String {
    std::env::var("WAITROOM_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://waitroom@127.0.0.1:5442/waitroom_test".into())
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

pub fn test_config() -> Config {
    let mut c = Config::new(redis_url(), database_url());
    c.http.bind = "127.0.0.1:0".parse().unwrap();
    c.tokens.admin = ADMIN_TOKEN.into();
    c.tokens.payment_secret = PAYMENT_SECRET.into();
    c.tokens.signing_keys_pem = vec![KEY_PEM.as_str().into()];
    c.loops.tick = Duration::from_millis(50);
    c.loops.sweep = Duration::from_millis(200);
    // Orders here commit in milliseconds: a rebuilt sale needs no 15 s wait to settle. Long
    // enough still that a test sees the sale unsettled on a loaded machine.
    c.loops.settle_after = Duration::from_secs(5);
    c.http.workers = 1;
    c.redis.connections = 2;
    c.postgres.pool_size = 4;
    // Every test client is 127.0.0.1: the door's own tests turn the limits back on.
    c.door.limits = RateLimits::off();
    c.streams.per_client = 100_000;
    // Dozens of instances run at once here: only the dashboard's tests sample (`spawn_console_app`).
    c.loops.console_sample = None;
    c
}

/// An instance whose dashboard sampler runs, as in production.
pub async fn spawn_console_app() -> TestApp {
    spawn_app_with(|c| c.loops.console_sample = Some(Duration::from_secs(1))).await
}

pub struct TestApp {
    pub addr: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub handle: AppHandle,
    pub state: Arc<AppState>,
    /// The server's task: finished only if the server stopped (or died).
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config();
    tweak(&mut config);
    let app = Application::build(config).await.expect("app builds");
    let port = app.port();
    let handle = app.handle();
    let state = app.state();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        handle,
        state,
        server,
    }
}

pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Deletes every Redis key of one sale (what a lost Redis looks like to that sale).
pub async fn wipe_sale_keys(sale: &str) {
    let mut r = redis().await;
    let keys: Vec<String> = r.keys(format!("wr:{{{sale}}}:*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = r.del(keys).await.unwrap();
    }
}

/// (sold, remaining) from a sale's admin stats, as the ledger and Redis see it.
pub fn sold_remaining(stats: &Value) -> (Option<i64>, Option<i64>) {
    (stats["sold"].as_i64(), stats["remaining"].as_i64())
}

/// How long a test waits for something that must happen. Generous, since the machine may be
/// busy: a test fails on it only when the thing never happens, and speed is bench/'s concern.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `f` until it returns Some or the timeout passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Redis's clock (`TIME`) in milliseconds: the clock admit.lua runs on, so tests measure
/// against it rather than this machine's.
pub async fn redis_now_ms(r: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(r).await.unwrap();
    secs * 1000 + micros / 1000
}

/// Waits until the admission ticker has run on `sale` at least `n` times after this call,
/// as Redis records it: every tick rewrites the bucket's `last_ms` with Redis `TIME`. Lets a
/// test say "several ticks passed" without guessing how long that takes on a busy machine.
pub async fn ticks_after(sale: &str, n: usize) {
    let mut r = redis().await;
    let mut seen = redis_now_ms(&mut r).await;
    let mut ticks = 0;
    let bucket = format!("wr:{{{sale}}}:bucket");
    while ticks < n {
        let ticked = eventually(WAIT, || {
            let (mut r, bucket) = (r.clone(), &bucket);
            async move {
                let last: Option<i64> = r.hget(bucket, "last_ms").await.unwrap();
                last.filter(|&l| l > seen)
            }
        })
        .await;
        seen = ticked.unwrap_or_else(|| panic!("only {ticks} of {n} ticks on {sale} in {WAIT:?}"));
        ticks += 1;
    }
}

pub struct Joined {
    pub token: String,
    pub queue_id: String,
    pub position: i64,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    pub async fn create_sale_json(&self, body: Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/admin/sales"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A sale with `units` units admitting `rate` per second; returns its id.
    pub async fn create_sale(&self, units: i64, rate: i64) -> String {
        self.create_sale_with(units, rate, json!({})).await
    }

    /// Like `create_sale`, with extra fields merged into the request.
    pub async fn create_sale_with(&self, units: i64, rate: i64, extra: Value) -> String {
        let id = unique("t");
        let mut body = json!({
            "id": id, "name": "Test sale", "units": units, "price_cents": 2500,
            "rate_per_sec": rate, "ticket_ttl_secs": 60, "max_per_order": 1
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let res = self.create_sale_json(body).await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        id
    }

    pub async fn admin(&self, sale: &str, action: &str) -> Value {
        let res = self
            .client
            .post(self.url(&format!("/api/admin/sales/{sale}/{action}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    pub async fn stats(&self, sale: &str) -> Value {
        let res = self
            .client
            .get(self.url(&format!("/api/admin/sales/{sale}")))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    pub async fn join_raw(&self, sale: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url(&format!("/api/sales/{sale}/queue")));
        if let Some(t) = token {
            req = as_browser(req, t).json(&json!({ "token": t }));
        }
        let res = req.send().await.unwrap();
        remember_session(&res);
        res
    }

    pub async fn join(&self, sale: &str) -> Joined {
        self.join_with(sale, None).await
    }

    pub async fn join_with(&self, sale: &str, token: Option<&str>) -> Joined {
        let res = self.join_raw(sale, token).await;
        assert_eq!(res.status(), 201);
        let v: Value = res.json().await.unwrap();
        Joined {
            token: v["token"].as_str().unwrap().to_string(),
            queue_id: v["queue_id"].as_str().unwrap().to_string(),
            position: v["position"].as_i64().unwrap(),
        }
    }

    pub async fn status(&self, sale: &str, token: &str) -> Value {
        let req = self
            .client
            .get(self.url(&format!("/api/sales/{sale}/status")));
        let res = as_browser(req, token)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Waits until the shopper is admitted and returns the admission ticket.
    pub async fn ticket(&self, sale: &str, token: &str) -> String {
        eventually(WAIT, || async {
            let s = self.status(sale, token).await;
            s["ticket"].as_str().map(str::to_string)
        })
        .await
        .expect("admitted")
    }

    pub async fn checkout(&self, sale: &str, ticket: &str, quantity: i64) -> reqwest::Response {
        let req = self
            .client
            .post(self.url(&format!("/api/sales/{sale}/checkout")));
        as_browser(req, ticket)
            .bearer_auth(ticket)
            .json(&json!({ "quantity": quantity }))
            .send()
            .await
            .unwrap()
    }
}

/// The Redis URL with another database number: a test whose sales must not be seen by the
/// tickers and sweepers of other apps (other tests, other processes) gives its apps a
/// database of their own. Pub/sub channels are shared across databases.
pub fn redis_url_db(db: u8) -> String {
    let url = redis_url();
    let host_start = url.find("://").map_or(0, |i| i + 3);
    let base = match url[host_start..].find('/') {
        Some(i) => &url[..host_start + i],
        None => url.as_str(),
    };
    format!("{base}/{db}")
}

/// A connection to the Redis at `url` (see `redis_url_db`).
pub async fn redis_at(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A pool on the test database, for tests that read the ledger's tables themselves.
pub async fn pg() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database_url())
        .await
        .unwrap()
}

impl TestApp {
    /// The payment provider reports `outcome` ("succeeded", "failed") for `order`; must apply.
    pub async fn pay(&self, order: &str, outcome: &str) {
        let event = json!({"order_id": order, "event_id": unique("ev"), "outcome": outcome});
        let res = self.payment_event(&event, PAYMENT_SECRET).await;
        assert_eq!(res.status(), 200, "{outcome} for {order}");
    }

    /// Posts a payment provider event signed with `secret`.
    pub async fn payment_event(&self, body: &Value, secret: &str) -> reqwest::Response {
        let raw = serde_json::to_vec(body).unwrap();
        self.client
            .post(self.url("/api/payments/webhook"))
            .header("content-type", "application/json")
            .header(
                "x-waitroom-signature",
                waitroom::flows::payments::sign(secret, &raw),
            )
            .body(raw)
            .send()
            .await
            .unwrap()
    }
}

/// A sale id as the app's own functions take it (tests name sales with `unique`).
pub fn sale_id(s: &str) -> waitroom::core::domain::SaleId {
    waitroom::core::domain::SaleId::parse(s).expect("a valid sale id")
}
