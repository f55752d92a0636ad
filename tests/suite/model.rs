//! A property test: random joins, re-joins, opens and closes, admission ticks, lapses,
//! checkouts, retries, failed payments and Redis losses, on two real instances sharing Redis
//! and Postgres. After every step the API's answers are held to a model of the sale, and the
//! promised invariants (never oversold, one order per ticket, FIFO, admission bounds) are
//! read from the stores themselves.
//!
//! The instances' own ticker and sweeper never run (their periods are an hour): the test
//! ticks and settles by calling the same functions, so every outcome is decided by the
//! operations, never by timing.

mod check;
mod steps;
mod world;

use std::time::Duration;

use proptest::prelude::*;
use redis::aio::MultiplexedConnection;
use serde_json::{json, Value};

use check::key;
use steps::{answer, checkout, standing, tick, wipe};
use waitroom_testkit::*;
use world::{Model, Shopper, State, Terms};

/// This test's instances use a Redis database of their own: other tests' instances tick and
/// rebuild every sale they can see, which would admit this test's shoppers behind its back.
const DB: u8 = 5;
const NEVER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
enum Op {
    /// `k` fresh joins, one after the other, on instance A (false) or B (true).
    Join(bool, u8),
    /// The n-th shopper (mod count) presents their queue token again.
    Rejoin(usize, bool),
    Status(usize, bool),
    Open(bool),
    Close(bool),
    /// An admission tick, the bucket refilled to `tokens` whole tokens first.
    Tick {
        b: bool,
        tokens: i64,
    },
    /// The n-th admitted shopper's ticket runs out.
    Lapse(usize),
    /// The n-th admitted shopper (`any`: shopper in any state) checks out
    /// min(1 + qty, max_per_order) units (more often the most, which leaves odd units), of
    /// variant `size` (mod their count) in a sale with variants.
    Checkout {
        who: usize,
        any: bool,
        b: bool,
        qty: i64,
        size: usize,
    },
    /// The n-th buyer checks out again with the same ticket.
    Retry(usize, bool),
    /// The n-th buyer's payment fails.
    Release(usize),
    /// Redis loses the sale; then what recovers it, in an order picked by `seed`.
    Wipe(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let who = || any::<usize>();
    let b = any::<bool>;
    prop_oneof![
        5 => (b(), 1u8..=3).prop_map(|(b, k)| Op::Join(b, k)),
        1 => (who(), b()).prop_map(|(w, b)| Op::Rejoin(w, b)),
        1 => (who(), b()).prop_map(|(w, b)| Op::Status(w, b)),
        1 => b().prop_map(Op::Open),
        1 => b().prop_map(Op::Close),
        6 => (b(), 0i64..6).prop_map(|(b, tokens)| Op::Tick { b, tokens }),
        1 => who().prop_map(Op::Lapse),
        7 => (who(), proptest::bool::weighted(0.25), b(), 0i64..4, 0usize..3)
            .prop_map(|(who, any, b, qty, size)| Op::Checkout { who, any, b, qty, size }),
        1 => (who(), b()).prop_map(|(w, b)| Op::Retry(w, b)),
        1 => who().prop_map(Op::Release),
        1 => any::<u64>().prop_map(Op::Wipe),
    ]
}

fn terms() -> impl Strategy<Value = Terms> {
    (
        3i64..=8,
        // A slow bucket binds; a fast one leaves stock and max_active to bind.
        prop_oneof![1i64..=4, Just(1000)],
        prop_oneof![Just(0i64), 1i64..=3],
        prop_oneof![Just(1i64), 2i64..=3],
        prop_oneof![Just(0usize), 2usize..=3],
    )
        .prop_map(|(units, rate, max_active, max_per_order, variants)| Terms {
            units,
            rate,
            max_active,
            max_per_order,
            variants,
        })
}

struct World {
    apps: [TestApp; 2],
    redis: MultiplexedConnection,
    pg: sqlx::PgPool,
}

impl World {
    fn app(&self, b: bool) -> &TestApp {
        &self.apps[b as usize]
    }
}

type TestResult = Result<(), TestCaseError>;

async fn join(w: &World, m: &mut Model, b: bool) -> TestResult {
    let expect = m.join();
    let (got, v) = answer(w.app(b).join_raw(&m.sale, None).await).await;
    prop_assert_eq!(&got, &expect, "join: {}", v);
    if got.http == 201 {
        m.seq += 1;
        prop_assert_eq!(v["seq"].as_i64(), Some(m.seq), "seq");
        m.shoppers.push(Shopper {
            qid: v["queue_id"].as_str().unwrap().to_string(),
            token: v["token"].as_str().unwrap().to_string(),
            state: State::Waiting,
            ticket: None,
            order: None,
            lost: false,
        });
    }
    Ok(())
}

async fn step(w: &World, m: &mut Model, op: &Op) -> TestResult {
    let n = m.shoppers.len();
    let mut r = w.redis.clone();
    match *op {
        Op::Join(b, k) => {
            for _ in 0..k {
                join(w, m, b).await?;
            }
        }
        Op::Rejoin(i, b) if n > 0 => standing(w, m, i % n, b, true).await?,
        Op::Status(i, b) if n > 0 => standing(w, m, i % n, b, false).await?,
        Op::Open(b) | Op::Close(b) => {
            m.open = matches!(op, Op::Open(_));
            let action = if m.open { "open" } else { "close" };
            w.app(b).admin(&m.sale, action).await;
        }
        Op::Tick { b, tokens } => tick(w, m, &mut r, b, tokens).await?,
        Op::Lapse(i) => {
            let active = m.active();
            if let Some(&i) = active.get(i % active.len().max(1)) {
                let _: () = redis::cmd("ZADD")
                    .arg(key(&m.sale, "admitted"))
                    .arg("XX")
                    .arg(1)
                    .arg(&m.shoppers[i].qid)
                    .query_async(&mut r)
                    .await
                    .unwrap();
                m.shoppers[i].state = State::Lapsed;
                standing(w, m, i, i % 2 == 0, false).await?;
            }
        }
        Op::Checkout {
            who,
            any,
            b,
            qty,
            size,
        } if n > 0 => {
            let variant = (m.terms.variants > 0).then(|| size % m.terms.variants);
            let qty = (1 + qty).min(m.terms.max_per_order);
            let active = m.active();
            let i = match active.is_empty() || any {
                true => who % n,
                false => active[who % active.len()],
            };
            checkout(w, m, i, b, qty, variant).await?;
        }
        Op::Retry(i, b) => {
            let buyers = m.indices(State::Bought);
            if let Some(&i) = buyers.get(i % buyers.len().max(1)) {
                // Another size the second time: the answer is still the first order.
                let variant = (m.terms.variants > 0).then_some(0);
                checkout(w, m, i, b, m.terms.max_per_order, variant).await?;
            }
        }
        Op::Release(i) => {
            let buyers = m.indices(State::Bought);
            if let Some(&i) = buyers.get(i % buyers.len().max(1)) {
                let (id, qty, variant) = m.shoppers[i].order.clone().unwrap();
                let event = json!({"order_id": id, "event_id": unique("ev"), "outcome": "failed"});
                let res = w
                    .app(i % 2 == 1)
                    .payment_event(&event, PAYMENT_SECRET)
                    .await;
                prop_assert_eq!(res.status().as_u16(), 200);
                let v: Value = res.json().await.unwrap();
                prop_assert_eq!(
                    (v["status"].as_str(), &v["duplicate"]),
                    (Some("failed"), &json!(false))
                );
                m.sell(-qty, variant);
                m.shoppers[i].state = State::Released;
            }
        }
        Op::Wipe(seed) => wipe(w, m, &mut r, seed).await?,
        Op::Rejoin(..) | Op::Status(..) | Op::Checkout { .. } => {}
    }
    Ok(())
}

/// After every step: the invariants, the model against the stores, and both instances
/// knowing whether the sale is sold out (they learn it by pub/sub; a fresh join is answered
/// from that knowledge).
async fn after(w: &World, m: &Model) -> TestResult {
    let st = check::read(&mut w.redis.clone(), &w.pg, &m.sale).await;
    check::invariants(m, &st)?;
    check::agrees(m, &st)?;
    let sold_out = m.sold_out_for_good();
    for app in &w.apps {
        let known = eventually(Duration::from_secs(5), || async {
            (app.state.hub.is_sold_out(&sale_id(&m.sale)) == sold_out).then_some(())
        })
        .await;
        prop_assert!(
            known.is_some(),
            "an instance never heard sold_out = {}",
            sold_out
        );
    }
    Ok(())
}

async fn run(w: &World, terms: Terms, ops: Vec<Op>) -> TestResult {
    let mut extra = json!({
        "max_per_order": terms.max_per_order, "max_active": terms.max_active,
        "ticket_ttl_secs": 600, "hold_secs": 3600,
    });
    if terms.variants > 0 {
        let sizes: Vec<Value> = terms
            .variant_units()
            .iter()
            .enumerate()
            .map(|(i, u)| json!({"id": i.to_string(), "name": format!("Size {i}"), "units": u}))
            .collect();
        extra["variants"] = json!(sizes);
    }
    let sale = w.apps[0]
        .create_sale_with(terms.units, terms.rate, extra)
        .await;
    let mut m = Model::new(sale, terms);
    for (n, op) in ops.iter().enumerate() {
        let done = match step(w, &mut m, op).await {
            Ok(()) => after(w, &m).await,
            e => e,
        };
        done.map_err(|e| TestCaseError::fail(format!("op {n} {op:?}: {e}")))?;
    }
    for i in 0..m.shoppers.len() {
        for b in [false, true] {
            standing(w, &mut m, i, b, false).await?;
        }
    }
    Ok(())
}

#[test]
fn two_instances_match_a_model_of_the_sale() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let world = rt.block_on(async {
        let url = redis_url_db(DB);
        let config = |c: &mut waitroom::core::config::Config| {
            c.redis.url = url.clone();
            c.loops.tick = NEVER;
            c.loops.sweep = NEVER;
        };
        World {
            apps: [spawn_app_with(config).await, spawn_app_with(config).await],
            redis: redis_at(&url).await,
            pg: pg().await,
        }
    });
    let config = ProptestConfig {
        cases: 16,
        max_shrink_iters: 300,
        ..ProptestConfig::default()
    };
    // Every sale opens as it is created (a Close may close it), so most cases get to sell.
    let ops = proptest::collection::vec(op(), 12..40)
        .prop_map(|ops| [Op::Open(false)].into_iter().chain(ops).collect::<Vec<_>>());
    proptest!(config, |(terms in terms(), ops in ops)| {
        rt.block_on(run(&world, terms, ops))?;
    });
}
