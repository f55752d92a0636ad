//! Checkouts that sell: every shopper of a large sale is admitted first, then they check out
//! in batches, as fast as answers come back, alternating with the bare EVALSHA baseline (3
//! pairs), and we count committed orders per second. Then a second sale's ticket holders
//! check out open-loop at 70% of that rate, for the latency from the intended send time.
//! Postgres is checked after each.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::enqueue::{measure_open, OPEN_SHARE};
use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::baseline::{alternate, cpu_us, redis_evalsha, Pairs, Side};
use crate::client::Conn;
use crate::cpu;
use crate::load::{join_many, par_map, Outcome};
use crate::report::Report;
use crate::server::Instance;

/// A sale of `n` units whose `n` shoppers are all admitted: their tickets.
pub async fn admitted(ctx: &Ctx, inst: &Instance, sale: &str, n: usize) -> Result<Vec<String>> {
    admitted_sized(ctx, inst, sale, n, &[]).await
}

/// As `admitted`, for a sale of these variants ([{id, name, units}], none: one stock).
pub async fn admitted_sized(
    ctx: &Ctx,
    inst: &Instance,
    sale: &str,
    n: usize,
    variants: &[serde_json::Value],
) -> Result<Vec<String>> {
    let addrs = [inst.addr];
    let workers = ctx.sizes.load.conns;
    let mut c = Conn::new(inst.addr);
    // A high rate admits everyone within a tick or two; a long TTL outlives the run.
    let spec = SaleSpec {
        units: n as i64,
        rate_per_sec: 100_000,
        ticket_ttl_secs: 3_600,
        max_per_order: 1,
    };
    let mut body = spec.body(sale, &format!("bench {sale}"));
    if !variants.is_empty() {
        body["variants"] = serde_json::json!(variants);
        body.as_object_mut().expect("a sale body").remove("units");
    }
    let created = c.send(&api::create_sale_req(&body)).await?;
    if created.status != 201 {
        bail!("create sale {sale}: {}", created.describe());
    }
    say(format!("{sale}: {n} shoppers join"));
    let joined = join_many(&addrs, sale, n, workers).await?;
    api::admin(&mut c, sale, "open").await?;
    api::wait_stats(&mut c, sale, std::time::Duration::from_secs(60), |s| {
        s["admitted_total"].as_i64() >= Some(n as i64)
    })
    .await?;
    let tokens: Vec<String> = joined.into_iter().map(|j| j.token).collect();
    let sale = sale.to_string();
    par_map(&addrs, n, workers, move |mut c, i| {
        let (sale, token) = (sale.clone(), tokens[i].clone());
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
    .collect()
}

/// Every ticket checks out once, on `workers` connections: committed orders per second over
/// the batch, and the order ids the API accepted. With `variants` > 0 the i-th ticket buys
/// variant `i % variants` (ids "0", "1", ...).
pub async fn checkouts(
    inst: &Instance,
    sale: &str,
    tickets: Vec<String>,
    workers: usize,
    variants: usize,
) -> (Outcome, Vec<uuid::Uuid>) {
    let (sale, n) = (sale.to_string(), tickets.len());
    let cpu0 = cpu::cpu_secs(inst.pid()).ok();
    let started = Instant::now();
    let replies = par_map(&[inst.addr], n, workers, move |mut c, i| {
        let req = match variants {
            0 => api::checkout_req(&sale, &tickets[i]),
            v => api::checkout_variant_req(&sale, &tickets[i], &(i % v).to_string()),
        };
        async move {
            let t0 = Instant::now();
            let r = c.send(&req).await.map(|reply| (reply, t0.elapsed()));
            (c, r)
        }
    })
    .await;
    let mut out = Outcome {
        secs: started.elapsed().as_secs_f64(),
        ..Outcome::default()
    };
    let cpu1 = cpu::cpu_secs(inst.pid()).ok();
    let mut accepted = Vec::new();
    for reply in replies {
        match reply {
            Ok((reply, took)) => {
                out.answered += 1;
                match api::order_id(&reply) {
                    Some(id) if reply.status == 201 => {
                        accepted.push(id);
                        out.ok += 1;
                        out.lat.push(took);
                    }
                    _ => {
                        out.unexpected += 1;
                        out.sample.get_or_insert_with(|| reply.describe());
                    }
                }
            }
            Err(e) => {
                out.errors += 1;
                out.sample.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    out.lat = std::mem::take(&mut out.lat).finish();
    let used = cpu0.zip(cpu1).map(|(a, b)| b - a);
    out.cpu_us = cpu::us_per_request(used, out.answered);
    (out, accepted)
}

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let inst = ctx.start("orders").await?;
    let sale = ctx.sale_id("orders");
    let n = ctx.sizes.orders;
    let workers = ctx.sizes.load.conns;
    let tickets = admitted(ctx, &inst, &sale, n).await?;

    let npairs = ctx.sizes.pairs;
    let batch = n.div_ceil(npairs);
    say(format!(
        "orders: {npairs} batches of {batch} checkouts on {workers} connections, each beside a Redis EVALSHA run"
    ));
    let accepted = Mutex::new(Vec::new());
    let key = format!("wr:bench:{}:stock", ctx.run);
    let (inst_ref, sale_ref, accepted_ref, key) = (&inst, &sale, &accepted, &key);
    let tickets = &tickets;
    let pairs = alternate(npairs, |side, pair| async move {
        let o = match side {
            Side::Baseline => redis_evalsha(&ctx.stores, ctx.sizes.pair_load, key).await?,
            Side::Target => {
                let mine = tickets.iter().skip(pair * batch).take(batch).cloned();
                let (o, ids) = checkouts(inst_ref, sale_ref, mine.collect(), workers, 0).await;
                accepted_ref.lock().expect("ids lock").extend(ids);
                o
            }
        };
        let what = match side {
            Side::Baseline => "redis EVALSHA",
            Side::Target => "orders",
        };
        say(format!("{what} {pair}: {}", o.summary()));
        Ok(o)
    })
    .await?;
    let accepted = accepted.into_inner().expect("ids lock");
    pairs.record_rates(
        r,
        "baseline_redis_evalsha_rps",
        "orders_per_sec",
        "orders_ratio",
    );
    Pairs::record(r, "baseline_redis_evalsha_p99_ms", &pairs.base, |o| {
        o.lat.pct_ms(99.0)
    });
    Pairs::record(r, "order_p50_ms", &pairs.target, |o| o.lat.pct_ms(50.0));
    Pairs::record(r, "order_p99_ms", &pairs.target, |o| o.lat.pct_ms(99.0));
    Pairs::record(r, "checkout_cpu_us", &pairs.target, cpu_us);
    r.set("orders_committed", accepted.len() as f64);
    r.set("orders_failed", pairs.failed() as f64);

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
    open(ctx, r, &inst).await
}

/// Checkouts at a fixed rate, one admitted ticket each, on the same instance.
async fn open(ctx: &Ctx, r: &mut Report, inst: &Instance) -> Result<()> {
    let load = ctx.sizes.open_load;
    let secs = (load.warmup + load.duration).as_secs_f64();
    let mut rate = r.get("orders_per_sec").unwrap_or(0.0) * OPEN_SHARE;
    // Every send needs a ticket of its own; past the cap the rate comes down instead.
    let wanted = (rate * secs).ceil() as usize + 1;
    let n = wanted.min(ctx.sizes.open_orders_max);
    if n < wanted {
        rate = (n - 1) as f64 / secs;
        r.note(format!(
            "orders-open: {rate:.0}/s, not {OPEN_SHARE} of the closed loop: only {n} tickets"
        ));
    }
    if rate < 1.0 {
        bail!("no closed-loop checkout rate to derive the open loop's from");
    }
    let sale = ctx.sale_id("orders-open");
    let tickets = admitted(ctx, inst, &sale, n).await?;
    let reqs = tickets
        .iter()
        .map(|t| api::checkout_req(&sale, t))
        .collect();
    let out = measure_open(r, "order_open", inst, rate, load, reqs).await;
    // The open loop keeps no order ids: every 201 must be a sold unit in Postgres.
    let check = ctx.check_ledger(r, &sale, &[]).await?;
    let answered_201 = out.ok as i64;
    if check.sold < answered_201 {
        r.add("lost_orders", (answered_201 - check.sold) as u64);
        r.note(format!(
            "orders-open: {answered_201} checkouts answered 201 in the window, Postgres sold {}",
            check.sold
        ));
    }
    Ok(())
}
