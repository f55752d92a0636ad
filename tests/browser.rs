//! A real Chromium drives the shopper page at `/s/{sale}` against the real app, through a tiny
//! W3C WebDriver client (plain JSON over HTTP to a chromedriver this test starts).
//!
//! Skipped, loudly, when `WAITROOM_CHROMEDRIVER` is unset (scripts/test sets it); once it is
//! set, a browser that will not start is a failure. Screenshots land in `target/browser/`.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use common::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(10);
const CHROME_ARGS: &str = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --disable-quic --no-first-run --disable-background-networking --disable-component-update \
    --disable-sync --window-size=412,915";

fn out_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser")
}

/// A chromedriver child process. Dropping it (also while a failed assertion unwinds) ends
/// its sessions, kills it and removes the browser profiles.
struct Driver {
    child: Child,
    port: u16,
    http: reqwest::Client,
    profiles: PathBuf,
    sessions: Mutex<Vec<String>>,
}

impl Driver {
    async fn start(chromedriver: &str) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
        let port = port.unwrap().port();
        let log = format!(
            "--log-path={}",
            out_dir().join("chromedriver.log").display()
        );
        let child = Command::new(chromedriver)
            .args([format!("--port={port}"), log])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {chromedriver}: {e}"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build();
        let mut d = Driver {
            child,
            port,
            http: http.unwrap(),
            profiles: std::env::temp_dir().join(unique("waitroom-browser")),
            sessions: Mutex::new(Vec::new()),
        };
        let ready = eventually(WAIT, || async {
            let v = d.call("GET", "/status", Value::Null).await.ok()?;
            v["ready"].as_bool().filter(|r| *r)
        });
        if ready.await.is_none() {
            let exit = d.child.try_wait();
            panic!("chromedriver not ready on :{port} in 10 s (exit: {exit:?})");
        }
        d
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// One WebDriver command; Err carries the driver's `error: message`.
    async fn call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.http.request(method.clone(), self.url(path));
        if method == reqwest::Method::POST {
            req = req.json(&body);
        }
        let res = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        let v: Value = res.json().await.map_err(|e| format!("{path}: {e}"))?;
        match v["value"]["error"].as_str() {
            Some(err) => Err(format!("{path}: {err}: {}", v["value"]["message"])),
            None => Ok(v["value"].clone()),
        }
    }

    /// A new browser window with its own fresh profile (so its own localStorage).
    async fn session(&self, name: &'static str, chromium: Option<&str>) -> Browser<'_> {
        let mut args: Vec<String> = CHROME_ARGS.split_whitespace().map(String::from).collect();
        let profile = self.profiles.join(name);
        args.push(format!("--user-data-dir={}", profile.display()));
        // Chrome will not size a window under 500 px wide: emulate the phone's viewport.
        let metrics = json!({ "width": 412, "height": 915, "pixelRatio": 1 });
        let mut chrome = json!({ "args": args, "mobileEmulation": { "deviceMetrics": metrics } });
        if let Some(bin) = chromium {
            chrome["binary"] = json!(bin);
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": chrome,
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let v = self.call("POST", "/session", caps).await;
        let v = v.unwrap_or_else(|e| panic!("browser {name} did not start: {e}"));
        let id = v["sessionId"].as_str().unwrap().to_string();
        self.sessions.lock().unwrap().push(id.clone());
        Browser { d: self, id, name }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Blocking and runtime-free, since this also runs while a panic unwinds.
        for id in self.sessions.lock().unwrap().drain(..) {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let req = format!(
                    "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n",
                    self.port
                );
                let _ = s.write_all(req.as_bytes());
                let _ = s.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profiles);
    }
}

/// One browser session. Commands panic on a WebDriver error, naming the browser.
struct Browser<'a> {
    d: &'a Driver,
    id: String,
    name: &'static str,
}

impl Browser<'_> {
    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.id);
        let r = self.d.call(method, &path, body).await;
        r.unwrap_or_else(|e| panic!("browser {}: {e}", self.name))
    }

    async fn get(&self, path: &str) -> Value {
        self.cmd("GET", path, Value::Null).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd("POST", path, body).await
    }

    async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    async fn reload(&self) {
        self.post("/refresh", json!({})).await;
    }

    async fn exec(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    async fn find(&self, css: &str) -> String {
        let found = self.post("/element", json!({ "using": "css selector", "value": css }));
        found.await[ELEMENT].as_str().unwrap().to_string()
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/click"), json!({})).await;
    }

    /// The rendered text: empty for a hidden element.
    async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        let v = self.get(&format!("/element/{el}/text")).await;
        v.as_str().unwrap_or_default().trim().to_string()
    }

    async fn attr(&self, css: &str, name: &str) -> String {
        let el = self.find(css).await;
        let v = self.get(&format!("/element/{el}/attribute/{name}")).await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn displayed(&self, css: &str) -> bool {
        let el = self.find(css).await;
        self.get(&format!("/element/{el}/displayed")).await == true
    }

    async fn screenshot(&self, file: &str) {
        let png = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap());
        std::fs::write(out_dir().join(file), png.unwrap()).unwrap();
    }

    /// For failure messages: the page's state and the message it shows.
    async fn context(&self) -> String {
        let state = self.attr("#state", "data-state").await;
        let msg = self.text("#message").await;
        format!(
            "browser {}: data-state={state:?} #message={msg:?}",
            self.name
        )
    }

    /// Waits up to 10 s until `#state` is one of `states` ("a|b") and the text of `field`
    /// passes `ok`; returns that text.
    async fn wait(&self, states: &str, field: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let state = self.attr("#state", "data-state").await;
            let there = states.split('|').any(|s| s == state);
            let text = match there {
                true => self.text(field).await,
                false => String::new(),
            };
            if there && ok(&text) {
                return text;
            }
            if Instant::now() > deadline {
                self.screenshot(&format!("failed-{}.png", self.name)).await;
                let ctx = self.context().await;
                panic!("{ctx}: wanted {states} with a fitting {field} (it shows {text:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens the sale page, clicks "Join the line" and waits for the place it should get.
    async fn join(&self, page: &str, place: &str) {
        self.goto(page).await;
        self.wait("join", "#join", |t| !t.is_empty()).await;
        self.click("#join").await;
        self.wait("closed|waiting", "#position", |t| t == place)
            .await;
    }

    /// Uncaught page errors from the browser log (network noise is ignored).
    async fn js_errors(&self) -> Vec<String> {
        let log = self.post("/se/log", json!({ "type": "browser" })).await;
        let log = log.as_array().cloned().unwrap_or_default();
        let js = log.iter().filter(|e| e["source"] == "javascript");
        let severe = js.filter(|e| e["level"] == "SEVERE");
        severe.map(|e| e["message"].to_string()).collect()
    }

    /// A cookie's value from the browser's jar (HttpOnly ones too).
    async fn cookie(&self, name: &str) -> String {
        let c = self.get(&format!("/cookie/{name}")).await;
        c["value"].as_str().unwrap_or_default().to_string()
    }

    async fn close(self) {
        self.cmd("DELETE", "", Value::Null).await;
        self.d.sessions.lock().unwrap().retain(|s| *s != self.id);
    }
}

/// Two shoppers in two Chromium windows: both queue before the sale opens, A is let in and
/// buys the only unit, B is told it sold out; A's unpaid hold then lapses and B gets the unit.
#[tokio::test]
async fn two_shoppers_in_chromium_queue_buy_sell_out_and_get_a_released_unit() {
    let Ok(chromedriver) = std::env::var("WAITROOM_CHROMEDRIVER") else {
        eprintln!("\n!!! SKIPPED the browser test: WAITROOM_CHROMEDRIVER is not set !!!");
        eprintln!("!!! (scripts/test sets it; or point it at a chromedriver) !!!\n");
        return;
    };
    let chromium = std::env::var("WAITROOM_CHROMIUM").ok();
    capture_logs();
    let _ = std::fs::remove_dir_all(out_dir()); // no stale failure shots from an earlier run
    std::fs::create_dir_all(out_dir()).unwrap();
    let app = spawn_app().await;
    let extra = json!({ "ticket_ttl_secs": 60, "max_per_order": 1, "hold_secs": 6 });
    let sale = app.create_sale_with(1, 50, extra).await;
    let page = app.url(&format!("/s/{sale}"));
    let driver = Driver::start(&chromedriver).await;
    let non_empty = |t: &str| !t.is_empty();

    // 1-2. Both get in line before the sale opens: A first, then B.
    let a = driver.session("a", chromium.as_deref()).await;
    a.join(&page, "1").await;
    let b = driver.session("b", chromium.as_deref()).await;
    b.join(&page, "2").await;
    let queue_len = app.stats(&sale).await["queue_len"].clone();
    assert_eq!(queue_len, 2, "{}", b.context().await);
    a.screenshot("1-waiting-a.png").await;
    b.screenshot("2-waiting-b.png").await;

    // 3. Opening admits A, pushed over the live stream; A buys the only unit.
    app.admin(&sale, "open").await;
    a.wait("admitted", "#buy", non_empty).await;
    assert!(a.displayed("#buy").await, "{}", a.context().await);
    let conn = a.attr("#conn", "data-conn").await;
    assert_eq!(conn, "live", "not live: {}", a.context().await);
    a.screenshot("3-admitted.png").await;
    // The page hands the ticket to the shop's origin as a cookie the gate accepts.
    let gate = a
        .exec(
            "const x = new XMLHttpRequest(); \
             x.open('GET', '/api/gate?sale=' + arguments[0], false); x.send(); return x.status;",
            json!([sale]),
        )
        .await;
    assert_eq!(
        gate,
        json!(204),
        "gate with the page's cookie: {}",
        a.context().await
    );
    a.click("#buy").await;
    let order_id = a.wait("purchased", "#order-id", non_empty).await;
    let hold = a.text("#order-hold").await;
    assert!(hold.contains("payment before"), "no deadline: {hold:?}");
    let key = json!([format!("waitroom:{sale}:token")]);
    let js = "return localStorage.getItem(arguments[0]);";
    let token = a.exec(js, key).await;
    let token = token.as_str().expect("the queue token is in localStorage");
    // The token alone is refused: it is bound to A's session cookie.
    let bare = app
        .client
        .get(app.url(&format!("/api/sales/{sale}/status")));
    let bare = bare.bearer_auth(token).send().await.unwrap();
    assert_eq!(bare.status(), 403, "a token without its browser's cookie");
    let a_sid = a.cookie("wr_sid").await;
    remember_sid(&a_sid);
    let status = app.status(&sale, token).await;
    assert_eq!(status["status"], "purchased", "{status}");
    assert_eq!(status["order_id"], order_id.as_str(), "{status}");
    let stats = app.stats(&sale).await;
    let sold = sold_remaining(&stats);
    assert_eq!(sold, (Some(1), Some(0)), "{stats}");
    a.screenshot("4-purchased.png").await;

    // 4. B, still in line, is told over its live stream that the last unit went.
    b.wait("sold_out", "#soldout-text", non_empty).await;
    let conn = b.attr("#conn", "data-conn").await;
    assert_eq!(conn, "live", "B heard it by polling: {}", b.context().await);
    b.screenshot("5-sold-out.png").await;

    // 5. A reload keeps the purchase: the token in localStorage holds the place.
    a.reload().await;
    let again = a.wait("purchased", "#order-id", non_empty).await;
    assert_eq!(again, order_id, "{}", a.context().await);

    // 6. A's hold lapses unpaid: the unit comes back, and B, still listening, is let in.
    b.wait("admitted", "#buy", non_empty).await;
    b.screenshot("6-restocked-b.png").await;
    b.click("#buy").await;
    b.wait("purchased", "#order-id", |t| !t.is_empty() && t != order_id)
        .await;
    let sold = app.stats(&sale).await["sold"].clone();
    assert_eq!(sold, 1, "A's lapsed order and B's new one: one unit sold");

    for br in [&a, &b] {
        let errors = br.js_errors().await;
        assert!(errors.is_empty(), "browser {}: {errors:#?}", br.name);
    }
    // 7. No token, ticket or session id of either shopper ever reached a log line.
    let mut secrets = vec![token.to_string(), a_sid, b.cookie("wr_sid").await];
    for br in [&a, &b] {
        for what in ["token", "ticket"] {
            let key = json!([format!("waitroom:{sale}:{what}")]);
            let v = br.exec(js, key).await;
            secrets.extend(v.as_str().map(str::to_string));
        }
    }
    let logs = captured_logs();
    assert!(
        logs.contains("/api/sales/{id}/queue"),
        "no request spans in the logs"
    );
    for secret in secrets.iter().filter(|s| s.len() > 8) {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret in the logs: {secret}"
        );
    }
    a.close().await;
    b.close().await;
    drop(driver);
}

/// A sale asking a proof-of-work: the page solves it in a worker, showing its progress, and
/// gets a place; the server saw a proof (it refuses a join without one).
#[tokio::test]
async fn a_sale_asking_proof_of_work_is_joined_through_the_page() {
    let Ok(chromedriver) = std::env::var("WAITROOM_CHROMEDRIVER") else {
        eprintln!("\n!!! SKIPPED the browser test: WAITROOM_CHROMEDRIVER is not set !!!\n");
        return;
    };
    let chromium = std::env::var("WAITROOM_CHROMIUM").ok();
    std::fs::create_dir_all(out_dir()).unwrap();
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(5, 50, json!({ "pow_difficulty": 12 }))
        .await;
    let refused = app.join_raw(&sale, None).await;
    assert_eq!(refused.status(), 400, "no proof, no place");
    let driver = Driver::start(&chromedriver).await;
    let s = driver.session("pow", chromium.as_deref()).await;
    s.goto(&app.url(&format!("/s/{sale}"))).await;
    s.wait("join", "#join", |t| !t.is_empty()).await;
    // Remember the last progress text shown, however briefly.
    let watch = "const el = document.querySelector('#pow-status'); window.__pow = ''; \
        new MutationObserver(() => { if (el.textContent) window.__pow = el.textContent; }) \
        .observe(el, { childList: true, characterData: true, subtree: true });";
    s.exec(watch, json!([])).await;
    s.click("#join").await;
    s.wait("closed|waiting", "#position", |t| t == "1").await;
    let shown = s.exec("return window.__pow;", json!([])).await;
    let shown = shown.as_str().unwrap_or_default().to_string();
    assert!(
        shown.starts_with("Checking your browser") && shown.ends_with("hashes"),
        "progress shown: {shown:?}"
    );
    assert!(
        !s.displayed("#pow-status").await,
        "progress hidden once joined"
    );
    assert_eq!(app.stats(&sale).await["queue_len"], 1);
    let errors = s.js_errors().await;
    assert!(errors.is_empty(), "{errors:#?}");
    s.close().await;
}
