//! An app instance killed with kill -9 mid-sale (DESIGN.md "Instance death"): two instances of
//! the release binary share one sale; a checkout storm hits both; instance A is SIGKILLed in
//! the middle. It runs the built binary; no other test shares the sale.

mod storm;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde_json::{json, Value};

use storm::*;
use waitroom_testkit::*;

const UNITS: i64 = 300;
const SHOPPERS: usize = 2000;
/// The front of the line watches `/status` for a ticket: everyone who can be admitted (admit.lua
/// lets nobody in once the tickets out could take every unit left) and many who cannot.
const POLLERS: i64 = 2 * UNITS;
/// Shoppers far back in line, streaming from A when it dies.
const STREAMERS: usize = 30;
/// A's end begins once this many orders were made.
const KILL_AFTER: usize = 60;

/// Every order Redis holds for the sale (`used`: queue id → record) and those still waiting
/// for Postgres (`pending`), and the stock.
async fn redis_orders(sale: &str) -> (HashMap<String, (String, i64)>, Vec<String>, i64) {
    let mut r = redis().await;
    let used: HashMap<String, String> = r.hgetall(format!("wr:{{{sale}}}:used")).await.unwrap();
    let pending: Vec<String> = r.smembers(format!("wr:{{{sale}}}:pending")).await.unwrap();
    let stock: i64 = r.get(format!("wr:{{{sale}}}:stock")).await.unwrap();
    let used = used
        .into_iter()
        .map(|(qid, rec)| {
            let rec: Value = serde_json::from_str(&rec).unwrap();
            let id = rec["id"].as_str().unwrap().to_string();
            (qid, (id, rec["qty"].as_i64().unwrap()))
        })
        .collect();
    (used, pending, stock)
}

/// The ledger's live orders (ticket → (order id, quantity)), units held for a restock, and
/// the sale's `sold`.
async fn ledger_orders(
    pg: &sqlx::PgPool,
    sale: &str,
) -> (HashMap<String, (String, i64)>, i64, i64) {
    let rows: Vec<(String, uuid::Uuid, i32, String, bool)> = sqlx::query_as(
        "SELECT ticket_id, id, quantity, status, restock_due FROM orders WHERE sale_id = $1",
    )
    .bind(sale)
    .fetch_all(pg)
    .await
    .unwrap();
    let (sold,): (i32,) = sqlx::query_as("SELECT sold FROM sales WHERE id = $1")
        .bind(sale)
        .fetch_one(pg)
        .await
        .unwrap();
    let mut live = HashMap::new();
    let mut held = 0;
    for (ticket, id, qty, status, restock_due) in rows {
        if status == "pending_payment" || status == "paid" {
            live.insert(ticket, (id.to_string(), qty as i64));
        } else if restock_due {
            held += qty as i64;
        }
    }
    (live, held, sold as i64)
}

/// The admin's view of the sale, from B.
async fn sale_view(w: &World) -> Option<Value> {
    let url = format!("{}/api/admin/sales/{}", w.urls[B], w.sale);
    let res = w
        .client
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .ok()?;
    res.json().await.ok()
}

async fn admitted_total_now(w: &World) -> Option<i64> {
    sale_view(w).await?["admitted_total"].as_i64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instance_killed_mid_storm_loses_no_order_and_its_streams_resume_elsewhere() {
    // A reaches Postgres through a proxy the test can freeze (see below).
    let a_pg = ChaosProxy::start(database_addr()).await;
    let mut a = AppProcess::spawn(
        "appkill-a",
        &[("WAITROOM_DATABASE_URL", &database_url_via(a_pg.port))],
    );
    let mut b = AppProcess::spawn("appkill-b", &[]);
    a.ready().await;
    b.ready().await;
    let w = Arc::new(World {
        urls: [a.url(""), b.url("")],
        client: reqwest::Client::builder()
            .timeout(WAIT)
            .pool_max_idle_per_host(256)
            .build()
            .unwrap(),
        sale: unique("kill9"),
        seen: Seen::default(),
    });
    let sale = w.sale.clone();
    let new_sale = json!({
        "id": sale, "name": "kill -9", "units": UNITS, "price_cents": 2500, "rate_per_sec": 150,
        "ticket_ttl_secs": 120, "max_per_order": 2
    });
    admin(&w, B, "", Some(new_sale)).await;

    // The line forms on both instances while the sale is closed.
    let shoppers: Arc<Vec<Shopper>> = Arc::new(
        futures_util::stream::iter(0..SHOPPERS)
            .map(|i| join(&w, i % 2))
            .buffer_unordered(64)
            .collect()
            .await,
    );
    let mut streamers: Vec<&Shopper> = shoppers.iter().filter(|s| s.home == A).collect();
    streamers.sort_by_key(|s| std::cmp::Reverse(s.seq));
    streamers.truncate(STREAMERS);
    let mut streams = Vec::new();
    for s in &streamers {
        let mut events = connect(&w, A, &s.token, None).await;
        let first = events.next().await.unwrap();
        assert_eq!((first.event.as_str(), first.id.as_str()), ("state", "1"));
        assert_eq!(place(&serde_json::from_str(&first.data).unwrap()), s.seq);
        streams.push(events);
    }

    admin(&w, A, &format!("/{sale}/open"), None).await;
    let storm: Vec<_> = (0..shoppers.len())
        .filter(|&i| shoppers[i].seq <= POLLERS)
        .map(|i| {
            let (w, shoppers) = (w.clone(), shoppers.clone());
            tokio::spawn(async move { w.shop(&shoppers[i]).await })
        })
        .collect();

    let watch = {
        let w = w.clone();
        tokio::spawn(async move {
            let over = eventually(WAIT, || async {
                let v = sale_view(&w).await?;
                // admit.lua's bound: each ticket may still take up to max_per_order (2). It is
                // over only once no ticket is still on its way to a checkout that frees room.
                let active = v["admitted_active"].as_i64()?;
                let free = (v["remaining"].as_i64()? + 1) / 2 - active;
                let idle = w.seen.idle.load(Ordering::SeqCst) as i64;
                (free <= 0 && active <= idle).then_some(v["admitted_total"].as_i64()?)
            })
            .await;
            w.seen.admissions_over.store(true, Ordering::SeqCst);
            over.expect("admissions end")
        })
    };
    let fresh = || async { (w.seen.fresh.load(Ordering::SeqCst) >= KILL_AFTER).then_some(()) };
    assert!(eventually(WAIT, fresh).await.is_some(), "the storm sells");
    // The kill lands between checkout.lua and the ledger write for some orders of shoppers
    // who will give up: A's Postgres hangs until enough of them are in that window.
    a_pg.freeze();
    let quitters: HashSet<&str> = shoppers
        .iter()
        .filter(|s| s.home == A && quits(s))
        .map(|s| s.qid.as_str())
        .collect();
    let stranded = eventually(WAIT, || async {
        let (_, pending, _) = redis_orders(&sale).await;
        let n = pending
            .iter()
            .filter(|q| quitters.contains(q.as_str()))
            .count();
        (n >= 3).then_some(pending.len())
    })
    .await;
    w.seen.killing.store(true, Ordering::SeqCst);
    a.kill9();
    let sold_at_kill = w.seen.fresh.load(Ordering::SeqCst);
    let stranded = stranded.expect("orders wait on A's ledger write");

    // The streams A served end; EventSource comes back to another instance with the last id.
    for (s, mut events) in streamers.iter().zip(streams) {
        let mut last = String::from("1");
        while let Ok(Some(e)) = tokio::time::timeout(WAIT, events.next()).await {
            last = e.id;
        }
        let mut events = connect(&w, B, &s.token, Some(&last)).await;
        let first = events.next().await.unwrap();
        let next_id = (last.parse::<u64>().unwrap() + 1).to_string();
        assert_eq!((first.event.as_str(), first.id), ("state", next_id));
        let state: Value = serde_json::from_str(&first.data).unwrap();
        let status = w.status(B, &s.token).await.expect("B answers /status");
        assert_eq!(place(&state), s.seq, "{state}");
        assert_eq!(place(&status), s.seq, "{status}");
        if state["admitted_total"] == status["admitted_total"] {
            assert_eq!(state["position"], status["position"]);
        }
    }

    for t in storm {
        t.await.unwrap();
    }
    let admitted_total = watch.await.unwrap();
    let wrong = w.seen.wrong.lock().unwrap().clone();
    assert!(wrong.is_empty(), "{} broken: {wrong:#?}", wrong.len());
    let sold = w.seen.fresh.load(Ordering::SeqCst);
    assert!(sold > sold_at_kill, "the storm went on after the kill");
    assert!(
        w.seen.cut_off.load(Ordering::SeqCst) > 0,
        "A was killed mid-storm"
    );

    // Every order Redis accepted reaches Postgres through B's sync (A's own never will).
    let pg = pg().await;
    let settled = eventually(WAIT, || async {
        let (used, pending, stock) = redis_orders(&sale).await;
        let (live, held, sold) = ledger_orders(&pg, &sale).await;
        (pending.is_empty() && used == live).then_some((used, stock, held, sold))
    })
    .await;
    let (used, stock, held, ledger_sold) = match settled {
        Some(s) => s,
        None => {
            let (used, pending, _) = redis_orders(&sale).await;
            let (live, _, _) = ledger_orders(&pg, &sale).await;
            let missing: Vec<_> = used.keys().filter(|q| !live.contains_key(*q)).collect();
            panic!(
                "pending {pending:?}; in redis, not in postgres: {missing:?}; {}",
                b.log_tail()
            );
        }
    };
    let seen = w.seen.orders.lock().unwrap().clone();
    for (qid, order) in &seen {
        assert_eq!(used.get(qid), Some(order), "the order {qid} was given");
    }
    let unseen = used.keys().filter(|q| !seen.contains_key(*q)).count();
    assert!(unseen > 0, "some orders only the sync could write");
    let units: i64 = used.values().map(|(_, q)| q).sum();
    assert_eq!(ledger_sold, units, "sold counts every live order");
    assert!(ledger_sold <= UNITS, "oversold: {ledger_sold}");
    assert_eq!(
        stock + ledger_sold + held,
        UNITS,
        "stock {stock} held {held}"
    );

    // The places hold after the storm too: nobody moved. The watcher may have called the end
    // a tick early (a quitter's ticket it counted as idle had bought), so the last admissions
    // are read once they stop.
    let settled_total = eventually(WAIT, || async {
        let before = admitted_total_now(&w).await?;
        for s in &streamers {
            let status = w.status(B, &s.token).await?;
            assert_eq!(place(&status), s.seq, "{status}");
            (status["admitted_total"].as_i64()? == before).then_some(())?;
        }
        Some(before)
    })
    .await;
    let settled_total = settled_total.expect("admissions stop");
    assert!(
        settled_total >= admitted_total,
        "{settled_total} < {admitted_total}"
    );
    eprintln!(
        "{stranded} pending at the kill; {sold} orders, {unseen} never answered; \
         {} requests cut off; answers {:?}",
        w.seen.cut_off.load(Ordering::SeqCst),
        w.seen.statuses.lock().unwrap()
    );
}
