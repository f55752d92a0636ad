//! The operations that take more than a call: a tick with its refill, a checkout, a Redis
//! loss and its recovery, and a shopper's standing held to the model.

use proptest::prelude::*;
use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};

use super::check::{self, key};
use super::world::{Expect, Model, State};
use super::{TestResult, World};
use waitroom_testkit::api::checkout_body_req;
use waitroom_testkit::{as_browser, sale_id};

/// Sets the bucket's clock back so that `want` whole tokens (at least those left) are due at
/// the next tick, its fraction pinned at .05 so Redis time passing before that tick cannot
/// add a token. None if the bucket is not admitting; else the whole tokens it had left.
const REFILL: &str = r"
local b = redis.call('HMGET', KEYS[1], 'allowance', 'admitting')
if b[2] ~= '1' then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local a = math.floor(tonumber(b[1]) or 0)
local want = math.max(tonumber(ARGV[1]), a)
local last = now - (want - a) * 1000 / tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'allowance', string.format('%.2f', a + 0.05),
  'last_ms', string.format('%.3f', last))
return a
";

/// (HTTP status, what it said: the standing's status or the error's code, position) and body.
pub async fn answer(res: reqwest::Response) -> (Expect, Value) {
    let http = res.status().as_u16();
    let v: Value = res.json().await.unwrap();
    let what = match http {
        200 | 201 => v["status"].as_str(),
        _ => v["code"].as_str(),
    };
    let what = what.unwrap_or("?").to_string();
    let position = v["position"].as_i64().unwrap_or(0);
    (
        Expect {
            http,
            what,
            position,
        },
        v,
    )
}

/// Shopper `i`'s standing through `/status` (or a re-join with the token), held to the model.
pub async fn standing(w: &World, m: &mut Model, i: usize, b: bool, rejoin: bool) -> TestResult {
    let app = w.app(b);
    let token = m.shoppers[i].token.clone();
    let (expect, res) = if rejoin {
        (m.rejoin(i), app.join_raw(&m.sale, Some(&token)).await)
    } else {
        let req = app
            .client
            .get(app.url(&format!("/api/sales/{}/status", m.sale)));
        let res = as_browser(req, &token)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        (m.status(i), res)
    };
    let (got, v) = answer(res).await;
    prop_assert_eq!(
        &got,
        &expect,
        "shopper #{} {:?}: {}",
        i,
        m.shoppers[i].state,
        v
    );
    let s = &mut m.shoppers[i];
    match got.what.as_str() {
        "admitted" => s.ticket = Some(v["ticket"].as_str().unwrap().to_string()),
        "purchased" => prop_assert_eq!(
            v["order_id"].as_str(),
            s.order.as_ref().map(|o| o.0.as_str()),
            "purchased order of #{}",
            i
        ),
        _ => {}
    }
    m.presented(i);
    Ok(())
}

pub async fn tick(
    w: &World,
    m: &mut Model,
    r: &mut MultiplexedConnection,
    b: bool,
    tokens: i64,
) -> TestResult {
    let rate = m.terms.rate;
    let want = if rate >= 100 { rate } else { tokens };
    let left: i64 = redis::Script::new(REFILL)
        .key(key(&m.sale, "bucket"))
        .arg(want)
        .arg(rate)
        .invoke_async(r)
        .await
        .unwrap();
    let admitting = left >= 0;
    prop_assert_eq!(admitting, m.admitting, "the bucket's admitting flag");
    if admitting {
        prop_assert_eq!(left, m.allowance, "whole tokens left in the bucket");
    }
    let expected = if m.open && m.stock() > 0 && m.admitting {
        let tokens = want.max(m.allowance).min(rate);
        let who = m.admits(tokens);
        m.allowance = tokens - who.len() as i64;
        who
    } else {
        // Closed or sold out: the bucket empties. Opening: it starts, empty.
        m.admitting = m.open && m.stock() > 0;
        m.allowance = 0;
        Vec::new()
    };
    let (active, line) = (m.active().len(), m.line().len());
    let t = w.app(b).state.store.admit(&sale_id(&m.sale)).await.unwrap();
    let ids: Vec<&str> = expected
        .iter()
        .map(|&i| m.shoppers[i].qid.as_str())
        .collect();
    let got: Vec<&str> = t.admitted.iter().map(|(q, _)| q.as_str()).collect();
    prop_assert_eq!(&got, &ids, "admitted by the tick (front of the line first)");
    prop_assert_eq!(
        (t.open, t.stock, t.active, t.queue_len),
        (
            m.open,
            m.stock(),
            (active + ids.len()) as i64,
            (line - ids.len()) as i64
        ),
        "the tick's numbers"
    );
    for (k, &i) in expected.iter().enumerate() {
        m.shoppers[i].state = State::Admitted;
        standing(w, m, i, k % 2 == 1, false).await?;
    }
    Ok(())
}

pub async fn checkout(
    w: &World,
    m: &mut Model,
    i: usize,
    b: bool,
    qty: i64,
    variant: Option<usize>,
) -> TestResult {
    let app = w.app(b);
    // A shopper never admitted holds no ticket to present.
    let Some(ticket) = m.shoppers[i].ticket.clone() else {
        return Ok(());
    };
    let (expect, alt) = m.checkout(i, qty, variant);
    let body = match variant {
        Some(v) => json!({"quantity": qty, "variant": v.to_string()}),
        None => json!({"quantity": qty}),
    };
    let res = app.send(&checkout_body_req(&m.sale, &ticket, &body)).await;
    let (mut got, v) = answer(res).await;
    match got.http {
        201 => got.what = "new_order".into(),
        200 => got.what = "same_order".into(),
        _ => {}
    }
    got.position = 0;
    prop_assert!(
        got == expect || Some(&got) == alt.as_ref(),
        "checkout of {} by #{} {:?} (stock {}): {:?} {}, expected {:?}",
        qty,
        i,
        m.shoppers[i].state,
        m.stock(),
        got,
        v,
        expect
    );
    let id = v["order_id"].as_str().map(str::to_string);
    let s = &mut m.shoppers[i];
    match got.http {
        201 => {
            prop_assert_eq!(
                (v["quantity"].as_i64(), v["status"].as_str()),
                (Some(qty), Some("pending_payment"))
            );
            let named = variant.map(|v| v.to_string());
            prop_assert_eq!(v["variant"].as_str(), named.as_deref());
            s.order = Some((id.unwrap(), qty, variant));
            s.state = State::Bought;
            m.sell(qty, variant);
        }
        200 => {
            let (had, had_qty, _) = s.order.clone().unwrap();
            prop_assert_eq!(
                (id, v["quantity"].as_i64()),
                (Some(had), Some(had_qty)),
                "a retry's order"
            );
        }
        _ => {}
    }
    Ok(())
}

/// Redis loses every key of the sale. The next request rebuilds it from the ledger, every
/// shopper re-presents a token (some by `/status`, some by re-joining, in an order of their
/// own), the admin reopens it if it was open, then the ledger sync and the settle a sweeper
/// runs once the rebuild is old enough.
pub async fn wipe(
    w: &World,
    m: &mut Model,
    r: &mut MultiplexedConnection,
    seed: u64,
) -> TestResult {
    let keys: Vec<String> = redis::AsyncCommands::keys(r, format!("wr:{{{}}}:*", m.sale))
        .await
        .unwrap();
    let _: () = redis::AsyncCommands::del(r, keys).await.unwrap();
    let st = check::read(r, &w.pg, &m.sale).await;
    prop_assert!(!st.in_redis);
    check::invariants(m, &st)?;
    let was_open = m.open;
    m.lose_redis();

    let mut order: Vec<usize> = (0..m.shoppers.len()).collect();
    order.sort_by_key(|&i| (i as u64 ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    if order.is_empty() {
        w.app(seed & 1 == 1).stats(&m.sale).await;
    }
    for (k, &i) in order.iter().enumerate() {
        let bits = seed.rotate_right(k as u32 * 2);
        standing(w, m, i, bits & 1 == 1, bits & 2 == 2).await?;
        let st = check::read(r, &w.pg, &m.sale).await;
        check::invariants(m, &st)?;
    }
    let st = check::read(r, &w.pg, &m.sale).await;
    prop_assert!(st.in_redis && st.unsettled, "rebuilt and marked unsettled");

    let app = w.app(seed & 4 == 4);
    prop_assert_eq!(
        st.open,
        was_open,
        "the open switch comes back from the ledger"
    );
    let synced = waitroom::flows::checkout::sync_pending(&app.state, &sale_id(&m.sale), 0).await;
    prop_assert_eq!(synced.unwrap(), 0, "orders Postgres had missed");
    // As if the settle delay had passed since the rebuild.
    let since = st.now_ms - app.state.config.loops.settle_after.as_millis() as i64 - 1;
    let _: () = redis::AsyncCommands::set(r, key(&m.sale, "unsettled"), since)
        .await
        .unwrap();
    let settled = waitroom::flows::recovery::settle_stock(&app.state, &sale_id(&m.sale)).await;
    prop_assert_eq!(settled.unwrap(), Some(m.stock()), "stock after the settle");
    Ok(())
}
