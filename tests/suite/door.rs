//! The door: per-client rate limits on the real app. Limits refill once an hour here, so the
//! (burst + 1)-th request is refused however slow the machine is, with no clock in the test.

use reqwest::{RequestBuilder, Response};
use serde_json::{json, Value};
use waitroom::core::config::{RateLimits, WideLimits};

use waitroom_testkit::*;

const BURST: u32 = 3;

/// Writes and reads each allow `BURST` requests, then (practically) nothing.
async fn limited_app(trusted: &[&str]) -> TestApp {
    let trusted: Vec<_> = trusted.iter().map(|c| c.parse().unwrap()).collect();
    spawn_app_with(|c| {
        c.door.limits = RateLimits {
            write_per_sec: 1.0 / 3600.0,
            write_burst: BURST,
            read_per_sec: 1.0 / 3600.0,
            read_burst: BURST,
            ..RateLimits::default()
        };
        c.door.clients.trusted = trusted;
    })
    .await
}

fn join(app: &TestApp, sale: &str) -> RequestBuilder {
    app.client
        .post(app.url(&format!("/api/sales/{sale}/queue")))
}

fn sale_info(app: &TestApp, sale: &str) -> RequestBuilder {
    app.client.get(app.url(&format!("/api/sales/{sale}")))
}

/// A 429 in the contract's shape: `rate_limited`, and a whole-second `Retry-After` >= 1.
async fn assert_rate_limited(res: Response) {
    assert_eq!(res.status(), 429);
    let after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(after >= 1, "Retry-After {after}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn a_client_over_its_write_burst_is_refused_with_retry_after() {
    let app = limited_app(&[]).await;
    let sale = app.create_sale(10, 1).await;
    for _ in 0..BURST {
        assert_eq!(join(&app, &sale).send().await.unwrap().status(), 201);
    }
    assert_rate_limited(join(&app, &sale).send().await.unwrap()).await;
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let text = metrics.text().await.unwrap();
    let refused = text
        .lines()
        .find_map(|l| l.strip_prefix("waitroom_limiter_rejections_total{class=\"write\"} "))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the rejection counter is exported");
    assert!(refused >= 1);
}

#[tokio::test]
async fn a_forwarded_for_header_from_an_untrusted_peer_buys_no_budget() {
    let app = limited_app(&[]).await;
    let sale = app.create_sale(10, 1).await;
    // Each request claims to be someone new; the peer is what counts.
    for n in 0..BURST {
        let res = join(&app, &sale)
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    for n in 0..5 {
        let res = join(&app, &sale)
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .send()
            .await
            .unwrap();
        assert_rate_limited(res).await;
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let app = limited_app(&["127.0.0.1/32"]).await;
    let sale = app.create_sale(10, 1).await;
    let from = |client: &str| join(&app, &sale).header("x-forwarded-for", client.to_string());
    for _ in 0..BURST {
        assert_eq!(from("203.0.113.7").send().await.unwrap().status(), 201);
    }
    assert_rate_limited(from("203.0.113.7").send().await.unwrap()).await;
    // A neighbour behind the same proxy is not punished for it; the client's own spoofed
    // left-most entry changes nothing either.
    assert_eq!(from("203.0.113.8").send().await.unwrap().status(), 201);
    assert_rate_limited(from("1.2.3.4, 203.0.113.7").send().await.unwrap()).await;
    // IPv6 clients count by /64: another address in the same /64 is the same client.
    for n in 0..BURST {
        let res = from(&format!("2001:db8:1:2::{n}")).send().await.unwrap();
        assert_eq!(res.status(), 201);
    }
    assert_rate_limited(from("2001:db8:1:2::ff").send().await.unwrap()).await;
    assert_eq!(from("2001:db8:1:3::1").send().await.unwrap().status(), 201);
}

#[tokio::test]
async fn reads_and_writes_spend_separate_budgets() {
    let app = limited_app(&[]).await;
    let sale = app.create_sale(10, 1).await;
    for _ in 0..BURST {
        assert_eq!(join(&app, &sale).send().await.unwrap().status(), 201);
    }
    assert_rate_limited(join(&app, &sale).send().await.unwrap()).await;
    // Out of writes, the page can still read the sale, until its reads run out too.
    for _ in 0..BURST {
        assert_eq!(sale_info(&app, &sale).send().await.unwrap().status(), 200);
    }
    assert_rate_limited(sale_info(&app, &sale).send().await.unwrap()).await;
    let status = app
        .client
        .get(app.url(&format!("/api/sales/{sale}/status")));
    assert_rate_limited(status.send().await.unwrap()).await;
    // The operator's routes are not the shopper's budget.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let stats = app.stats(&sale).await;
    assert_eq!(stats["queue_len"], BURST as i64);
}

/// 300 rotating /64s of one /48 (a host given the /48) count as `share` clients, for rates
/// and for a sale's places cap; a /64 of another /48 is unaffected.
#[tokio::test]
async fn rotating_ipv6_64s_share_their_48s_rates_and_places() {
    let from = |n: u32| format!("2001:db8:7:{n:x}::1");
    let elsewhere = "2001:db8:8::1";
    let count_201 = |app: &TestApp, sale: &str, hosts: Vec<String>| {
        let reqs: Vec<_> = hosts
            .into_iter()
            .map(|h| join(app, sale).header("x-forwarded-for", h).send())
            .collect();
        async move {
            let mut codes = Vec::new();
            for r in reqs {
                codes.push(r.await.unwrap().status().as_u16());
            }
            (codes.iter().filter(|&&c| c == 201).count(), codes)
        }
    };

    // Rates: BURST writes per /64, four /64s' worth per /48.
    let app = spawn_app_with(|c| {
        c.door.limits = RateLimits {
            write_per_sec: 1.0 / 3600.0,
            write_burst: BURST,
            wide: WideLimits {
                prefix: 48,
                share: 4,
            },
            ..RateLimits::default()
        };
        c.door.clients.trusted = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let sale = app.create_sale(1000, 1).await;
    let (joined, codes) = count_201(&app, &sale, (0..300).map(from).collect()).await;
    assert_eq!(joined, 4 * BURST as usize, "{codes:?}");
    assert!(codes.iter().all(|&c| c == 201 || c == 429));
    let (joined, _) = count_201(&app, &sale, vec![elsewhere.into()]).await;
    assert_eq!(joined, 1, "another /48");

    // Places: one per /64, four per /48, however many /64s ask.
    let app = spawn_app_with(|c| {
        c.door.limits = RateLimits {
            wide: WideLimits {
                prefix: 48,
                share: 4,
            },
            ..RateLimits::off()
        };
        c.door.clients.trusted = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let sale = app
        .create_sale_with(1000, 1, json!({"max_places_per_client": 1}))
        .await;
    let (joined, codes) = count_201(&app, &sale, (0..300).map(from).collect()).await;
    assert_eq!(joined, 4, "{codes:?}");
    assert!(codes.iter().all(|&c| c == 201 || c == 429));
    let (joined, _) = count_201(&app, &sale, vec![elsewhere.into()]).await;
    assert_eq!(joined, 1, "another /48");
}
