use futures_util::StreamExt;

use crate::checkout::admitted_tickets;
use waitroom_testkit::*;

#[tokio::test]
async fn the_gate_lets_valid_admission_tickets_through_and_nothing_else() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let queue_token = app.join(&sale).await.token;
    let ticket = admitted_tickets(&app, &sale, 1).await.remove(0);
    let gate = |q: &str| app.client.get(app.url(&format!("/api/gate{q}")));
    let for_sale = format!("?sale={sale}");
    let res = gate(&for_sale).bearer_auth(&ticket).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(res.headers()["x-waitroom-sale"], sale.as_str());
    let res = gate(&for_sale)
        .header("cookie", format!("wr_ticket={ticket}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "the ticket also works as a cookie");
    let res = gate("")
        .header("x-waitroom-sale", &sale)
        .bearer_auth(&ticket)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "nginx names the sale in a header");
    let status = |r: reqwest::RequestBuilder| async move { r.send().await.unwrap().status() };
    let other = gate("?sale=another-sale").bearer_auth(&ticket);
    assert_eq!(status(other).await, 401, "a ticket of another sale");
    let queue = gate(&for_sale).bearer_auth(&queue_token);
    assert_eq!(status(queue).await, 401, "a queue token is no ticket");
    assert_eq!(status(gate(&for_sale)).await, 401, "no ticket");
    let res = gate("").bearer_auth(&ticket).send().await.unwrap();
    assert_eq!(res.status(), 400, "the gate must be told which sale");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "sale_required");
}

/// A proxy that forwards the client's query string names the sale in its header too: the
/// header decides, so a ticket of sale A does not open shop B by adding `?sale=A`.
#[tokio::test]
async fn the_gate_believes_the_header_over_the_query() {
    let app = spawn_app().await;
    let a = app.create_sale(5, 1000).await;
    let b = app.create_sale(5, 1000).await;
    let ticket_a = admitted_tickets(&app, &a, 1).await.remove(0);
    let gate = |query: &str, header: &str| {
        app.client
            .get(app.url(&format!("/api/gate?sale={query}")))
            .header("x-waitroom-sale", header)
            .bearer_auth(&ticket_a)
    };
    let res = gate(&a, &b).send().await.unwrap();
    assert_eq!(res.status(), 401, "shop B's gate, sale A in the query");
    let res = gate(&b, &a).send().await.unwrap();
    assert_eq!(res.status(), 204, "shop A's gate, whatever the query says");
    assert_eq!(res.headers()["x-waitroom-sale"], a.as_str());
}

#[tokio::test]
async fn health_readiness_metrics_and_cache_headers() {
    let app = spawn_app().await;
    let get = |p: &str| app.client.get(app.url(p)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    let ready: serde_json::Value = get("/readyz").await.unwrap().json().await.unwrap();
    assert_eq!(
        ready,
        serde_json::json!({"redis": true, "postgres": true, "scripts": true})
    );
    let sale = app.create_sale(5, 10).await;
    app.join(&sale).await;
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(metrics.contains("waitroom_joins_total"));
    let api = get("/api/sales").await.unwrap();
    assert_eq!(api.headers()["cache-control"], "no-store");
    let page = get(&format!("/s/{sale}")).await.unwrap();
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let html = page.text().await.unwrap();
    let js = html
        .split('"')
        .find(|s| s.starts_with("/static/") && s.ends_with("/js/main.js"))
        .expect("the page links its entry module under a content hash");
    let asset = get(js).await.unwrap();
    assert_eq!(
        asset.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(
        asset.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(!js.contains("__ASSET_VERSION__"));
}

#[tokio::test]
async fn static_files_are_served_by_version_and_unknown_ones_are_json_404s() {
    let app = spawn_app().await;
    let get = |p: &str| app.client.get(app.url(p)).send();
    let html = get("/").await.unwrap().text().await.unwrap();
    let preloads: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("/static/") && s.ends_with(".js"))
        .collect();
    assert!(preloads.len() > 2, "the page names its modules: {html}");
    for path in preloads {
        let res = get(path).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(
            res.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
    }
    // A version this instance does not have (the far side of a deploy) gets today's file,
    // which a cache must not keep under that name.
    let other = get("/static/000000000000/js/main.js").await.unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(other.headers()["cache-control"], "no-cache");
    for missing in ["/static/app.js", "/static/x/js/nope.js", "/static/"] {
        let res = get(missing).await.unwrap();
        assert_eq!(res.status(), 404, "{missing}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], "not_found", "{missing}");
    }
}

/// Stopping an instance ends its open streams itself, with a clean end of the body, instead
/// of leaving them for the server to cut when its drain timeout runs out; then the server
/// stops listening.
#[tokio::test]
async fn stopping_an_instance_ends_its_streams_cleanly() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 10).await;
    let me = app.join(&sale).await;
    let req = app
        .client
        .get(app.url(&format!("/api/sales/{sale}/events")));
    let res = as_browser(req, &me.token)
        .bearer_auth(&me.token)
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    assert!(body.next().await.is_some());
    let handle = app.handle.clone();
    let stopping = tokio::spawn(async move { handle.stop().await });
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match body.next().await {
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    })
    .await
    .expect("the stream did not end");
    if let Err(e) = end {
        panic!("the stream was cut, not ended: {e:?}");
    }
    let stopped = tokio::time::timeout(WAIT, stopping).await;
    assert!(stopped.is_ok(), "the server did not stop");
    let res = app.client.get(app.url("/healthz")).send().await;
    assert!(res.is_err(), "still serving after stop: {res:?}");
}

#[tokio::test]
async fn admission_tickets_verify_with_a_standard_jwt_library_from_the_jwks() {
    let app = spawn_app().await;
    let sale = app.create_sale(5, 1000).await;
    let ticket = admitted_tickets(&app, &sale, 1).await.remove(0);
    let jwks = app.jwks().await;
    let header = jsonwebtoken::decode_header(&ticket).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in jwks");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&[&sale]);
    v.set_issuer(&["waitroom"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&ticket, &key, &v).expect("verifies");
    assert_eq!(data.claims["typ"], "wr-admission");
    assert_eq!(data.claims["jti"], data.claims["sub"]);
}
