//! A sale run through nginx (`deploy/nginx.conf`) in front of two instances: joins spread
//! over both, the stream unbuffered, the gate guarding the shop, and the door counting the
//! shopper nginx forwards rather than nginx itself. Shoppers connect from their own loopback
//! addresses (127.0.0.2, ...), so nginx sees each as a different client; only 127.0.0.1,
//! nginx's own address towards the instances, is a trusted proxy.

use std::collections::HashSet;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};
use waitroom::flows::door::{places, ClientKey};

use waitroom_testkit::nginx::Nginx;
use waitroom_testkit::*;

/// The shoppers, each from its own address.
const SHOPPERS: [[u8; 4]; 4] = [
    [127, 0, 0, 2],
    [127, 0, 0, 3],
    [127, 0, 0, 4],
    [127, 0, 0, 5],
];

fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

async fn admin(nginx: &Nginx, path: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new()
        .post(nginx.url(&format!("/api/admin/sales{path}")))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    res.json().await.unwrap()
}

async fn join(nginx: &Nginx, from: &reqwest::Client, sale: &str) -> reqwest::Response {
    let res = from
        .post(nginx.url(&format!("/api/sales/{sale}/queue")))
        .send()
        .await
        .unwrap();
    remember_session(&res);
    res
}

type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// The shopper's stream through nginx, as the page opens it (token in the wr_queue cookie).
async fn events(nginx: &Nginx, from: &reqwest::Client, sale: &str, token: &str) -> Events {
    let cookie = session_cookie(token).expect("a session for the token");
    let res = from
        .get(nginx.url(&format!("/api/sales/{sale}/events")))
        .header("cookie", format!("{cookie}; wr_queue={token}"))
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    Box::pin(
        res.bytes_stream()
            .eventsource()
            .filter_map(|e| async { e.ok() }),
    )
}

/// `GET /shop/{sale}/` through nginx's auth_request, with these extra headers.
async fn shop(nginx: &Nginx, from: &reqwest::Client, sale: &str, h: &[(&str, &str)]) -> u16 {
    let mut req = from.get(nginx.url(&format!("/shop/{sale}/")));
    for (k, v) in h {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

/// Which instances (by port) nginx sent this sale's joins to, once `n` are logged.
async fn join_upstreams(nginx: &Nginx, sale: &str, n: usize) -> HashSet<String> {
    let needle = format!("\"POST /api/sales/{sale}/queue\" 201");
    let ports = eventually(WAIT, || async {
        let ports: Vec<String> = nginx
            .access_log()
            .iter()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| l.split("upstream=127.0.0.1:").nth(1))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
            .collect();
        (ports.len() >= n).then_some(ports)
    })
    .await;
    ports
        .expect("every join in nginx's access log")
        .into_iter()
        .collect()
}

#[tokio::test]
async fn a_sale_runs_through_nginx_in_front_of_two_instances() {
    let behind_nginx = |c: &mut waitroom::core::config::Config| {
        c.door.clients.trusted = vec!["127.0.0.1/32".parse().unwrap()];
    };
    let (a, b) = (
        spawn_app_with(behind_nginx).await,
        spawn_app_with(behind_nginx).await,
    );
    let nginx = Nginx::start(&[a.port, b.port]).await;

    // One place per client address: a join counted against 127.0.0.1 would refuse the second.
    let sale = unique("ngx");
    let body = json!({
        "id": sale, "name": "Through nginx", "units": 3, "price_cents": 900,
        "rate_per_sec": 50, "ticket_ttl_secs": 60, "max_per_order": 1,
        "max_places_per_client": 1
    });
    admin(&nginx, "", Some(body)).await;
    let clients: Vec<_> = SHOPPERS.iter().map(|ip| client_from(*ip)).collect();
    let mut tokens = Vec::new();
    for (ip, from) in SHOPPERS.iter().zip(&clients) {
        let res = join(&nginx, from, &sale).await;
        assert_eq!(res.status(), 201);
        let v: Value = res.json().await.unwrap();
        let tag = places::tag(&ClientKey::of(IpAddr::from(*ip)), None);
        let queue_id = v["queue_id"].as_str().unwrap();
        assert!(
            queue_id.ends_with(&format!(".{tag}")),
            "{queue_id} is not {ip:?}'s"
        );
        tokens.push(v["token"].as_str().unwrap().to_string());
    }
    let ports = join_upstreams(&nginx, &sale, SHOPPERS.len()).await;
    let both: HashSet<String> = [a.port, b.port].iter().map(u16::to_string).collect();
    assert_eq!(ports, both, "joins spread over both instances");

    // A second browser at the first address is over its cap, whatever it claims to be.
    for spoof in [None, Some("198.51.100.7")] {
        let mut req = clients[0].post(nginx.url(&format!("/api/sales/{sale}/queue")));
        if let Some(ip) = spoof {
            req = req.header("x-forwarded-for", ip);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 429);
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["code"], "too_many_places");
    }

    // Unbuffered: the first event is through nginx at once, not when a buffer fills.
    let first = &clients[0];
    let mut stream = events(&nginx, first, &sale, &tokens[0]).await;
    let state = tokio::time::timeout(Duration::from_secs(1), stream.next())
        .await
        .expect("the first event within 1 s: nginx does not buffer the stream")
        .expect("an event");
    assert_eq!(state.event, "state");

    admin(&nginx, &format!("/{sale}/open"), None).await;
    let admitted = tokio::time::timeout(WAIT, async {
        while let Some(e) = stream.next().await {
            if e.event == "admitted" {
                return e;
            }
        }
        panic!("the stream ended before admission")
    })
    .await
    .expect("admitted through nginx");
    let data: Value = serde_json::from_str(&admitted.data).unwrap();
    let ticket = data["ticket"].as_str().unwrap().to_string();

    // The shop lets the ticket in, by cookie or bearer, for its own sale only.
    let cookie = format!("wr_ticket={ticket}");
    let bearer = format!("Bearer {ticket}");
    assert_eq!(
        shop(&nginx, first, &sale, &[("cookie", &cookie)]).await,
        200
    );
    assert_eq!(
        shop(&nginx, first, &sale, &[("authorization", &bearer)]).await,
        200
    );
    let other = format!("x{sale}");
    assert_eq!(
        shop(&nginx, first, &other, &[("cookie", &cookie)]).await,
        401
    );
    assert_eq!(shop(&nginx, &clients[1], &sale, &[]).await, 401);
    let queue_token = format!("Bearer {}", tokens[1]);
    let waiting = &[("authorization", queue_token.as_str())];
    assert_eq!(shop(&nginx, &clients[1], &sale, waiting).await, 401);

    let res = as_browser(
        first.post(nginx.url(&format!("/api/sales/{sale}/checkout"))),
        &ticket,
    )
    .bearer_auth(&ticket)
    .json(&json!({ "quantity": 1 }))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.unwrap();
    assert!(order["order_id"].as_str().is_some(), "{order}");
}

#[tokio::test]
async fn nginx_keeps_versioned_assets_and_answers_json_when_no_instance_does() {
    let app = spawn_app().await;
    let nginx = Nginx::start(&[app.port]).await;
    let client = reqwest::Client::new();
    let page = client.get(nginx.url("/")).send().await.unwrap();
    let html = page.text().await.unwrap();
    let at = html.find("/static/").expect("the page links its assets");
    let version = html[at + "/static/".len()..].split('/').next().unwrap();
    let css = nginx.url(&format!("/static/{version}/style.css"));
    let cached = eventually(WAIT, || async {
        let res = client.get(&css).send().await.unwrap();
        assert_eq!(res.status(), 200);
        (res.headers()["x-cache-status"] == "HIT").then_some(())
    })
    .await;
    assert!(cached.is_some(), "the asset is served from nginx's cache");

    app.handle.stop().await;
    let res = client.get(nginx.url("/api/sales")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["code"], "unavailable");
    // A kept asset outlives the instance.
    assert_eq!(client.get(&css).send().await.unwrap().status(), 200);
}
