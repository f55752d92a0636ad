//! The real app in this process, against the suite's Redis and Postgres: one sale id per test
//! so tests run in parallel without FLUSHDB. `TestApp` is its typed client; it sends the
//! requests of `api` as the shopper's browser would (with its session cookie).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use serde_json::{json, Value};
use waitroom::core::config::{Config, RateLimits};
use waitroom::http::state::AppState;
use waitroom::startup::{AppHandle, Application};

use crate::api::{self, unique, SaleSpec, ADMIN_TOKEN, PAYMENT_SECRET};
use crate::client::Req;
use crate::services::{database_url, redis_url};
use crate::sessions::{as_browser, remember_session};
use crate::wait::{eventually, WAIT};

/// One signing key for the whole test binary, so instances verify each other's tokens.
pub(crate) static KEY_PEM: LazyLock<String> = LazyLock::new(waitroom::infra::tokens::generate_pem);

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
    // And every test client holds every stream: the per-client cap's own test sets it.
    c.streams.per_client = 100_000;
    // Dozens of instances run at once here: only the dashboard's tests sample (`spawn_console_app`).
    c.loops.console_sample = None;
    // Webhook receivers here are on 127.0.0.1 over http, the retry schedule is in
    // milliseconds (5 s → 5 ms, 5 min → 300 ms), and the relay looks often. Every instance
    // of the suite relays every test's deliveries, so all keep these settings.
    c.webhooks.allow_private = true;
    c.webhooks.retry_scale = 0.001;
    c.webhooks.poll = Duration::from_millis(200);
    c.webhooks.timeout = Duration::from_secs(2);
    c.webhooks.pool_size = 2;
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

/// (sold, remaining) from a sale's admin stats, as the ledger and Redis see it.
pub fn sold_remaining(stats: &Value) -> (Option<i64>, Option<i64>) {
    (stats["sold"].as_i64(), stats["remaining"].as_i64())
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

    /// Sends `req` as the browser holding its bearer token would: with that browser's
    /// session cookie, if one is known.
    pub async fn send(&self, req: &Req) -> reqwest::Response {
        let mut b = self
            .client
            .request(req.method().clone(), self.url(req.path()));
        if let Some(token) = req.token() {
            b = as_browser(b, token).bearer_auth(token);
        }
        if let Some(body) = req.body() {
            b = b
                .header("content-type", "application/json")
                .body(body.clone());
        }
        b.send().await.unwrap()
    }

    /// Sends `req`, asserts the status and returns the JSON answer.
    async fn json(&self, req: &Req, status: u16) -> Value {
        let res = self.send(req).await;
        assert_eq!(res.status(), status, "{} {}", req.method(), req.path());
        res.json().await.unwrap()
    }

    pub async fn create_sale_json(&self, body: Value) -> reqwest::Response {
        self.send(&api::create_sale_req(&body)).await
    }

    /// A sale with `units` units admitting `rate` per second; returns its id.
    pub async fn create_sale(&self, units: i64, rate: i64) -> String {
        self.create_sale_with(units, rate, json!({})).await
    }

    /// Like `create_sale`, with extra fields merged into the request.
    pub async fn create_sale_with(&self, units: i64, rate: i64, extra: Value) -> String {
        let id = unique("t");
        let spec = SaleSpec {
            units,
            rate_per_sec: rate,
            ticket_ttl_secs: 60,
            max_per_order: 1,
        };
        let mut body = spec.body(&id, "Test sale");
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let res = self.create_sale_json(body).await;
        assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
        id
    }

    pub async fn admin(&self, sale: &str, action: &str) -> Value {
        self.json(&api::admin_req(sale, action), 200).await
    }

    pub async fn stats(&self, sale: &str) -> Value {
        self.json(&api::stats_req(sale), 200).await
    }

    pub async fn join_raw(&self, sale: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.post(self.url(api::join_req(sale).path()));
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
        self.json(&api::status_req(sale, token), 200).await
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
        self.send(&api::checkout_n_req(sale, ticket, quantity))
            .await
    }

    /// One unit of `variant`.
    pub async fn checkout_variant(
        &self,
        sale: &str,
        ticket: &str,
        variant: &str,
    ) -> reqwest::Response {
        self.send(&api::checkout_variant_req(sale, ticket, variant))
            .await
    }

    /// The public keys, as a shop or CDN reads them.
    pub async fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        let res = self.client.get(self.url("/.well-known/jwks.json")).send();
        res.await.unwrap().json().await.unwrap()
    }

    /// A sale as shoppers see it (`GET /api/sales/{id}`).
    pub async fn public_sale(&self, sale: &str) -> Value {
        let res = self.client.get(self.url(&format!("/api/sales/{sale}")));
        res.send().await.unwrap().json().await.unwrap()
    }

    /// `POST /payment` as the shopper's browser sends it (with its session cookie).
    pub async fn hand_off(&self, sale: &str, token: &str) -> reqwest::Response {
        self.send(&api::payment_req(sale, token)).await
    }

    /// The payment provider reports `outcome` ("succeeded", "failed") for `order`; must apply.
    pub async fn pay(&self, order: &str, outcome: &str) {
        let event = json!({"order_id": order, "event_id": unique("ev"), "outcome": outcome});
        let res = self.payment_event(&event, PAYMENT_SECRET).await;
        assert_eq!(res.status(), 200, "{outcome} for {order}");
    }

    /// `/metrics` as Prometheus text.
    pub async fn metrics_text(&self) -> String {
        let res = self.client.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
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

/// A queue id as the app's own functions take it.
pub fn queue_id(s: &str) -> waitroom::core::domain::QueueId {
    waitroom::core::domain::QueueId::parse(s).expect("a valid queue id")
}
