//! The demo shop `./scripts/run` starts beside the waitroom, so a newcomer sees the whole
//! loop: a payment page that verifies the buyer's hand-off token from the JWKS (the test kit's
//! `Shop`) and a webhook receiver that verifies and prints every delivery. It registers itself:
//! an endpoint for the demo sale's events and the sale's `checkout_url`, both taken back when
//! it stops (Ctrl-C or TERM).
//!
//! Environment: WAITROOM_URL [http://127.0.0.1:8080], WAITROOM_ADMIN_TOKEN (required),
//! WAITROOM_DEMO_SALE [demo], WAITROOM_DEMO_SHOP_BIND [127.0.0.1:8090].

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::signal::unix::{signal, SignalKind};
use waitroom_testkit::receiver::{Answer, Receiver};
use waitroom_testkit::shop::Shop;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// One admin call; the answer's JSON (null for an empty body).
async fn admin(
    http: &reqwest::Client,
    (base, token): (&str, &str),
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Result<Value> {
    let res = http
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("{path}: the waitroom does not answer"))?;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{path}: {status} {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::main]
async fn main() -> Result<()> {
    let base = env_or("WAITROOM_URL", "http://127.0.0.1:8080");
    let token = std::env::var("WAITROOM_ADMIN_TOKEN").context("WAITROOM_ADMIN_TOKEN is unset")?;
    let sale = env_or("WAITROOM_DEMO_SALE", "demo");
    let bind = env_or("WAITROOM_DEMO_SHOP_BIND", "127.0.0.1:8090");
    let api = (base.as_str(), token.as_str());
    let http = reqwest::Client::new();

    let shop = Shop::start_on(bind.parse().context("WAITROOM_DEMO_SHOP_BIND")?, &base).await?;
    let receiver = Receiver::start().await;
    receiver.policy(|r, _| {
        let verified = if r.verified {
            "verified"
        } else {
            "NOT verified"
        };
        println!(
            "[shop] webhook {} ({verified}) {}: {}",
            r.event_type, r.webhook_id, r.data
        );
        Answer::Ok
    });
    let hook = json!({"url": receiver.url(), "sales": [sale], "description": "demo shop"});
    let endpoint = admin(
        &http,
        api,
        reqwest::Method::POST,
        "/api/admin/webhooks",
        hook,
    )
    .await?;
    receiver.trust(
        endpoint["secret"]
            .as_str()
            .context("the endpoint's secret")?,
    );
    let id = endpoint["id"]
        .as_str()
        .context("the endpoint's id")?
        .to_string();
    let sale_path = format!("/api/admin/sales/{sale}");
    let url = json!({"checkout_url": shop.pay_url()});
    admin(&http, api, reqwest::Method::PATCH, &sale_path, url).await?;
    println!(
        "[shop] payment page {} (the {sale} sale's checkout_url)",
        shop.pay_url()
    );
    println!("[shop] webhook receiver {} (endpoint {id})", receiver.url());

    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let del = reqwest::Method::DELETE;
    let gone = admin(
        &http,
        api,
        del,
        &format!("/api/admin/webhooks/{id}"),
        Value::Null,
    )
    .await;
    let none = json!({"checkout_url": null});
    let cleared = admin(&http, api, reqwest::Method::PATCH, &sale_path, none).await;
    if let Err(e) = gone.and(cleared) {
        eprintln!("[shop] could not take the registration back: {e:#}");
    }
    shop.stop().await;
    receiver.stop().await;
    Ok(())
}
