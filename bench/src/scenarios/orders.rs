//! Checkouts that sell: every shopper of a large sale is admitted first, then all of them
//! check out at once and we count committed orders per second. Postgres is checked after.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::client::Conn;
use crate::load::{par_map, Latencies};
use crate::report::Report;

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let inst = ctx.start("orders").await?;
    let addrs = [inst.addr];
    let sale = ctx.sale_id("orders");
    let n = ctx.sizes.orders;
    let workers = ctx.sizes.load.conns;
    let mut c = Conn::new(inst.addr);
    // A high rate admits everyone within a tick or two; a long TTL outlives the run.
    let spec = SaleSpec {
        units: n as i64,
        rate_per_sec: 100_000,
        ticket_ttl_secs: 3_600,
        max_per_order: 1,
    };
    api::create_sale(&mut c, &sale, &spec).await?;

    say(format!("orders: {n} shoppers join"));
    let joined = api::join_many(&addrs, &sale, n, workers).await?;
    api::admin(&mut c, &sale, "open").await?;
    api::wait_stats(&mut c, &sale, Duration::from_secs(60), |s| {
        s["admitted_total"].as_i64() >= Some(n as i64)
    })
    .await?;

    let tokens: Vec<String> = joined.into_iter().map(|j| j.token).collect();
    let sale2 = sale.clone();
    let tickets: Vec<String> = par_map(&addrs, n, workers, move |mut c, i| {
        let (sale, token) = (sale2.clone(), tokens[i].clone());
        async move {
            let r = api::status(&mut c, &sale, &token).await.and_then(|s| {
                api::ticket_of(&s)
                    .map(|t| t.ticket)
                    .with_context(|| format!("admitted shopper without a ticket: {s}"))
            });
            (c, r)
        }
    })
    .await
    .into_iter()
    .collect::<Result<_>>()?;

    say(format!("orders: {n} checkouts on {workers} connections"));
    let sale2 = sale.clone();
    let started = Instant::now();
    let replies = par_map(&addrs, n, workers, move |mut c, i| {
        let req = api::checkout_req(&sale2, &tickets[i]);
        async move {
            let t0 = Instant::now();
            let r = c.send(&req).await.map(|reply| (reply, t0.elapsed()));
            (c, r)
        }
    })
    .await;
    let secs = started.elapsed().as_secs_f64();

    let (mut accepted, mut lat, mut failed, mut sample) =
        (Vec::new(), Latencies::default(), 0, None);
    for reply in replies {
        match reply {
            Ok((reply, took)) => match api::order_id(&reply) {
                Some(id) if reply.status == 201 => {
                    accepted.push(id);
                    lat.push(took);
                }
                _ => {
                    failed += 1;
                    sample.get_or_insert_with(|| reply.describe());
                }
            },
            Err(e) => {
                failed += 1;
                sample.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let lat = lat.finish();
    let rate = accepted.len() as f64 / secs;
    say(format!(
        "orders: {} committed in {secs:.2} s = {rate:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {failed} failed{}",
        accepted.len(),
        lat.pct_ms(50.0),
        lat.pct_ms(99.0),
        sample.map(|s| format!(" (e.g. {s})")).unwrap_or_default()
    ));
    r.set("orders_per_sec", rate);
    r.set("order_p50_ms", lat.pct_ms(50.0));
    r.set("order_p99_ms", lat.pct_ms(99.0));
    r.set("orders_committed", accepted.len() as f64);
    r.set("orders_failed", failed as f64);

    let check = ctx.check_ledger(r, &sale, &accepted).await?;
    say(format!(
        "orders: Postgres has {} orders, sold {} of {}",
        check.live_orders, check.sold, check.units
    ));
    if check.sold != accepted.len() as i64 {
        // Not a lost order (those are counted by id) but worth seeing.
        r.note(format!(
            "orders: Postgres sold {} but the API accepted {} orders",
            check.sold,
            accepted.len()
        ));
    }
    if accepted.is_empty() {
        bail!("no checkout succeeded");
    }
    Ok(())
}
