//! What an instance writes to its log when nothing is wrong on its side: no WARN or ERROR line
//! for a client's mistakes, and none from an idle instance. In a process of its own
//! (`alone!`), so the captured log holds only this test's instance, with its own Redis and
//! database: nobody else's sales can make it speak.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use waitroom_testkit::*;

/// A redis-server of the test's own, stopped however the test ends.
struct RedisServer(Child);

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A redis-server of the test's own and an empty database: a world with no sales at all.
struct World {
    app: TestApp,
    _redis: RedisServer,
    redis_url: String,
    database: String,
}

impl World {
    async fn start(tick: Duration, sweep: Duration) -> World {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map(RedisServer)
            .expect("redis-server is installed (scripts/test installs it)");
        let redis_url = format!("redis://127.0.0.1:{port}/0");
        let up = eventually(WAIT, || async {
            let client = redis::Client::open(redis_url.as_str()).ok()?;
            let mut c = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING").query_async::<String>(&mut c).await.ok()
        })
        .await;
        assert!(up.is_some(), "redis-server on {port} answers");
        let database = format!("wr_{}", unique("quiet").replace('-', "_"));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&pg().await)
            .await
            .unwrap();
        let base = database_url();
        let db_url = format!("{}/{database}", &base[..base.rfind('/').unwrap()]);
        let url = redis_url.clone();
        let app = spawn_app_with(move |c| {
            c.redis.url = url;
            c.postgres.url = db_url.into();
            c.loops.tick = tick;
            c.loops.sweep = sweep;
        })
        .await;
        World {
            app,
            _redis: redis,
            redis_url,
            database,
        }
    }

    /// How often the private Redis ran one command (INFO commandstats).
    async fn calls(&self, command: &str) -> u64 {
        let mut r = redis_at(&self.redis_url).await;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut r)
            .await
            .unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }

    async fn stop(self) {
        self.app.handle.stop().await;
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.database);
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&pg().await)
            .await
            .unwrap();
    }
}

/// Lines at WARN or ERROR in everything captured so far. sqlx's "slow statement" is left
/// out: a busy test machine is not what these tests are about.
fn loud_lines() -> Vec<String> {
    captured_logs()
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| !l.contains("slow statement"))
        .map(str::to_string)
        .collect()
}

/// Sends raw bytes to the app and reads until it closes the connection.
fn raw(port: u16, bytes: &[u8]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let _ = s.read_to_end(&mut Vec::new());
}

/// One world for both checks: tearing one down (its database dropped under its pool) makes
/// sqlx warn, which a second world's check would hear.
#[tokio::test]
async fn no_warning_from_an_idle_instance_or_a_clients_mistakes() {
    if !waitroom_testkit::alone!(no_warning_from_an_idle_instance_or_a_clients_mistakes) {
        return;
    }
    capture_logs();
    // The lost-sales check runs every ten sweeps, the first at start. The ticker, which also
    // lists sales, ticks once (at start), so the count below is the sweeper's.
    let w = World::start(Duration::from_secs(3600), Duration::from_millis(20)).await;
    an_instance_with_no_sales_logs_nothing(&w).await;
    client_mistakes_are_logged_below_warn(&w).await;
    w.stop().await;
}

async fn client_mistakes_are_logged_below_warn(w: &World) {
    let app = &w.app;
    let malformed: [&[u8]; 3] = [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: zz\r\n\r\n",
    ];
    for bytes in malformed {
        let port = app.port;
        tokio::task::spawn_blocking(move || raw(port, bytes))
            .await
            .unwrap();
    }
    // actix-http logs after the connection closed: wait for all three, said at DEBUG.
    let demoted = eventually(WAIT, || async {
        let n = captured_logs().matches("client broke HTTP").count();
        (n >= malformed.len()).then_some(n)
    })
    .await;
    assert!(demoted.is_some(), "{}", captured_logs());

    let c = &app.client;
    let statuses = [
        app.join_raw("no-such-sale", None).await.status(),
        app.join_raw("Bad_Id!", None).await.status(),
        app.create_sale_json(json!({"id": "x", "name": "a\u{0}"}))
            .await
            .status(),
        app.create_sale_json(json!({"id": "x", "name": "a\u{0}b", "units": 1, "price_cents": 1}))
            .await
            .status(),
        c.post(app.url("/api/admin/sales"))
            .bearer_auth("wrong-admin-token")
            .send()
            .await
            .unwrap()
            .status(),
        app.payment_event(&json!({"event_id": "x"}), "wrong-secret")
            .await
            .status(),
        app.payment_event(
            &json!({"order_id": uuid::Uuid::new_v4(), "event_id": "e\u{0}", "outcome": "failed"}),
            PAYMENT_SECRET,
        )
        .await
        .status(),
        c.get(app.url("/api/sales/x/status"))
            .bearer_auth("garbage")
            .send()
            .await
            .unwrap()
            .status(),
        c.delete(app.url("/api/sales"))
            .send()
            .await
            .unwrap()
            .status(),
        c.get(app.url("/nope")).send().await.unwrap().status(),
    ];
    assert!(statuses.iter().all(|s| s.is_client_error()), "{statuses:?}");
    // A request's span is written when it closes, which may be just after its response.
    let spans = eventually(WAIT, || async {
        let n = captured_logs().matches("http.status_code=4").count();
        (n >= statuses.len()).then_some(n)
    })
    .await;
    assert!(spans.is_some(), "{}", captured_logs());
    assert_eq!(loud_lines(), Vec::<String>::new());
}

async fn an_instance_with_no_sales_logs_nothing(w: &World) {
    let swept = eventually(WAIT, || async {
        let n = w.calls("smembers").await;
        (n >= 35).then_some(n)
    })
    .await;
    assert!(swept.is_some(), "the sweeper runs");
    assert!(!captured_logs().contains("empty command"));
    assert_eq!(loud_lines(), Vec::<String>::new());
}
