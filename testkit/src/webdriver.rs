//! A tiny W3C WebDriver client: plain JSON over HTTP to a chromedriver the test starts.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::api::unique;
use crate::services::repo_root;
use crate::wait::eventually;

/// The W3C key under which a found element's id comes back.
pub const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a page has to reach a state: a browser is quick once it runs.
pub const WAIT: Duration = Duration::from_secs(10);
const CHROME_ARGS: &str = "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --disable-quic --no-first-run --disable-background-networking --disable-component-update \
    --disable-sync --window-size=412,915";

/// target/browser: screenshots and chromedriver's log.
pub fn out_dir() -> PathBuf {
    repo_root().join("target/browser")
}

/// A chromedriver child process. Dropping it (also while a failed assertion unwinds) ends
/// its sessions, kills it and removes the browser profiles.
pub struct Driver {
    child: Child,
    port: u16,
    http: reqwest::Client,
    profiles: PathBuf,
    sessions: Mutex<Vec<String>>,
}

impl Driver {
    pub async fn start(chromedriver: &str) -> Driver {
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

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// One WebDriver command; Err carries the driver's `error: message`.
    pub async fn call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
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
    pub async fn session(&self, name: &'static str, chromium: Option<&str>) -> Browser<'_> {
        self.session_sized(name, chromium, true).await
    }

    /// A phone-sized window, or a desktop one (1280 x 1000) when `phone` is false.
    pub async fn session_sized(
        &self,
        name: &'static str,
        chromium: Option<&str>,
        phone: bool,
    ) -> Browser<'_> {
        let mut args: Vec<String> = CHROME_ARGS.split_whitespace().map(String::from).collect();
        let profile = self.profiles.join(name);
        args.push(format!("--user-data-dir={}", profile.display()));
        // Chrome will not size a window under 500 px wide: emulate the phone's viewport.
        let metrics = json!({ "width": 412, "height": 915, "pixelRatio": 1 });
        let mut chrome = json!({ "args": args, "mobileEmulation": { "deviceMetrics": metrics } });
        if !phone {
            let args = chrome["args"].as_array_mut().unwrap();
            args.retain(|a| !a.as_str().unwrap().starts_with("--window-size"));
            args.push(json!("--window-size=1280,1000"));
            chrome.as_object_mut().unwrap().remove("mobileEmulation");
        }
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
pub struct Browser<'a> {
    d: &'a Driver,
    id: String,
    pub name: &'static str,
}

impl Browser<'_> {
    pub async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/session/{}{path}", self.id);
        let r = self.d.call(method, &path, body).await;
        r.unwrap_or_else(|e| panic!("browser {}: {e}", self.name))
    }

    pub async fn get(&self, path: &str) -> Value {
        self.cmd("GET", path, Value::Null).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.cmd("POST", path, body).await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn reload(&self) {
        self.post("/refresh", json!({})).await;
    }

    pub async fn exec(&self, script: &str, args: Value) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": args }))
            .await
    }

    pub async fn find(&self, css: &str) -> String {
        let found = self.post("/element", json!({ "using": "css selector", "value": css }));
        found.await[ELEMENT].as_str().unwrap().to_string()
    }

    /// Types `text` into the input `css` after clearing it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/clear"), json!({})).await;
        self.post(&format!("/element/{el}/value"), json!({ "text": text }))
            .await;
    }

    /// A Chrome DevTools Protocol command, through chromedriver.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let body = json!({ "cmd": cmd, "params": params });
        self.post("/goog/cdp/execute", body).await
    }

    pub async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.post(&format!("/element/{el}/click"), json!({})).await;
    }

    /// The rendered text: empty for a hidden element.
    pub async fn text(&self, css: &str) -> String {
        let el = self.find(css).await;
        let v = self.get(&format!("/element/{el}/text")).await;
        v.as_str().unwrap_or_default().trim().to_string()
    }

    pub async fn attr(&self, css: &str, name: &str) -> String {
        let el = self.find(css).await;
        let v = self.get(&format!("/element/{el}/attribute/{name}")).await;
        v.as_str().unwrap_or_default().to_string()
    }

    pub async fn displayed(&self, css: &str) -> bool {
        let el = self.find(css).await;
        self.get(&format!("/element/{el}/displayed")).await == true
    }

    pub async fn screenshot(&self, file: &str) {
        let png = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap());
        // Again here: another browser test clears the folder when it starts.
        std::fs::create_dir_all(out_dir()).unwrap();
        std::fs::write(out_dir().join(file), png.unwrap()).unwrap();
    }

    /// For failure messages: the page's state and the message it shows.
    pub async fn context(&self) -> String {
        let state = self.attr("#state", "data-state").await;
        let msg = self.text("#message").await;
        format!(
            "browser {}: data-state={state:?} #message={msg:?}",
            self.name
        )
    }

    /// Waits up to 10 s until `#state` is one of `states` ("a|b") and the text of `field`
    /// passes `ok`; returns that text.
    pub async fn wait(&self, states: &str, field: &str, ok: impl Fn(&str) -> bool) -> String {
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
    pub async fn join(&self, page: &str, place: &str) {
        self.goto(page).await;
        self.wait("join", "#join", |t| !t.is_empty()).await;
        self.click("#join").await;
        self.wait("closed|waiting", "#position", |t| t == place)
            .await;
    }

    /// Uncaught page errors from the browser log (network noise is ignored).
    pub async fn js_errors(&self) -> Vec<String> {
        let log = self.post("/se/log", json!({ "type": "browser" })).await;
        let log = log.as_array().cloned().unwrap_or_default();
        let js = log.iter().filter(|e| e["source"] == "javascript");
        let severe = js.filter(|e| e["level"] == "SEVERE");
        severe.map(|e| e["message"].to_string()).collect()
    }

    /// A cookie's value from the browser's jar (HttpOnly ones too).
    pub async fn cookie(&self, name: &str) -> String {
        let c = self.get(&format!("/cookie/{name}")).await;
        c["value"].as_str().unwrap_or_default().to_string()
    }

    pub async fn close(self) {
        self.cmd("DELETE", "", Value::Null).await;
        self.d.sessions.lock().unwrap().retain(|s| *s != self.id);
    }
}
