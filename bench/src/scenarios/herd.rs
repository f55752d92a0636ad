//! The herd through the sell-out: a crowd of ticket holders, many more than units, all
//! clicking "Buy" while units are still left, through the last unit and on. Measured from the
//! first click, so the sell-out itself (signature checks, checkout.lua round trips, the
//! instance learning who bought) is inside the window, not only the refusals from memory
//! after it.
//!
//! admit.lua never lets in more ticket holders than units (each may take max_per_order), so
//! the crowd is admitted by hand: its queue ids go into the sale's `admitted` set in Redis, as
//! a people-counting admission (or a failover that lost track of admissions) would leave them.
//! The tickets themselves are the server's: each shopper reads theirs from `/status`.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::client::Conn;
use crate::load::{join_many, par_map, Latencies};
use crate::report::Report;

/// One answer of the herd: when it was sent (µs after the first click), how long it took,
/// and what it was.
#[derive(Clone, Copy)]
struct Answer {
    sent_us: u64,
    took: Duration,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sold,
    Refused,
    Unexpected,
    Error,
}

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let inst = ctx.start("herd").await?;
    let addrs = [inst.addr];
    let sale = ctx.sale_id("herd");
    let (units, crowd) = (ctx.sizes.herd_units, ctx.sizes.herd_crowd);
    let load = ctx.sizes.load;
    let mut c = Conn::new(inst.addr);
    let spec = SaleSpec {
        units: units as i64,
        rate_per_sec: 1_000,
        ticket_ttl_secs: 3_600,
        max_per_order: 1,
    };
    api::create_sale(&mut c, &sale, &spec).await?;
    say(format!("herd: {crowd} shoppers join for {units} units"));
    let joined = join_many(&addrs, &sale, crowd, load.conns).await?;
    let tokens: Vec<String> = joined.into_iter().map(|j| j.token).collect();
    admit_by_hand(ctx, &sale, &tokens).await?;
    api::admin(&mut c, &sale, "open").await?;
    let tickets = read_tickets(&addrs, &sale, tokens, load.conns).await?;

    say(format!(
        "herd: {crowd} ticket holders on {} connections for {:?}, from the first click",
        load.conns, load.duration
    ));
    // The server's CPU per refusal once the sell-out is over (it takes a few hundred ms).
    let start = Instant::now();
    let settled = start + (load.duration / 3).min(Duration::from_secs(1));
    let cpu = crate::cpu::window(Some(inst.pid()), settled, start + load.duration);
    let (answers, accepted) =
        click(inst.addr, &sale, tickets, load.conns, start, load.duration).await;
    let settled_us = (settled - start).as_micros() as u64;
    let late = answers.iter().filter(|a| a.sent_us >= settled_us).count();
    let cpu_us = crate::cpu::us_per_request(cpu.await.ok().flatten(), late as u64);
    let sold = accepted.len();
    let Some(sold_out_us) = answers
        .iter()
        .filter(|a| a.kind == Kind::Sold)
        .map(|a| a.sent_us + a.took.as_micros() as u64)
        .max()
    else {
        bail!("the herd bought nothing");
    };
    let window = load.duration.as_secs_f64();
    let whole = refusals(&answers, 0, u64::MAX);
    let first_second = refusals(&answers, sold_out_us, sold_out_us + 1_000_000);
    let (unexpected, errors) = (
        count(&answers, Kind::Unexpected),
        count(&answers, Kind::Error),
    );
    say(format!(
        "herd: {sold} sold, the last {:.0} ms after the first click; refusals {:.0}/s over \
         the window (p99 {:.2} ms), {} in the first second after (p99 {:.2} ms); \
         {unexpected} unexpected, {errors} errors",
        sold_out_us as f64 / 1000.0,
        whole.count() as f64 / window,
        whole.pct_ms(99.0),
        first_second.count(),
        first_second.pct_ms(99.0),
    ));
    r.set("checkout_reject_rps", whole.count() as f64 / window);
    r.set("checkout_reject_p50_ms", whole.pct_ms(50.0));
    r.set("checkout_reject_p99_ms", whole.pct_ms(99.0));
    r.set("herd_transition_rps", first_second.count() as f64);
    r.set("herd_transition_p99_ms", first_second.pct_ms(99.0));
    r.set("herd_sellout_ms", sold_out_us as f64 / 1000.0);
    if let Some(us) = cpu_us {
        say(format!(
            "herd: {us:.1} µs of server CPU per refusal after the sell-out"
        ));
        r.set("herd_cpu_us", us);
    }
    r.set("checkout_reject_unexpected", (unexpected + errors) as f64);
    // Every unit sold exactly once, to this crowd.
    r.add("oversold", sold.saturating_sub(units) as u64);
    if sold < units {
        r.note(format!(
            "herd: only {sold} of {units} units sold in the window"
        ));
    }
    ctx.check_ledger(r, &sale, &accepted).await?;
    Ok(())
}

/// Puts every shopper of `tokens` into the sale's admitted set (and out of the line), with an
/// expiry past the run, as the ticker would if it counted people rather than units.
async fn admit_by_hand(ctx: &Ctx, sale: &str, tokens: &[String]) -> Result<()> {
    let qids: Vec<String> = tokens
        .iter()
        .map(|t| {
            waitroom::infra::tokens::unverified_subject(t).context("a token without a queue id")
        })
        .collect::<Result<_>>()?;
    let mut redis = ctx.stores.redis_conn().await?;
    let expires_ms = super::now_ms() + 3_600_000;
    for chunk in qids.chunks(1_000) {
        let mut p = redis::pipe();
        p.cmd("ZADD").arg(format!("wr:{{{sale}}}:admitted"));
        for q in chunk {
            p.arg(expires_ms).arg(q);
        }
        p.ignore()
            .cmd("ZREM")
            .arg(format!("wr:{{{sale}}}:queue"))
            .arg(chunk)
            .ignore();
        let _: () = p.query_async(&mut redis).await?;
    }
    Ok(())
}

async fn read_tickets(
    addrs: &[std::net::SocketAddr],
    sale: &str,
    tokens: Vec<String>,
    workers: usize,
) -> Result<Vec<String>> {
    let sale = sale.to_string();
    par_map(addrs, tokens.len(), workers, move |mut c, i| {
        let (sale, token) = (sale.clone(), tokens[i].clone());
        async move {
            let t = api::wait_ticket(&mut c, &sale, &token, Duration::from_secs(10)).await;
            (c, t.map(|t| t.ticket))
        }
    })
    .await
    .into_iter()
    .collect()
}

/// Every connection clicks for its share of the crowd in turn, as fast as answers come, for
/// `duration` from the first click; a holder who bought stops clicking.
async fn click(
    addr: std::net::SocketAddr,
    sale: &str,
    tickets: Vec<String>,
    conns: usize,
    start: Instant,
    duration: Duration,
) -> (Vec<Answer>, Vec<uuid::Uuid>) {
    let end = start + duration;
    let mut shares: Vec<Vec<String>> = vec![Vec::new(); conns.max(1)];
    for (i, t) in tickets.into_iter().enumerate() {
        shares[i % conns.max(1)].push(t);
    }
    let workers: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let reqs: Vec<_> = share.iter().map(|t| api::checkout_req(sale, t)).collect();
            tokio::spawn(async move {
                let mut conn = Conn::new(addr);
                let (mut answers, mut accepted) = (Vec::new(), Vec::new());
                let mut live: Vec<usize> = (0..reqs.len()).collect();
                let mut next = 0;
                while !live.is_empty() {
                    let t0 = Instant::now();
                    if t0 >= end {
                        break;
                    }
                    next %= live.len();
                    let reply = conn.send(&reqs[live[next]]).await;
                    let kind = match &reply {
                        Ok(r) if r.status == 201 => match api::order_id(r) {
                            Some(id) => {
                                accepted.push(id);
                                live.remove(next);
                                Kind::Sold
                            }
                            None => Kind::Unexpected,
                        },
                        Ok(r) if r.status == 409 && is_sold_out(&r.body) => Kind::Refused,
                        Ok(_) => Kind::Unexpected,
                        Err(_) => Kind::Error,
                    };
                    if kind != Kind::Sold {
                        next += 1;
                    }
                    let took = t0.elapsed();
                    if t0 + took <= end {
                        let sent_us = (t0 - start).as_micros() as u64;
                        answers.push(Answer {
                            sent_us,
                            took,
                            kind,
                        });
                    }
                    if kind == Kind::Error {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                (answers, accepted)
            })
        })
        .collect();
    let (mut answers, mut accepted) = (Vec::new(), Vec::new());
    for w in workers {
        if let Ok((a, b)) = w.await {
            answers.extend(a);
            accepted.extend(b);
        }
    }
    (answers, accepted)
}

/// Latencies of the refusals sent in [from_us, to_us).
fn refusals(answers: &[Answer], from_us: u64, to_us: u64) -> Latencies {
    let mut lat = Latencies::default();
    for a in answers {
        if a.kind == Kind::Refused && (from_us..to_us).contains(&a.sent_us) {
            lat.push(a.took);
        }
    }
    lat.finish()
}

fn is_sold_out(body: &[u8]) -> bool {
    body.windows(10).any(|w| w == b"\"sold_out\"")
}

fn count(answers: &[Answer], kind: Kind) -> usize {
    answers.iter().filter(|a| a.kind == kind).count()
}
