//! Webhooks: does a slow shop slow checkout? Checkouts of a sale whose every event goes to a
//! receiver that takes 5 s per delivery, alternating (3 pairs) with checkouts of a sale no
//! endpoint hears, on one instance: their p99 and the ratio. The endpoint exists only during
//! its side of each pair. Then deliveries per second to a receiver that answers at once: the
//! first sale's events replayed to a new endpoint, so the figure is the relay's pace, not
//! checkout's.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use waitroom_testkit::receiver::{Answer, Receiver};

use super::orders::{admitted, checkouts};
use super::{say, Ctx};
use crate::api::ADMIN_TOKEN;
use crate::baseline::{alternate, Pairs, Side};
use crate::client::{Conn, Req};
use crate::report::Report;
use crate::server::Instance;

/// A receiver that takes this long per delivery: far past any checkout.
const SLOW: Duration = Duration::from_secs(5);

/// An endpoint for `sale`'s events at `receiver`, which trusts its secret: its id.
async fn endpoint(c: &mut Conn, receiver: &Receiver, sale: &str) -> Result<String> {
    let body = json!({"url": receiver.url(), "sales": [sale]});
    let r = c
        .send(
            &Req::post("/api/admin/webhooks")
                .bearer(ADMIN_TOKEN)
                .json(&body),
        )
        .await?;
    if r.status != 201 {
        bail!("create endpoint: {}", r.describe());
    }
    let v: Value = r.json()?;
    receiver.trust(v["secret"].as_str().context("the endpoint's secret")?);
    Ok(v["id"].as_str().context("the endpoint's id")?.to_string())
}

async fn delete(c: &mut Conn, id: &str) -> Result<()> {
    let r = c
        .send(&Req::delete(format!("/api/admin/webhooks/{id}")).bearer(ADMIN_TOKEN))
        .await?;
    match r.status {
        200 | 204 => Ok(()),
        _ => bail!("delete endpoint: {}", r.describe()),
    }
}

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let vars = [("WAITROOM_WEBHOOK_ALLOW_PRIVATE", "true")];
    let inst = ctx.start_with("webhooks", &vars).await?;
    let n = ctx.sizes.orders / 2;
    let workers = ctx.sizes.load.conns;
    let (plain, hooked) = (ctx.sale_id("wh-none"), ctx.sale_id("wh-slow"));
    let plain_tickets = admitted(ctx, &inst, &plain, n).await?;
    let hooked_tickets = admitted(ctx, &inst, &hooked, n).await?;
    let slow = Receiver::start().await;
    slow.answer(Answer::Slow(SLOW));

    let npairs = ctx.sizes.pairs;
    let batch = n.div_ceil(npairs);
    say(format!(
        "webhooks: {npairs} pairs of {batch} checkouts, no endpoint vs a receiver taking {} s each",
        SLOW.as_secs()
    ));
    let (inst_ref, slow_ref) = (&inst, &slow);
    let (plain_ref, hooked_ref) = (&plain, &hooked);
    let (plain_t, hooked_t) = (&plain_tickets, &hooked_tickets);
    let pairs = alternate(npairs, |side, pair| async move {
        let take = |t: &Vec<String>| t.iter().skip(pair * batch).take(batch).cloned().collect();
        let o = match side {
            Side::Baseline => {
                checkouts(inst_ref, plain_ref, take(plain_t), workers, 0)
                    .await
                    .0
            }
            Side::Target => {
                let mut c = Conn::new(inst_ref.addr);
                let id = endpoint(&mut c, slow_ref, hooked_ref).await?;
                let (o, _) = checkouts(inst_ref, hooked_ref, take(hooked_t), workers, 0).await;
                delete(&mut c, &id).await?;
                o
            }
        };
        let what = match side {
            Side::Baseline => "no endpoint",
            Side::Target => "slow receiver",
        };
        say(format!("webhooks {what} {pair}: {}", o.summary()));
        Ok(o)
    })
    .await?;
    Pairs::record(r, "webhook_none_checkout_p99_ms", &pairs.base, |o| {
        o.lat.pct_ms(99.0)
    });
    Pairs::record(r, "webhook_slow_checkout_p99_ms", &pairs.target, |o| {
        o.lat.pct_ms(99.0)
    });
    pairs.record_p99_ratio(r, "webhook_slow_checkout_p99_ratio");
    if pairs.failed() > 0 {
        r.add("webhook_checkouts_failed", pairs.failed());
    }
    deliveries(r, &inst, &plain).await
}

/// Every event of `sale` so far, replayed to a new endpoint whose receiver answers at once:
/// deliveries per second until the last is accepted.
async fn deliveries(r: &mut Report, inst: &Instance, sale: &str) -> Result<()> {
    let fast = Receiver::start().await;
    // Counted as they come (distinct webhook-ids answered 200), not by copying the receiver's
    // whole log every poll: that copying took CPU from the server on this 2-core machine.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let count = seen.clone();
    fast.policy(move |r, _| {
        if r.verified {
            count
                .lock()
                .expect("seen lock")
                .insert(r.webhook_id.clone());
        }
        Answer::Ok
    });
    let mut c = Conn::new(inst.addr);
    let id = endpoint(&mut c, &fast, sale).await?;
    let started = Instant::now();
    let replay = Req::post(format!("/api/admin/webhooks/{id}/replay"))
        .bearer(ADMIN_TOKEN)
        // All of the sale's events: the endpoint's filter names that sale alone.
        .json(&json!({"since": "2000-01-01T00:00:00Z"}));
    // A 503 (the webhook pool busy, or the statement past its 5 s limit on a loaded machine:
    // seen once in a quick run) is retried, as an operator would.
    let mut reply = c.send(&replay).await?;
    for _ in 0..10 {
        if reply.status != 503 {
            break;
        }
        say("webhooks: replay answered 503; retrying in 2 s");
        tokio::time::sleep(Duration::from_secs(2)).await;
        reply = c.send(&replay).await?;
    }
    if !(200..300).contains(&reply.status) {
        bail!("replay: {}", reply.describe());
    }
    let queued = reply.json()?["requeued"].as_u64().unwrap_or(0) as usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.lock().expect("seen lock").len() < queued && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    let got = seen.lock().expect("seen lock").len();
    delete(&mut c, &id).await?;
    say(format!(
        "webhooks: {got} of {queued} events delivered in {secs:.2} s"
    ));
    if got < queued || queued == 0 {
        r.note(format!(
            "webhooks: only {got} of {queued} replayed events arrived"
        ));
    }
    r.set("webhook_deliveries_per_sec", got as f64 / secs);
    r.set("webhook_events", queued as f64);
    Ok(())
}
