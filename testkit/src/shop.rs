//! A shop's payment page, for the hand-off: a real HTTP server on its own port whose
//! `POST /pay` takes the form field `waitroom_token`, verifies it as any shop would (the
//! waitroom's public keys from `/.well-known/jwks.json`, EdDSA, `aud` = this shop's origin,
//! `typ` = `wr-order`, `exp`), redeems its `jti` (the order id) once, and answers a page
//! saying `verified order <jti>: <quantity> for <total_cents>`, or a 401 page saying why not.
//!
//! The browser test posts to it; `./scripts/run` runs it as the demo shop
//! (`Shop::start_on`). It keeps no secret: only what the JWKS publishes.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Mutex;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use jsonwebtoken::jwk::JwkSet;

/// The form field the queue page posts.
pub const TOKEN_FIELD: &str = "waitroom_token";

pub struct Shop {
    /// `http://127.0.0.1:<port>`: the `aud` it accepts.
    pub origin: String,
    handle: ServerHandle,
}

struct Config {
    origin: String,
    jwks_url: String,
    http: reqwest::Client,
    /// Order ids already paid for here: a token is good once.
    redeemed: Mutex<HashSet<String>>,
}

impl Shop {
    /// A shop on a free local port, trusting the waitroom at `waitroom` (its base URL).
    pub async fn start(waitroom: &str) -> Shop {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        Self::start_on(any, waitroom).await.expect("the shop binds")
    }

    /// A shop listening on `bind`, trusting the waitroom at `waitroom`.
    pub async fn start_on(bind: SocketAddr, waitroom: &str) -> std::io::Result<Shop> {
        let listener = std::net::TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let origin = format!("http://{addr}");
        let config = web::Data::new(Config {
            origin: origin.clone(),
            jwks_url: format!("{}/.well-known/jwks.json", waitroom.trim_end_matches('/')),
            http: reqwest::Client::new(),
            redeemed: Mutex::default(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(config.clone())
                .route("/pay", web::post().to(pay))
        })
        .listen(listener)?
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Shop { origin, handle })
    }

    /// The payment page: what a sale's `checkout_url` names.
    pub fn pay_url(&self) -> String {
        format!("{}/pay", self.origin)
    }

    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

async fn pay(
    config: web::Data<Config>,
    form: Result<web::Form<Vec<(String, String)>>, actix_web::Error>,
) -> HttpResponse {
    let token = form.ok().and_then(|f| {
        f.0.into_iter()
            .find(|(k, _)| k == TOKEN_FIELD)
            .map(|(_, v)| v)
    });
    let Some(token) = token else {
        return page(401, &format!("refused: no {TOKEN_FIELD} field"));
    };
    match verify(&config, &token).await {
        Ok(c) => {
            let fresh = config.redeemed.lock().unwrap().insert(c.jti.clone());
            if !fresh {
                return page(
                    409,
                    &format!("refused: order {} was redeemed before", c.jti),
                );
            }
            let line = format!(
                "verified order {}: {} for {}",
                c.jti, c.quantity, c.total_cents
            );
            // What the demo shop of ./scripts/run shows in its terminal.
            println!("[shop] payment page: {line}");
            page(200, &line)
        }
        Err(why) => {
            println!("[shop] payment page refused a token: {why}");
            page(401, &format!("refused: {why}"))
        }
    }
}

// The README's snippet ("Handing the buyer to the shop"): what this shop runs is what it shows.
#[path = "../../docs/snippets/verify_handoff.rs"]
mod verify_handoff;

/// What the shop reads from a verified token.
struct Order {
    jti: String,
    quantity: i64,
    total_cents: i64,
}

/// Verifies a hand-off token as a shop does, from the waitroom's JWKS.
async fn verify(config: &Config, token: &str) -> Result<Order, String> {
    let jwks: JwkSet = async {
        let res = config.http.get(&config.jwks_url).send().await?;
        res.error_for_status()?.json().await
    }
    .await
    .map_err(|e| format!("cannot read the JWKS ({e})"))?;
    let claims = verify_handoff::verify_handoff(token, &jwks, &config.origin)
        .map_err(|e| format!("invalid token ({e})"))?;
    let jti = claims["jti"].as_str().ok_or("no jti")?;
    Ok(Order {
        jti: jti.to_string(),
        quantity: claims["quantity"].as_i64().ok_or("no quantity")?,
        total_cents: claims["total_cents"].as_i64().ok_or("no total_cents")?,
    })
}

fn page(status: u16, line: &str) -> HttpResponse {
    let escaped = line
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let status = actix_web::http::StatusCode::from_u16(status).expect("a status");
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><title>Test shop</title><h1 id=\"result\">{escaped}</h1>"
        ))
}
