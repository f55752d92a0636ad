//! What a proof-of-work costs a shopper: headless Chromium, driven over WebDriver (plain JSON
//! through the bench's own HTTP client, as tests/suite/browser/ does with reqwest), opens a sale's
//! page and runs the page's own `prove()` (static/js/pow.js: challenge fetch, Web Worker start,
//! the solve) several times, timed with `performance.now()`.
//!
//! Skipped with a note when chromedriver or Chromium is missing.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::{pow::BITS, say, Ctx};
use crate::api::ADMIN_TOKEN;
use crate::client::{Conn, Req};
use crate::report::Report;

const SOLVES: usize = 9;
const CHROME_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Each solve's time and hash count, from the page. Resolves through WebDriver's async
/// script callback (the last argument).
const SCRIPT: &str = r#"
const [sale, n, done] = arguments;
(async () => {
  const main = document.querySelector('script[type=module]').src;
  const { prove } = await import(main.replace(/main\.js$/, 'pow.js'));
  const out = [];
  for (let i = 0; i < n; i++) {
    let hashes = 0;
    const t = performance.now();
    const p = await prove(sale, (h) => { hashes = h; });
    if (!p.nonce) throw new Error('no proof asked');
    out.push({ ms: performance.now() - t, hashes });
  }
  return out;
})().then(done, (e) => done({ error: String(e) }));
"#;

struct Driver {
    child: Child,
    port: u16,
    conn: Conn,
    session: Option<String>,
}

impl Driver {
    async fn start(bin: &str) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {bin}"))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut d = Self {
            child,
            port,
            conn: Conn::new(addr),
            session: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while d
            .call(Req::get("/status"))
            .await
            .ok()
            .and_then(|v| v["ready"].as_bool())
            != Some(true)
        {
            if Instant::now() > deadline {
                bail!("chromedriver not ready within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(d)
    }

    async fn call(&mut self, req: Req) -> Result<Value> {
        let v = self.conn.send(&req).await?.json()?;
        if let Some(e) = v["value"]["error"].as_str() {
            bail!("webdriver: {e}: {}", v["value"]["message"]);
        }
        Ok(v["value"].clone())
    }

    async fn open(&mut self, chromium: &str) -> Result<String> {
        let chrome = json!({ "binary": chromium, "args": CHROME_ARGS });
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": chrome,
        }}});
        let v = self.call(Req::post("/session").json(&caps)).await?;
        let id = v["sessionId"]
            .as_str()
            .context("no session id")?
            .to_string();
        self.session = Some(id.clone());
        Ok(id)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Killing chromedriver leaves its Chromium running: end the session first. A Drop
        // cannot await, so a plain blocking request on a fresh socket.
        if let Some(id) = &self.session {
            use std::io::Write;
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    s,
                    "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                );
                let _ = std::io::Read::read(&mut s, &mut [0u8; 512]);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let (driver_bin, chromium) = (
        env("WAITROOM_CHROMEDRIVER", "/usr/bin/chromedriver"),
        env("WAITROOM_CHROMIUM", "/usr/bin/chromium"),
    );
    if !Path::new(&driver_bin).exists() || !Path::new(&chromium).exists() {
        r.note(format!(
            "browser-pow skipped: {driver_bin} or {chromium} not found"
        ));
        return Ok(());
    }
    let inst = ctx.start("browser-pow").await?;
    let sale = ctx.sale_id("browser-pow");
    let body = json!({
        "id": sale, "name": "bench pow", "units": 1000, "price_cents": 2500,
        "pow_difficulty": BITS,
    });
    let req = Req::post("/api/admin/sales")
        .bearer(ADMIN_TOKEN)
        .json(&body);
    let res = Conn::new(inst.addr).send(&req).await?;
    if res.status != 201 {
        bail!("create sale {sale}: {}", res.describe());
    }
    let mut d = Driver::start(&driver_bin).await?;
    let id = d.open(&chromium).await?;
    let url = format!("http://{}/s/{sale}", inst.addr);
    d.call(Req::post(format!("/session/{id}/url")).json(&json!({ "url": url })))
        .await?;
    d.call(Req::post(format!("/session/{id}/timeouts")).json(&json!({ "script": 600_000 })))
        .await?;
    say(format!(
        "browser-pow: {SOLVES} solves at {BITS} bits in headless Chromium"
    ));
    let out = d
        .call(
            Req::post(format!("/session/{id}/execute/async"))
                .json(&json!({ "script": SCRIPT, "args": [sale, SOLVES] })),
        )
        .await?;
    if let Some(e) = out["error"].as_str() {
        bail!("the page's solve failed: {e}");
    }
    let runs = out.as_array().context("no solve times")?;
    let field = |k: &str| -> Vec<f64> { runs.iter().filter_map(|v| v[k].as_f64()).collect() };
    let (mut ms, hashes) = (field("ms"), field("hashes"));
    let rate = hashes.iter().sum::<f64>() / (ms.iter().sum::<f64>() / 1000.0);
    let median = super::median(&mut ms);
    say(format!(
        "browser-pow: median {median:.0} ms (each: {}), {rate:.0} hashes/s",
        ms.iter()
            .map(|m| format!("{m:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    r.set("pow_browser_solve_ms", median);
    r.set("pow_browser_hashes_per_sec", rate);
    Ok(())
}
