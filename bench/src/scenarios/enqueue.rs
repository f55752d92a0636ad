//! Joins at saturation: `POST /api/sales/{id}/queue` with an empty body, keep-alive, for a
//! fixed time. The sale stays closed, so the ticker admits nobody and only the queue grows.
//!
//! `run_limits` measures what the per-client rate limiters cost a join: the same load against
//! instances with the limits on (too high to refuse anything) and off, alternating.

use anyhow::Result;

use super::{median, say, Ctx};
use crate::api::{self, SaleSpec};
use crate::client::Conn;
use crate::load::{saturate, Outcome};
use crate::report::Report;

/// Pairs of (limits on, limits off) runs; each figure is the median of its side.
const PAIRS: usize = 3;
/// What turns both classes of limits off (src/config.rs: a rate of 0).
const LIMITS_OFF: &[(&str, &str)] = &[
    ("WAITROOM_IP_RATE_PER_SEC", "0"),
    ("WAITROOM_IP_READ_RATE_PER_SEC", "0"),
];

/// One instance started with `vars`, one closed sale, the join load for the usual time.
async fn measure(ctx: &Ctx, name: &str, vars: &[(&str, &str)]) -> Result<Outcome> {
    let inst = crate::server::Instance::start_with(&ctx.env, name, vars).await?;
    let sale = ctx.sale_id(name);
    let spec = SaleSpec {
        units: 10_000_000,
        rate_per_sec: 1,
        ticket_ttl_secs: 60,
        max_per_order: 1,
    };
    api::create_sale(&mut Conn::new(inst.addr), &sale, &spec).await?;
    let load = ctx.sizes.load;
    say(format!(
        "{name}: {} connections for {:?} (+{:?} warm-up)",
        load.conns, load.duration, load.warmup
    ));
    let out = saturate(inst.addr, load, api::join_req(&sale), 201).await;
    say(format!("{name}: {}", out.summary()));
    Ok(out)
}

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    // The instance's default environment: limits on, too high to refuse (server.rs).
    let out = measure(ctx, "enqueue", &[]).await?;
    r.set("enqueue_rps", out.rps());
    r.set("enqueue_p50_ms", out.lat.pct_ms(50.0));
    r.set("enqueue_p99_ms", out.lat.pct_ms(99.0));
    r.set("enqueue_failed", (out.unexpected + out.errors) as f64);
    Ok(())
}

pub async fn run_limits(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    let mut failed = 0;
    for pair in 0..PAIRS {
        // Which side goes first alternates, so a drift in the machine's load favours neither.
        for limits_on in [pair % 2 == 0, pair % 2 != 0] {
            let (name, vars) = if limits_on {
                (format!("enqueue-limits-on-{pair}"), &[][..])
            } else {
                (format!("enqueue-limits-off-{pair}"), LIMITS_OFF)
            };
            let out = measure(ctx, &name, vars).await?;
            failed += out.unexpected + out.errors;
            if limits_on { &mut on } else { &mut off }.push(out.rps());
        }
    }
    // Each pair's own ratio too: on a shared machine, neighbours in time agree better.
    let mut pairs: Vec<f64> = on.iter().zip(&off).map(|(a, b)| a / b).collect();
    let pair_ratio = median(&mut pairs);
    let (on, off) = (median(&mut on), median(&mut off));
    say(format!(
        "enqueue limits: on {on:.0}/s, off {off:.0}/s (medians of {PAIRS}): {:.3}; median pair ratio {pair_ratio:.3}",
        on / off
    ));
    r.set("enqueue_limits_pair_ratio", pair_ratio);
    r.set("enqueue_limits_on_rps", on);
    r.set("enqueue_limits_off_rps", off);
    r.set("enqueue_limits_failed", failed as f64);
    Ok(())
}
