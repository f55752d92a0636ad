//! Redis killed with `kill -9` in the middle of a checkout storm: a redis-server of the test's
//! own, on its own port, so no other test sees it die. It comes back either from an AOF that
//! lost its last writes (a copy taken earlier in the storm: what a machine crash leaves of
//! `appendfsync everysec`) or with nothing at all. Each storm runs in a process of its own
//! (`alone!`): it asserts on every log line captured, which must be its instances' only.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{json, Value};
use tokio::time::Instant;

use waitroom_testkit::*;

/// A redis-server of this test's own, with AOF on as `scripts/lib/redis.sh` runs it.
struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    async fn start() -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("redis-faults"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.run().await;
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn aof(&self) -> PathBuf {
        self.dir.join("appendonlydir")
    }

    /// Starts redis-server on the port and data directory, and waits until it answers.
    async fn run(&mut self) {
        let bin = std::env::var("WAITROOM_REDIS_SERVER").unwrap_or("redis-server".into());
        let port = self.port.to_string();
        let child = Command::new(bin)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            // No rewrite mid-test: the copy taken below stays a prefix of the live AOF.
            .args(["--auto-aof-rewrite-percentage", "0"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (scripts/test installs it)");
        self.child = Some(child);
        let url = self.url();
        let up = eventually(WAIT, || {
            let url = url.clone();
            async move {
                let mut c = redis::Client::open(url)
                    .ok()?
                    .get_multiplexed_async_connection()
                    .await
                    .ok()?;
                let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut c).await;
                pong.ok()
            }
        })
        .await;
        assert!(up.is_some(), "redis-server on {} did not answer", self.port);
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn copy_aof(&self) -> PathBuf {
        let to = self.dir.join("aof-copy");
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(self.aof()).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
        to
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Loss {
    /// Restarted from an AOF copied a third of the way into the storm.
    AofTail,
    /// Restarted with no data at all.
    Everything,
}

const UNITS: usize = 300;
const SHOPPERS: usize = 2000;

/// What the storm's shoppers heard.
#[derive(Default)]
struct Heard {
    /// (queue id, order id) of every 201.
    orders: Vec<(String, String)>,
    /// Every status code, for the "no 5xx but 503" check.
    codes: Vec<u16>,
}

async fn checkout_once(app: &TestApp, sale: &str, ticket: &str) -> Option<(u16, Value)> {
    let req = app
        .client
        .post(app.url(&format!("/api/sales/{sale}/checkout")));
    let res = as_browser(req, ticket)
        .bearer_auth(ticket)
        .json(&json!({ "quantity": 1 }))
        .send()
        .await
        .ok()?;
    let code = res.status().as_u16();
    Some((code, res.json().await.unwrap_or(Value::Null)))
}

/// Checks out until the answer is final, as a shopper pressing "Buy" again after a 503 does.
async fn buy(app: &TestApp, sale: &str, ticket: &str, heard: &Mutex<Heard>, bought: &AtomicUsize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let answer = checkout_once(app, sale, ticket).await;
        if let Some((code, _)) = &answer {
            heard.lock().unwrap().codes.push(*code);
        }
        match answer {
            Some((201, v)) => {
                let id = v["order_id"].as_str().unwrap().to_string();
                heard.lock().unwrap().orders.push((qid(ticket), id));
                bought.fetch_add(1, Ordering::SeqCst);
                return;
            }
            // A retry of an order placed before the fault (its 201 was lost with the
            // connection): counted by the ledger check below.
            Some((200, _)) => return,
            Some((503, _)) | None => tokio::time::sleep(Duration::from_millis(100)).await,
            Some((code, v)) => panic!("checkout answered {code} {v}"),
        }
    }
    panic!("no final checkout answer in 90 s");
}

/// The queue id a ticket is for: the ledger's `ticket_id`.
fn qid(ticket: &str) -> String {
    waitroom::infra::tokens::unverified_subject(ticket).expect("a ticket names its queue id")
}

async fn ledger_orders(sale: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT ticket_id, id::text FROM orders WHERE sale_id = $1")
        .bind(sale)
        .fetch_all(&pg().await)
        .await
        .unwrap()
}

async fn storm_through(loss: Loss) {
    capture_logs();
    let mut server = RedisServer::start().await;
    let url = server.url();
    // Back from its AOF, Redis must settle as soon as both instances confirm their writes from
    // before the restart: the fallback wait is set beyond the storm's own deadline, so only
    // the confirmations can end it. Back with nothing, the sales are rebuilt on first use,
    // possibly after the confirmations: those settle by the (short) fallback.
    let settle_after = match loss {
        Loss::AofTail => Duration::from_secs(600),
        Loss::Everything => Duration::from_secs(2),
    };
    let tweak = |c: &mut waitroom::core::config::Config| {
        c.redis.url = url.clone();
        c.loops.settle_after = settle_after;
    };
    let apps = [spawn_app_with(tweak).await, spawn_app_with(tweak).await];
    let extra = json!({ "ticket_ttl_secs": 600 });
    let sale = apps[0].create_sale_with(UNITS as i64, 5000, extra).await;
    apps[1].admin(&sale, "open").await;

    let joined = join_all((0..SHOPPERS).map(|i| apps[i % 2].join(&sale))).await;
    let admitted = eventually(WAIT, || async {
        let s = apps[0].stats(&sale).await;
        (s["admitted_active"].as_i64() == Some(UNITS as i64)).then_some(())
    })
    .await;
    assert!(admitted.is_some(), "every unit's shopper admitted");
    let standings = join_all(joined.iter().map(|j| apps[0].status(&sale, &j.token))).await;
    let tickets: Vec<String> = standings
        .iter()
        .filter_map(|s| s["ticket"].as_str().map(str::to_string))
        .collect();
    assert_eq!(tickets.len(), UNITS);

    let heard = Arc::new(Mutex::new(Heard::default()));
    let bought = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let storm = join_all(tickets.iter().enumerate().map(|(i, t)| {
        let (app, sale, heard, bought) = (&apps[i % 2], &sale, &heard, &bought);
        async move {
            // Paced: the fault lands mid-storm, not after it.
            tokio::time::sleep_until(start + Duration::from_millis(8 * i as u64)).await;
            buy(app, sale, t, heard, bought).await;
        }
    }));
    let fault = async {
        let reached = |n: usize| {
            let bought = bought.clone();
            eventually(Duration::from_secs(60), move || {
                let bought = bought.clone();
                async move { (bought.load(Ordering::SeqCst) >= n).then_some(()) }
            })
        };
        reached(UNITS / 3).await.expect("a third sold");
        let copy = server.copy_aof();
        reached(2 * UNITS / 3).await.expect("two thirds sold");
        server.kill9();
        std::fs::remove_dir_all(server.aof()).unwrap();
        if loss == Loss::AofTail {
            std::fs::rename(&copy, server.aof()).unwrap();
        }
        server.run().await;
        // Before any settle, Redis's stock is from before orders the ledger holds.
        let mut r = redis_at(&url).await;
        let stock: Option<i64> = redis::AsyncCommands::get(&mut r, format!("wr:{{{sale}}}:stock"))
            .await
            .unwrap();
        (stock, ledger_orders(&sale).await.len())
    };
    let (_, (stock_after, sold_at_restart)) = tokio::join!(storm, fault);
    match loss {
        Loss::AofTail => assert!(
            stock_after.unwrap() + sold_at_restart as i64 > UNITS as i64,
            "the restarted Redis is behind the ledger (stock {stock_after:?}, sold {sold_at_restart})"
        ),
        Loss::Everything => assert_eq!(stock_after, None, "the restarted Redis is empty"),
    }

    // Every ticket holder bought exactly once, and the ledger has every order anyone heard of.
    let heard = std::mem::take(&mut *heard.lock().unwrap());
    assert!(
        heard.codes.iter().all(|c| matches!(c, 200 | 201 | 503)),
        "only 201, 200 and 503: {:?}",
        heard
            .codes
            .iter()
            .filter(|c| !matches!(c, 200 | 201 | 503))
            .collect::<Vec<_>>()
    );
    let mut ledger = ledger_orders(&sale).await;
    ledger.sort();
    assert_eq!(ledger.len(), UNITS, "every admitted ticket holder bought");
    for o in &heard.orders {
        assert!(
            ledger.contains(o),
            "a 201 order is missing from the ledger: {o:?}"
        );
    }
    let row: (i32, i32) = sqlx::query_as("SELECT units, sold FROM sales WHERE id = $1")
        .bind(&sale)
        .fetch_one(&pg().await)
        .await
        .unwrap();
    assert_eq!(
        row,
        (UNITS as i32, UNITS as i32),
        "(units, sold) in the ledger"
    );

    // A retried checkout returns the shopper's own order, from either instance.
    for (i, t) in tickets.iter().enumerate() {
        let (code, v) = checkout_once(&apps[(i + 1) % 2], &sale, t).await.unwrap();
        let mine = ledger.iter().find(|(q, _)| *q == qid(t));
        assert_eq!(
            (code, v["order_id"].as_str()),
            (200, mine.map(|(_, id)| id.as_str())),
            "a retry returns the same order"
        );
    }

    // Settled: Redis agrees with the ledger, the sale is open again, no order was refused.
    let settled = eventually(WAIT, || async {
        let s = apps[0].stats(&sale).await;
        let mut r = redis_at(&url).await;
        let unsettled: bool =
            redis::AsyncCommands::exists(&mut r, format!("wr:{{{sale}}}:unsettled"))
                .await
                .unwrap();
        (!unsettled).then_some(s)
    })
    .await
    .expect("the sale settles");
    assert_eq!(settled["remaining"], 0, "stock + sold = units");
    assert_eq!(settled["open"], true, "the sale comes back open");
    assert!(
        !captured_logs().contains("ledger refused an order redis accepted"),
        "Postgres's CHECK never had to refuse an order"
    );
}

#[tokio::test]
async fn redis_back_from_an_aof_missing_its_tail_sells_nothing_twice() {
    if !waitroom_testkit::alone!(redis_back_from_an_aof_missing_its_tail_sells_nothing_twice) {
        return;
    }
    storm_through(Loss::AofTail).await;
}

#[tokio::test]
async fn redis_back_with_nothing_keeps_every_promise() {
    if !waitroom_testkit::alone!(redis_back_with_nothing_keeps_every_promise) {
        return;
    }
    storm_through(Loss::Everything).await;
}
