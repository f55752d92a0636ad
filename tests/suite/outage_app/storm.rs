//! The shoppers of the kill -9 test and what they saw: each one's line, ticket, order and
//! retries, sent to instance A or B as a load balancer would.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use waitroom_testkit::*;

pub const A: usize = 0;
pub const B: usize = 1;

pub struct Shopper {
    pub token: String,
    pub qid: String,
    /// The n-th to join: FIFO makes `admitted_total + position` equal to it while waiting.
    pub seq: i64,
    /// The instance the shopper's load balancer picked first.
    pub home: usize,
}

/// What the clients saw, shared by every shopper's task.
#[derive(Default)]
pub struct Seen {
    /// Queue id → (order id, quantity) from every 201/200.
    pub orders: Mutex<HashMap<String, (String, i64)>>,
    pub fresh: AtomicUsize,
    pub statuses: Mutex<BTreeMap<u16, usize>>,
    /// Requests to A that failed at the transport level (after it was killed).
    pub cut_off: AtomicUsize,
    pub killing: AtomicBool,
    /// Every unit is sold or held by an admitted shopper: admit.lua lets nobody else in.
    pub admissions_over: AtomicBool,
    /// Tickets whose holders stopped (walked away or quit): they hold room until they expire.
    pub idle: AtomicUsize,
    /// Broken promises, each described.
    pub wrong: Mutex<Vec<String>>,
}

pub struct World {
    pub urls: [String; 2],
    pub client: reqwest::Client,
    pub sale: String,
    pub seen: Seen,
}

impl World {
    fn wrong(&self, what: String) {
        self.seen.wrong.lock().unwrap().push(what);
    }

    /// Sends a shopper's request to instance `to`. A transport failure is allowed only from A
    /// once it is being killed; an answer may be a 5xx only if it is a 503.
    async fn send(&self, to: usize, req: reqwest::RequestBuilder) -> Option<reqwest::Response> {
        match req.send().await {
            Ok(res) => {
                let code = res.status().as_u16();
                *self.seen.statuses.lock().unwrap().entry(code).or_default() += 1;
                if code >= 500 && code != 503 {
                    self.wrong(format!("{code} from instance {to}: {:?}", res.text().await));
                    return None;
                }
                Some(res)
            }
            Err(e) => {
                if to == A && self.seen.killing.load(Ordering::SeqCst) && !e.is_timeout() {
                    self.seen.cut_off.fetch_add(1, Ordering::SeqCst);
                } else {
                    self.wrong(format!("transport error from instance {to}: {e:?}"));
                }
                None
            }
        }
    }

    fn path(&self, to: usize, what: &str) -> String {
        format!("{}/api/sales/{}/{what}", self.urls[to], self.sale)
    }

    pub async fn status(&self, to: usize, token: &str) -> Option<Value> {
        let req = as_browser(self.client.get(self.path(to, "status")), token).bearer_auth(token);
        let res = self.send(to, req).await?;
        (res.status() == 200).then_some(())?;
        res.json().await.ok()
    }

    async fn checkout(&self, to: usize, ticket: &str, qty: i64) -> Option<reqwest::Response> {
        let req = self.client.post(self.path(to, "checkout"));
        let req = as_browser(req, ticket)
            .bearer_auth(ticket)
            .json(&json!({ "quantity": qty }));
        self.send(to, req).await
    }

    /// Notes an order a client was given; the same ticket must always get the same order.
    fn got_order(&self, qid: &str, order: &Value, fresh: bool) {
        let id = order["order_id"].as_str().unwrap_or_default().to_string();
        let qty = order["quantity"].as_i64().unwrap_or_default();
        let mut orders = self.seen.orders.lock().unwrap();
        if let Some((was, _)) = orders.get(qid).filter(|(was, _)| *was != id) {
            self.wrong(format!("{qid} got order {id} after {was}"));
        }
        if fresh && orders.contains_key(qid) {
            self.wrong(format!("{qid} got a second 201"));
        }
        orders.insert(qid.to_string(), (id, qty));
        if fresh {
            self.seen.fresh.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// One shopper at the front: waits for a ticket, buys (or walks away), double-clicks.
    /// A request A could not answer goes to B, as the load balancer would send the retry.
    pub async fn shop(&self, me: &Shopper) {
        let mut home = me.home;
        let deadline = tokio::time::Instant::now() + WAIT;
        let ticket = loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no ticket in {WAIT:?}"
            );
            match self.status(home, &me.token).await {
                None => home = B,
                Some(v) if v["status"] == "admitted" => break v["ticket"].as_str().unwrap().into(),
                Some(_) if self.seen.admissions_over.load(Ordering::SeqCst) => return,
                Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let ticket: String = ticket;
        if me.seq % 4 == 0 {
            self.seen.idle.fetch_add(1, Ordering::SeqCst);
            return; // walks away: the sale never sells out, so the line keeps its places
        }
        let qty = if me.seq % 5 == 1 { 2 } else { 1 };
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no order in {WAIT:?}"
            );
            let Some(res) = self.checkout(home, &ticket, qty).await else {
                if quits(me) {
                    self.seen.idle.fetch_add(1, Ordering::SeqCst);
                    return; // closes the tab: only the sync can write an order A took
                }
                home = B;
                continue;
            };
            match res.status().as_u16() {
                code @ (200 | 201) => {
                    self.got_order(&me.qid, &res.json().await.unwrap(), code == 201);
                    break;
                }
                503 => tokio::time::sleep(Duration::from_millis(100)).await,
                code => {
                    let body = res.text().await.unwrap_or_default();
                    return self.wrong(format!("checkout {code} for {}: {body}", me.qid));
                }
            }
        }
        // The double click lands on the other instance (B if A is gone): the same order.
        let other = if home == A { B } else { A };
        for to in [other, B] {
            if let Some(res) = self.checkout(to, &ticket, qty).await {
                match res.status().as_u16() {
                    200 => self.got_order(&me.qid, &res.json().await.unwrap(), false),
                    503 => {}
                    code => self.wrong(format!("a second click on {to} answered {code}")),
                }
                break;
            }
        }
    }
}

/// Shoppers who give up when their checkout fails at the transport level.
pub fn quits(s: &Shopper) -> bool {
    s.seq % 3 == 0
}

pub async fn connect(w: &World, to: usize, token: &str, last_id: Option<&str>) -> Events {
    open_events(&w.client, &w.path(to, "events"), token, last_id).await
}

/// The place a waiting shopper holds, counted from the start of the line.
pub fn place(v: &Value) -> i64 {
    assert!(v["status"] == "waiting" || v["status"] == "closed", "{v}");
    v["admitted_total"].as_i64().unwrap() + v["position"].as_i64().unwrap()
}

pub async fn join(w: &World, to: usize) -> Shopper {
    let res = w.client.post(w.path(to, "queue")).send().await.unwrap();
    assert_eq!(res.status(), 201);
    remember_session(&res);
    let v: Value = res.json().await.unwrap();
    Shopper {
        token: v["token"].as_str().unwrap().into(),
        qid: v["queue_id"].as_str().unwrap().into(),
        seq: v["seq"].as_i64().unwrap(),
        home: to,
    }
}

pub async fn admin(w: &World, to: usize, path: &str, body: Option<Value>) -> Value {
    let url = format!("{}/api/admin/sales{path}", w.urls[to]);
    let mut req = w.client.post(url).bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    res.json().await.unwrap()
}
