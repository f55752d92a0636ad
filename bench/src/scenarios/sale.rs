//! A whole sale through three instances sharing Redis and Postgres: every shopper joins,
//! polls `/status` until admitted or sold out, and buys one unit when admitted. Joins, polls
//! and checkouts go round robin over the instances.
//!
//! Exact data only: the admission time of a shopper is Redis's own clock, recovered from the
//! admission expiry `/status` reports (admit.lua sets expiry = Redis TIME + ticket TTL), and
//! the join order is the `seq` enqueue.lua hands out. So neither polling delay nor harness
//! load can fake an inversion or an admission-rate error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use uuid::Uuid;

use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::client::Conn;
use crate::load::join_many;
use crate::report::Report;

const INSTANCES: usize = 3;
/// Long enough that no admission lapses while the harness is busy.
const TICKET_TTL_SECS: i64 = 300;

struct Shopper {
    idx: usize,
    token: String,
    next: Instant,
    admitted_ms: Option<i64>,
}

/// How one shopper's sale ended.
#[derive(Clone, Debug, Default)]
struct Fate {
    /// Admission time, ms on Redis's clock.
    admitted_ms: Option<i64>,
    order: Option<Uuid>,
    /// Gave up (harness deadline): excluded from the FIFO check.
    unfinished: bool,
}

#[derive(Default)]
struct Tally {
    polls: u64,
    errors: u64,
    sample: Option<String>,
}

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let (n, units, rate) = (
        ctx.sizes.sale_shoppers,
        ctx.sizes.sale_units,
        ctx.sizes.sale_rate,
    );
    let mut instances = Vec::new();
    for i in 1..=INSTANCES {
        instances.push(ctx.start(&format!("sale-{i}")).await?);
    }
    let addrs: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();
    let sale = ctx.sale_id("sale");
    let mut admin = Conn::new(addrs[0]);
    let spec = SaleSpec {
        units: units as i64,
        rate_per_sec: rate as i64,
        ticket_ttl_secs: TICKET_TTL_SECS,
        max_per_order: 1,
    };
    api::create_sale(&mut admin, &sale, &spec).await?;

    say(format!(
        "sale: {n} shoppers for {units} units at {rate}/s through {INSTANCES} instances"
    ));
    let joined = join_many(&addrs, &sale, n, ctx.sizes.load.conns).await?;
    api::admin(&mut admin, &sale, "open").await?;
    let started = Instant::now();

    // Shopper i polls from worker i % workers, first after about half its expected wait.
    let workers = ctx.sizes.load.conns;
    let mut lists: Vec<Vec<Shopper>> = (0..workers).map(|_| Vec::new()).collect();
    for (idx, j) in joined.iter().enumerate() {
        lists[idx % workers].push(Shopper {
            idx,
            token: j.token.clone(),
            next: started + poll_delay(j.seq, rate, idx),
            admitted_ms: None,
        });
    }
    let deadline = started + Duration::from_secs(120);
    let tasks: Vec<_> = lists
        .into_iter()
        .enumerate()
        .map(|(w, mine)| tokio::spawn(shop(addrs.clone(), sale.clone(), mine, rate, w, deadline)))
        .collect();
    let mut fates = vec![Fate::default(); n];
    let mut tally = Tally::default();
    for t in tasks {
        let (done, part) = t.await?;
        for (idx, fate) in done {
            fates[idx] = fate;
        }
        tally.polls += part.polls;
        tally.errors += part.errors;
        tally.sample = tally.sample.or(part.sample);
    }
    let secs = started.elapsed().as_secs_f64();

    let accepted: Vec<Uuid> = fates.iter().filter_map(|f| f.order).collect();
    let admitted = fates.iter().filter(|f| f.admitted_ms.is_some()).count();
    let unfinished = fates.iter().filter(|f| f.unfinished).count();
    say(format!(
        "sale: done in {secs:.1} s: {admitted} admitted, {} bought, {} polls, {} errors{}",
        accepted.len(),
        tally.polls,
        tally.errors,
        tally
            .sample
            .as_ref()
            .map(|s| format!(" (e.g. {s})"))
            .unwrap_or_default()
    ));
    if unfinished > 0 {
        r.error(format!(
            "sale: {unfinished} shoppers still waiting at the 120 s deadline"
        ));
    }

    let seqs: Vec<i64> = joined.iter().map(|j| j.seq).collect();
    let (inversions, first) = fifo_inversions(&seqs, &fates);
    r.add("fifo_inversions", inversions);
    if let Some(x) = first {
        r.note(format!("sale: {inversions} FIFO inversions; first: {x}"));
    }

    let times: Vec<i64> = fates.iter().filter_map(|f| f.admitted_ms).collect();
    match admission_rate(&times) {
        Some((measured, window_secs, counted)) => {
            let err = (measured - rate as f64) / rate as f64 * 100.0;
            say(format!(
                "sale: admitted {measured:.1}/s over the steady {window_secs:.2} s ({counted} admissions) \
                 vs {rate}/s configured: {err:+.3} %"
            ));
            // Over the sale's short admission window; the admission scenario measures 60 s.
            r.set("sale_admission_rate_error_pct", err);
        }
        None => r.error("sale: too few admission batches to measure the rate"),
    }

    let stats = api::stats(&mut admin, &sale).await?;
    let total = stats["admitted_total"].as_i64().unwrap_or(-1);
    if total != admitted as i64 {
        r.note(format!(
            "sale: Redis counted {total} admissions, shoppers saw {admitted}"
        ));
    }
    r.set("sale_shoppers", n as f64);
    r.set("sale_admitted", admitted as f64);
    r.set("sale_orders", accepted.len() as f64);
    r.set("sale_secs", secs);
    r.set("sale_errors", tally.errors as f64);
    let check = ctx.check_ledger(r, &sale, &accepted).await?;
    say(format!(
        "sale: Postgres has {} orders, sold {} of {}",
        check.live_orders, check.sold, check.units
    ));
    if accepted.len() < units && unfinished == 0 {
        r.note(format!(
            "sale: only {} of {units} units sold though every shopper finished",
            accepted.len()
        ));
    }
    if accepted.is_empty() {
        bail!("nobody bought anything");
    }
    Ok(())
}

/// About half the expected wait at this place in line, at least 0.25 s and at most 2 s (the
/// page would follow `progress`; a poll every 2 s is what a patient tab costs), plus jitter
/// so polls do not arrive in lockstep.
fn poll_delay(position: i64, rate: usize, idx: usize) -> Duration {
    let half_wait = position.max(0) as f64 / rate as f64 / 2.0;
    Duration::from_secs_f64(half_wait.clamp(0.25, 2.0))
        + Duration::from_millis((idx * 7919 % 200) as u64)
}

/// One worker's shoppers: poll whoever is due, buy when admitted, until all are done.
async fn shop(
    addrs: Vec<SocketAddr>,
    sale: String,
    mut mine: Vec<Shopper>,
    rate: usize,
    worker: usize,
    deadline: Instant,
) -> (Vec<(usize, Fate)>, Tally) {
    let mut conns: Vec<Conn> = addrs.iter().map(|a| Conn::new(*a)).collect();
    let mut rr = worker;
    let mut next_conn = || {
        rr += 1;
        rr % addrs.len()
    };
    let (mut done, mut tally) = (Vec::new(), Tally::default());
    while let Some(k) = (0..mine.len()).min_by_key(|&k| mine[k].next) {
        if Instant::now() > deadline {
            for s in mine.drain(..) {
                let fate = Fate {
                    admitted_ms: s.admitted_ms,
                    unfinished: true,
                    ..Fate::default()
                };
                done.push((s.idx, fate));
            }
            break;
        }
        tokio::time::sleep_until(mine[k].next.into()).await;
        let s = &mut mine[k];
        tally.polls += 1;
        let status = match api::status(&mut conns[next_conn()], &sale, &s.token).await {
            Ok(v) => v,
            Err(e) => {
                tally.errors += 1;
                tally.sample.get_or_insert(format!("{e:#}"));
                s.next = Instant::now() + Duration::from_millis(500);
                continue;
            }
        };
        let fate = match status["status"].as_str().unwrap_or("") {
            "admitted" => {
                let Some(t) = api::ticket_of(&status) else {
                    tally.errors += 1;
                    tally
                        .sample
                        .get_or_insert(format!("admitted without a ticket: {status}"));
                    s.next = Instant::now() + Duration::from_millis(500);
                    continue;
                };
                let admitted_ms = t.expires_at_ms - TICKET_TTL_SECS * 1000;
                s.admitted_ms.get_or_insert(admitted_ms);
                let req = api::checkout_req(&sale, &t.ticket);
                match conns[next_conn()].send(&req).await {
                    Ok(reply) if api::order_id(&reply).is_some() => Fate {
                        admitted_ms: s.admitted_ms,
                        order: api::order_id(&reply),
                        unfinished: false,
                    },
                    // Admitted but out of stock: allowed only if others bought every unit
                    // (the oversold and units-sold checks judge that).
                    Ok(reply) if reply.status == 409 => Fate {
                        admitted_ms: s.admitted_ms,
                        ..Fate::default()
                    },
                    // Anything else: ask again; a checkout that did commit shows as purchased.
                    other => {
                        tally.errors += 1;
                        let what = match other {
                            Ok(reply) => reply.describe(),
                            Err(e) => format!("{e:#}"),
                        };
                        tally.sample.get_or_insert(format!("checkout: {what}"));
                        s.next = Instant::now() + Duration::from_millis(200);
                        continue;
                    }
                }
            }
            "purchased" => Fate {
                admitted_ms: s.admitted_ms,
                order: status["order_id"].as_str().and_then(|o| o.parse().ok()),
                unfinished: false,
            },
            // Nothing left to buy now (the bench never pays, so a waitlist never moves).
            "sold_out" | "waitlisted" | "expired" => Fate {
                admitted_ms: s.admitted_ms,
                ..Fate::default()
            },
            _ => {
                let position = status["position"].as_i64().unwrap_or(0);
                s.next = Instant::now() + poll_delay(position, rate, s.idx);
                continue;
            }
        };
        let s = mine.swap_remove(k);
        done.push((s.idx, fate));
    }
    (done, tally)
}

/// Shoppers admitted before someone who joined earlier. Walking shoppers in join order
/// (`seqs[i]` is shopper i's), nobody may be admitted before the latest admission of anyone
/// ahead of them; never admitted counts as admitted at +infinity. Returns the count and the
/// first one found.
fn fifo_inversions(seqs: &[i64], fates: &[Fate]) -> (u64, Option<String>) {
    let mut by_seq: Vec<(i64, &Fate)> = seqs.iter().copied().zip(fates).collect();
    by_seq.sort_by_key(|(seq, _)| *seq);
    let (mut latest, mut inversions, mut first) = (i64::MIN, 0, None);
    for (seq, f) in by_seq {
        if f.unfinished {
            continue;
        }
        match f.admitted_ms {
            Some(t) if t < latest => {
                inversions += 1;
                first.get_or_insert(format!(
                    "seq {seq} admitted at {t} ms, before an earlier joiner (admitted at {latest} ms, or never)"
                ));
            }
            Some(t) => latest = t,
            None => latest = i64::MAX,
        }
    }
    (inversions, first)
}

/// Admitted per second over the steady part of the sale: from the first admission batch to
/// the last full one (the final batch is cut short by the stock running out). Each tick admits
/// whole shoppers and carries the fraction, so the count between two batch times is exact
/// to within one shopper. Returns (rate, window seconds, admissions counted).
fn admission_rate(times: &[i64]) -> Option<(f64, f64, usize)> {
    let mut batches: BTreeMap<i64, usize> = BTreeMap::new();
    for &t in times {
        *batches.entry(t).or_default() += 1;
    }
    let batches: Vec<(i64, usize)> = batches.into_iter().collect();
    if batches.len() < 3 {
        return None;
    }
    let steady = &batches[..batches.len() - 1];
    let (first, last) = (steady[0].0, steady[steady.len() - 1].0);
    // Admissions after the first batch, up to and including the last steady one.
    let counted: usize = steady[1..].iter().map(|b| b.1).sum();
    let secs = (last - first) as f64 / 1000.0;
    (secs > 0.0).then(|| (counted as f64 / secs, secs, counted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(ms: Option<i64>) -> Fate {
        Fate {
            admitted_ms: ms,
            ..Fate::default()
        }
    }

    #[test]
    fn inversions_count_shoppers_who_overtook_an_earlier_one() {
        // Same batch: no inversion. Later batch: none. Seq 4 before seq 3: one.
        let fates = [Some(10), Some(10), Some(20), Some(15)].map(admitted);
        assert_eq!(fifo_inversions(&[1, 2, 3, 4], &fates).0, 1);
        // Someone never admitted while a later joiner was: an inversion.
        let fates = [None, Some(10)].map(admitted);
        assert_eq!(fifo_inversions(&[1, 2], &fates).0, 1);
        // Join order comes from seq, not from the index.
        let fates = [Some(20), Some(10)].map(admitted);
        assert_eq!(fifo_inversions(&[2, 1], &fates).0, 0);
    }

    #[test]
    fn admission_rate_skips_the_first_and_the_cut_short_last_batch() {
        // 5 per 100 ms = 50/s, then a final batch of 2 when stock ran out.
        let mut times = Vec::new();
        for b in 0..10 {
            times.extend([b * 100; 5]);
        }
        times.extend([1_000; 2]);
        let (rate, secs, counted) = admission_rate(&times).unwrap();
        assert_eq!((rate, secs, counted), (50.0, 0.9, 45));
    }
}
