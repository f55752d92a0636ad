//! The draw (issue 22): entries before the opening ranked by a committed seed, later joins
//! behind in arrival order, anyone able to check it.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde_json::{json, Value};

use waitroom::core::domain::draw::{self, Published};
use waitroom_testkit::*;

/// Joins `n` shoppers, spread over the apps in turn, 32 at a time; returns them in the order
/// their joins were answered with their join sequence, sorted by it (arrival order).
async fn join_many(apps: &[&TestApp], sale: &str, n: usize) -> Vec<(i64, Joined)> {
    let mut joined: Vec<(i64, Joined)> = futures_util::stream::iter(0..n)
        .map(|i| async move {
            let res = apps[i % apps.len()].join_raw(sale, None).await;
            assert_eq!(res.status(), 201);
            let v: Value = res.json().await.unwrap();
            let j = Joined {
                token: v["token"].as_str().unwrap().to_string(),
                queue_id: v["queue_id"].as_str().unwrap().to_string(),
                position: v["position"].as_i64().unwrap(),
            };
            (v["seq"].as_i64().unwrap(), j)
        })
        .buffer_unordered(32)
        .collect()
        .await;
    joined.sort_by_key(|(seq, _)| *seq);
    joined
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let res = app.client.get(app.url(path)).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn published(app: &TestApp, sale: &str) -> Published {
    let (status, v) = get(app, &format!("/api/sales/{sale}/draw")).await;
    assert_eq!(status, 200, "{v}");
    serde_json::from_value(v).unwrap()
}

/// Waits for the draw to run; returns what it published and the entries in rank order.
async fn drawn(app: &TestApp, sale: &str) -> (Published, Vec<String>) {
    let p = eventually(WAIT, || async {
        Some(published(app, sale).await).filter(|p| p.seed.is_some())
    })
    .await
    .expect("the draw runs at the opening");
    let (status, v) = get(app, &format!("/api/sales/{sale}/draw/entries")).await;
    assert_eq!(status, 200);
    (p, serde_json::from_value(v).unwrap())
}

/// The waiting line as Redis holds it, front first.
async fn line(sale: &str) -> Vec<String> {
    redis()
        .await
        .zrange(format!("wr:{{{sale}}}:queue"), 0, -1)
        .await
        .unwrap()
}

/// A PATCH's status and JSON answer.
async fn patch(app: &TestApp, sale: &str, body: Value) -> (u16, Value) {
    let res = crate::live_changes::patch(app, sale, &body).await;
    (res.status().as_u16(), res.json().await.unwrap())
}

/// A stand-in server publishing `draw` and `entries` (whatever they say) at every sale's
/// draw paths, on a thread of its own; returns its base URL.
fn serve_forever(draw: Value, entries: Value) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = match request_line.contains("/draw/entries") {
                true => entries.to_string(),
                false => draw.to_string(),
            };
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close";
            let _ = write!(
                conn,
                "{head}\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    base
}

/// `waitroom verify-draw <base> <sale>`, run off the test's runtime thread: the instances
/// answering it run on that thread too.
async fn verify_draw_bin(base: &str, sale: &str) -> std::process::Output {
    let args = [
        "verify-draw".to_string(),
        base.to_string(),
        sale.to_string(),
    ];
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_waitroom"))
            .args(args)
            .output()
    })
    .await
    .unwrap()
    .unwrap()
}

fn rank_of(entries: &[String]) -> HashMap<&str, usize> {
    entries
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect()
}

/// A flipped hex character, as a tampered publication would have.
fn flipped(hex: &str) -> String {
    let mut b = hex.as_bytes().to_vec();
    b[0] = if b[0] == b'0' { b'1' } else { b'0' };
    String::from_utf8(b).unwrap()
}

/// 5,000 entries over two instances before a scheduled opening, more joins after: the line is
/// the draw's order then arrival order, anyone can check it, tampering shows, and a Redis
/// wipe after the draw brings the same order back from tokens and the ledger.
#[tokio::test]
async fn five_thousand_entries_are_drawn_at_a_scheduled_opening_and_anyone_can_check() {
    let (a, b) = (spawn_app().await, spawn_app().await);
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    // One admitted at a time until the checks below are done.
    let extra = json!({"prequeue": "draw", "draw_beacon": "drand 1234: abcd",
        "opens_at": later, "max_active": 1, "rate_per_sec": 1});
    let sale = a.create_sale_with(10_000, 1, extra).await;

    let before = published(&b, &sale).await;
    assert_eq!(before.algorithm, "draw-v1");
    assert_eq!((before.seed.as_ref(), before.entries), (None, 0));
    assert_eq!(before.beacon.as_deref(), Some("drand 1234: abcd"));
    assert_eq!(
        a.public_sale(&sale).await["draw"]["commitment"],
        before.commitment
    );
    let (status, v) = get(&a, &format!("/api/sales/{sale}/draw/entries")).await;
    assert_eq!((status, v["code"].as_str()), (409, Some("draw_pending")));

    let entrants = join_many(&[&a, &b], &sale, 5_000).await;
    let (status, v) = patch(&a, &sale, json!({"draw_beacon": "drand 1235: ef01"})).await;
    assert_eq!(status, 200, "{v}");
    let opens = chrono::Utc::now() + chrono::Duration::milliseconds(300);
    assert_eq!(patch(&a, &sale, json!({"opens_at": opens})).await.0, 200);

    let (p, entries) = drawn(&b, &sale).await;
    assert_eq!(
        p.commitment, before.commitment,
        "the commitment never changes"
    );
    let seed = draw::unhex(p.seed.as_deref().unwrap()).unwrap();
    assert_eq!(draw::commitment(&seed), before.commitment, "SHA-256(seed)");
    assert_eq!(p.beacon.as_deref(), Some("drand 1235: ef01"));
    assert_eq!(p.entries, 5_000);
    let mut ids: Vec<String> = entrants
        .iter()
        .map(|(_, j)| draw::public_id(&j.queue_id))
        .collect();
    let mut listed = entries.clone();
    ids.sort();
    listed.sort();
    assert_eq!(listed, ids, "the ranks are a permutation of the entries");
    let (status, v) = patch(&a, &sale, json!({"draw_beacon": "late"})).await;
    assert_eq!((status, v["code"].as_str()), (409, Some("draw_started")));

    // Anyone can check: the library, the binary, and tampering shows.
    let base = a.addr.clone();
    let checked = waitroom::flows::draw::verify_remote(&base, &sale_id(&sale))
        .await
        .unwrap();
    assert!(checked.mismatches.is_empty(), "{:?}", checked.mismatches);
    let mut bad_seed = p.clone();
    bad_seed.seed = p.seed.as_deref().map(flipped);
    assert!(!draw::verify(&bad_seed, &entries).is_empty());
    let mut bad_entry = entries.clone();
    bad_entry[17] = flipped(&bad_entry[17]);
    assert!(!draw::verify(&p, &bad_entry).is_empty());
    let out = verify_draw_bin(&base, &sale).await;
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("match:"),
        "{text}{err}"
    );
    // The binary against a publication with one entry's byte changed: a mismatch, exit 1.
    let forged = serve_forever(json!(p), json!(bad_entry));
    let out = verify_draw_bin(&forged, &sale).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("mismatch:"), "{text}");

    // Later joins queue behind the entries in arrival order.
    let late = join_many(&[&b, &a], &sale, 200).await;
    let rank = rank_of(&entries);
    let public: HashMap<String, String> = entrants
        .iter()
        .chain(&late)
        .map(|(_, j)| (j.queue_id.clone(), draw::public_id(&j.queue_id)))
        .collect();
    let order =
        |line: &[String]| -> Vec<String> { line.iter().map(|q| public[q].clone()).collect() };
    let waiting = line(&sale).await;
    let admitted = 5_200 - waiting.len();
    assert!(admitted <= 1, "max_active holds the line");
    let expected: Vec<String> = entries[admitted..]
        .iter()
        .cloned()
        .chain(late.iter().map(|(_, j)| draw::public_id(&j.queue_id)))
        .collect();
    let differ = order(&waiting)
        .iter()
        .zip(&expected)
        .position(|(x, y)| x != y);
    assert_eq!(differ, None, "rank order, then arrival order");
    assert_eq!(waiting.len(), expected.len());
    let first = &entrants
        .iter()
        .find(|(_, j)| rank[public[&j.queue_id].as_str()] == 2)
        .unwrap()
        .1;
    let again = a.join_with(&sale, Some(&first.token)).await;
    assert_eq!(
        again.position,
        3 - admitted as i64,
        "a re-join keeps the drawn place"
    );

    // Redis loses the sale: tokens and the ledger bring back the same order. Closed, so no
    // one is admitted from a line only partly restored.
    a.admin(&sale, "close").await;
    wipe_sale_keys(&sale).await;
    let sale_ref = &sale;
    futures_util::stream::iter(entrants.iter().chain(&late))
        .for_each_concurrent(32, |(_, j)| {
            let app = if j.queue_id.len() % 2 == 0 { &a } else { &b };
            async move {
                let res = app.send(&api::status_req(sale_ref, &j.token)).await;
                assert_eq!(res.status(), 200);
            }
        })
        .await;
    let rebuilt = order(&line(&sale).await);
    let first_waiting = expected.len() - rebuilt.len();
    let differ = rebuilt
        .iter()
        .zip(&expected[first_waiting..])
        .position(|(x, y)| x != y);
    assert_eq!(
        differ, None,
        "the same order after a rebuild ({first_waiting} admitted)"
    );

    // Everyone admitted: the report sees no inversion of rank or arrival.
    assert_eq!(
        patch(&a, &sale, json!({"max_active": 0, "rate_per_sec": 100_000}))
            .await
            .0,
        200
    );
    a.admin(&sale, "open").await;
    // A busy ledger may answer 503 meanwhile: the report is read again.
    let path = format!("/api/admin/sales/{sale}/report");
    let r = eventually(Duration::from_secs(60), || async {
        let (status, r) = crate::audit::get(&a, &path).await;
        (status == 200 && r["admitted"] == 5_200).then_some(r)
    })
    .await
    .expect("everyone is admitted");
    assert_eq!(r["fifo_inversions"], 0, "{r}");
    assert_eq!(r["draw"]["entries"], 5_000, "{r}");
    assert_eq!(r["draw"]["commitment_verified"], true);
    assert_eq!(r["draw"]["entries_admitted"], 5_000);
    assert_eq!(r["draw"]["rank_inversions"], 0);
}

/// The rank does not depend on join time: the first tenth of the entries to join land evenly
/// over the rank deciles (chi-squared, 9 degrees of freedom, bound at p = 0.001).
#[tokio::test]
async fn early_joiners_are_spread_evenly_over_the_ranks() {
    let app = spawn_app().await;
    let sale = app
        .create_sale_with(3_000, 1, json!({"prequeue": "draw"}))
        .await;
    let entrants = join_many(&[&app], &sale, 2_000).await;
    app.admin(&sale, "open").await;
    let (_, entries) = drawn(&app, &sale).await;
    let rank = rank_of(&entries);
    let mut deciles = [0f64; 10];
    for (_, j) in &entrants[..200] {
        deciles[rank[draw::public_id(&j.queue_id).as_str()] * 10 / entries.len()] += 1.0;
    }
    let chi2: f64 = deciles.iter().map(|o| (o - 20.0).powi(2) / 20.0).sum();
    assert!(chi2 < 27.877, "chi-squared {chi2} over {deciles:?}");
}

/// The raw Redis switch draws too; bad input is a clear error; a fifo sale has no draw.
#[tokio::test]
async fn the_redis_switch_draws_and_bad_input_is_refused() {
    let app = spawn_app().await;
    let fifo = app.create_sale(5, 10).await;
    let (status, v) = get(&app, &format!("/api/sales/{fifo}/draw")).await;
    assert_eq!((status, v["code"].as_str()), (404, Some("not_a_draw")));
    let (status, v) = get(&app, "/api/sales/no-such-sale/draw").await;
    assert_eq!((status, v["code"].as_str()), (404, Some("unknown_sale")));
    let (status, v) = patch(&app, &fifo, json!({"prequeue": "lottery"})).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_json")));
    let (status, v) = patch(&app, &fifo, json!({"draw_beacon": "a\nb"})).await;
    assert_eq!((status, v["code"].as_str()), (400, Some("invalid_sale")));

    // Set by PATCH before the opening: committed then.
    assert_eq!(patch(&app, &fifo, json!({"prequeue": "draw"})).await.0, 200);
    let commitment = published(&app, &fifo).await.commitment;
    let joined = join_many(&[&app], &fifo, 5).await;
    let _: () = redis()
        .await
        .set(format!("wr:{{{fifo}}}:open"), 1)
        .await
        .unwrap();
    let (p, entries) = drawn(&app, &fifo).await;
    assert_eq!(p.commitment, commitment);
    assert_eq!(entries.len(), 5);
    assert!(draw::verify(&p, &entries).is_empty());
    // The front of the draw is admitted first.
    let front = joined
        .iter()
        .find(|(_, j)| draw::public_id(&j.queue_id) == entries[0])
        .unwrap();
    app.ticket(&fifo, &front.1.token).await;
    let (status, v) = patch(&app, &fifo, json!({"prequeue": "fifo"})).await;
    assert_eq!((status, v["code"].as_str()), (409, Some("draw_started")));
    // The trail has the commitment, then the reveal.
    let path = format!("/api/admin/sales/{fifo}/events?limit=1000");
    let (_, trail) = crate::audit::get(&app, &path).await;
    let row = |kind: &str| {
        let events = trail["events"].as_array().unwrap();
        events
            .iter()
            .find(|e| e["kind"] == kind)
            .map(|e| e["detail"].clone())
    };
    let committed = row("draw_committed").expect("a draw_committed row");
    assert_eq!(committed["commitment"], commitment.as_str());
    let revealed = row("drawn").expect("a drawn row");
    assert_eq!(revealed["seed"].as_str(), p.seed.as_deref());
    assert_eq!(revealed["entries"], 5);
}
