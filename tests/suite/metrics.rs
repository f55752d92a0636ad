//! `/metrics` read the way Prometheus reads it: a small real sale, then the scrape parsed with
//! a Prometheus text parser. The recorder is one per process and other tests run beside this
//! one, so it asserts on its own sale's series and on increases, never on global totals.

use std::collections::HashMap;

use prometheus_parse::{Scrape, Value as Prom};
use serde_json::{json, Value};
use waitroom::core::config::RateLimits;

use waitroom_testkit::*;

async fn scrape(app: &TestApp) -> Scrape {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

/// Observations in a histogram series (its `+Inf` bucket); 0 when not exported yet.
fn observed(s: &Scrape, name: &str, label: (&str, &str)) -> f64 {
    let series = s
        .samples
        .iter()
        .find(|m| m.metric == name && m.labels.get(label.0) == Some(label.1));
    match series.map(|m| &m.value) {
        Some(Prom::Histogram(buckets)) => {
            buckets
                .iter()
                .find(|b| b.less_than == f64::INFINITY)
                .expect("a +Inf bucket")
                .count
        }
        Some(other) => panic!("{name} is not a histogram: {other:?}"),
        None => 0.0,
    }
}

fn latency(s: &Scrape, route: &str) -> f64 {
    observed(s, "waitroom_request_duration_seconds", ("route", route))
}

/// The four per-sale gauges of `sale`, by name.
fn sale_gauges(s: &Scrape, sale: &str) -> HashMap<String, f64> {
    s.samples
        .iter()
        .filter(|m| m.labels.get("sale") == Some(sale))
        .filter_map(|m| match m.value {
            Prom::Gauge(v) => Some((m.metric.clone(), v)),
            _ => None,
        })
        .collect()
}

fn value(s: &Scrape, name: &str, label: Option<(&str, &str)>) -> Option<f64> {
    let m = s
        .samples
        .iter()
        .find(|m| m.metric == name && label.is_none_or(|(k, v)| m.labels.get(k) == Some(v)))?;
    match m.value {
        Prom::Counter(v) | Prom::Gauge(v) | Prom::Untyped(v) => Some(v),
        _ => None,
    }
}

#[tokio::test]
async fn a_sale_shows_in_the_scrape_with_its_gauges_latencies_and_limits() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    let sale = app
        .create_sale_with(3, 1000, json!({"ticket_ttl_secs": 3600}))
        .await;
    let (a, b) = (app.join(&sale).await, app.join(&sale).await);
    app.admin(&sale, "open").await;
    let ticket_a = app.ticket(&sale, &a.token).await;
    app.ticket(&sale, &b.token).await;
    app.admin(&sale, "close").await;
    // Joins a closed sale: stays in line, and keeps a stream open.
    let waiting = app.join(&sale).await;
    let url = app.url(&format!("/api/sales/{sale}/events"));
    let _stream = open_events(&app.client, &url, &waiting.token, None).await;

    let res = app.checkout(&sale, &ticket_a, 1).await;
    assert_eq!(res.status(), 201);
    let order: Value = res.json().await.unwrap();
    let paid =
        json!({"order_id": order["order_id"], "event_id": unique("ev"), "outcome": "succeeded"});
    assert_eq!(app.payment_event(&paid, PAYMENT_SECRET).await.status(), 200);
    let p99 = waitroom::infra::metrics::checkout_p99_ms().expect("a checkout in the last minute");
    assert!(p99 > 0.0, "{p99}");

    // A second instance, whose read budget is one request: its /metrics is the same recorder.
    let limited = spawn_app_with(|c| {
        c.door.limits = RateLimits {
            read_per_sec: 1.0 / 3600.0,
            read_burst: 1,
            ..RateLimits::off()
        }
    })
    .await;
    let info = || {
        limited
            .client
            .get(limited.url(&format!("/api/sales/{sale}")))
    };
    assert_eq!(info().send().await.unwrap().status(), 200);
    assert_eq!(info().send().await.unwrap().status(), 429);

    // One unit sold of three; A's ticket spent, B's live; C waiting; A and B admitted. Every
    // instance's ticker samples this sale from the same Redis, so the numbers settle.
    let want: HashMap<String, f64> = [
        ("waitroom_sale_queue_length", 1.0),
        ("waitroom_sale_units_left", 2.0),
        ("waitroom_sale_active_tickets", 1.0),
        ("waitroom_sale_admitted", 2.0),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let after = eventually(WAIT, || async {
        let s = scrape(&app).await;
        (sale_gauges(&s, &sale) == want).then_some(s)
    })
    .await
    .unwrap_or_else(|| panic!("the sale's gauges never read {want:?}"));

    for (route, n) in [
        ("join", 3.0),
        ("status", 2.0),
        ("checkout", 1.0),
        ("webhook", 1.0),
    ] {
        assert!(
            latency(&after, route) >= latency(&before, route) + n,
            "{route} latency: {} -> {}",
            latency(&before, route),
            latency(&after, route)
        );
    }
    let ticks = |s: &Scrape| {
        s.samples
            .iter()
            .find(|m| m.metric == "waitroom_ticker_lag_seconds_count")
            .map(|m| m.value.clone())
    };
    assert!(
        matches!(ticks(&after), Some(Prom::Untyped(n)) if n > 0.0),
        "ticker lag: {:?}",
        ticks(&after)
    );
    let refused = value(
        &after,
        "waitroom_limiter_rejections_total",
        Some(("class", "read")),
    );
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
    let streams = value(&after, "waitroom_sse_streams", None);
    assert!(streams.is_some_and(|n| n >= 1.0), "{streams:?}");
    for counter in ["waitroom_joins_total", "waitroom_orders_total"] {
        let (was, now) = (value(&before, counter, None), value(&after, counter, None));
        assert!(now > was && now.is_some(), "{counter}: {was:?} -> {now:?}");
    }

    // The other instance renders the same recorder, and every name is ours.
    let other = scrape(&limited).await;
    assert_eq!(sale_gauges(&other, &sale).len(), 4);
    for s in [&after, &other] {
        for name in s.samples.iter().map(|m| &m.metric).chain(s.docs.keys()) {
            assert!(name.starts_with("waitroom_"), "{name}");
        }
    }
}
