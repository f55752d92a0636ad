//! Joins at saturation: `POST /api/sales/{id}/queue` with an empty body, keep-alive, for a
//! fixed time. The sale stays closed, so the ticker admits nobody and only the queue grows.
//! The joins alternate with the bare POST route (3 pairs); then joins arrive open-loop at
//! 70% of the median closed-loop maximum for the latency without coordinated omission.
//!
//! `run_limits` measures what the per-client rate limiters cost a join: the same load against
//! instances with the limits on (too high to refuse anything) and off, alternating.

use anyhow::Result;

use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::baseline::{alternate, cpu_us, BareRoute, Pairs, Side};
use crate::client::{Conn, Req};
use crate::load::{open_loop, saturate_on, Load, Outcome, Pool};
use crate::report::Report;
use crate::server::Instance;

/// What turns both classes of limits off (src/config.rs: a rate of 0).
const LIMITS_OFF: &[(&str, &str)] = &[
    ("WAITROOM_IP_RATE_PER_SEC", "0"),
    ("WAITROOM_IP_READ_RATE_PER_SEC", "0"),
];
/// The open loop's rate as a share of the closed-loop maximum: loaded, not saturated.
pub const OPEN_SHARE: f64 = 0.7;

/// One instance started with `vars` and one closed sale of its own.
async fn instance(ctx: &Ctx, name: &str, vars: &[(&str, &str)]) -> Result<(Instance, String)> {
    let inst = ctx.env.start_with(name, vars).await?;
    let sale = ctx.sale_id(name);
    let spec = SaleSpec::line_only();
    api::create_sale(&mut Conn::new(inst.addr), &sale, &spec).await?;
    Ok((inst, sale))
}

/// The join load on a fresh instance (a fresh queue every run).
async fn measure(ctx: &Ctx, name: &str, vars: &[(&str, &str)], load: Load) -> Result<Outcome> {
    let (inst, sale) = instance(ctx, name, vars).await?;
    say(format!(
        "{name}: {} connections for {:?} (+{:?} warm-up)",
        load.conns, load.duration, load.warmup
    ));
    let req = api::join_req(&sale);
    let out = saturate_on(inst.addr, Some(inst.pid()), load, vec![req], 201).await;
    say(format!("{name}: {}", out.summary()));
    Ok(out)
}

pub async fn run(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let load = ctx.sizes.pair_load;
    let bare = BareRoute::start()?;
    // The instance's default environment: limits on, too high to refuse (server.rs).
    let pairs = alternate(ctx.sizes.pairs, |side, pair| {
        let bare = &bare;
        async move {
            match side {
                Side::Baseline => {
                    let o = bare.post(load).await;
                    say(format!("baseline http {pair}: {}", o.summary()));
                    Ok(o)
                }
                Side::Target => measure(ctx, &format!("enqueue-{pair}"), &[], load).await,
            }
        }
    })
    .await?;
    drop(bare);
    pairs.record_rates(r, "baseline_http_rps", "enqueue_rps", "enqueue_ratio");
    Pairs::record(r, "baseline_http_p99_ms", &pairs.base, |o| {
        o.lat.pct_ms(99.0)
    });
    Pairs::record(r, "enqueue_p50_ms", &pairs.target, |o| o.lat.pct_ms(50.0));
    Pairs::record(r, "enqueue_p99_ms", &pairs.target, |o| o.lat.pct_ms(99.0));
    Pairs::record(r, "bare_cpu_us", &pairs.base, cpu_us);
    Pairs::record(r, "join_cpu_us", &pairs.target, cpu_us);
    if let (Some(join), Some(bare)) = (r.get("join_cpu_us"), r.get("bare_cpu_us")) {
        r.set("join_cpu_ratio", join / bare);
    }
    r.set("enqueue_failed", pairs.failed() as f64);

    let rate = r.get("enqueue_rps").unwrap_or(0.0) * OPEN_SHARE;
    if rate < 1.0 {
        anyhow::bail!("no closed-loop join rate to derive the open loop's from");
    }
    let (inst, sale) = instance(ctx, "enqueue-open", &[]).await?;
    let reqs = vec![api::join_req(&sale)];
    measure_open(r, "enqueue_open", &inst, rate, ctx.sizes.open_load, reqs).await;
    Ok(())
}

/// An open-loop run of `reqs` at `rate` against `inst`; its figures go under `prefix`:
/// offered and achieved rate, percentiles from the intended send time, late sends, failures,
/// CPU per answer.
pub async fn measure_open(
    r: &mut Report,
    prefix: &str,
    inst: &Instance,
    rate: f64,
    load: Load,
    reqs: Vec<Req>,
) -> Outcome {
    say(format!(
        "{prefix}: {rate:.0}/s for {:?} (+{:?} warm-up)",
        load.duration, load.warmup
    ));
    let out = open_loop(
        Pool::new(inst.addr),
        Some(inst.pid()),
        rate,
        load,
        reqs,
        201,
    )
    .await;
    say(format!(
        "{prefix}: {}, {} connections",
        out.summary(),
        out.conns
    ));
    r.set(&format!("{prefix}_rate"), rate);
    r.set(&format!("{prefix}_rps"), out.answered_rps());
    r.set(&format!("{prefix}_p50_ms"), out.lat.pct_ms(50.0));
    r.set(&format!("{prefix}_p99_ms"), out.lat.pct_ms(99.0));
    r.set(&format!("{prefix}_p999_ms"), out.lat.pct_ms(99.9));
    r.set(&format!("{prefix}_late"), out.late as f64);
    r.set(&format!("{prefix}_failed"), out.failed() as f64);
    if let Some(us) = out.cpu_us {
        r.set(&format!("{prefix}_cpu_us"), us);
    }
    out
}

pub async fn run_limits(ctx: &Ctx, r: &mut Report) -> Result<()> {
    let load = ctx.sizes.load;
    // Baseline: limits off; target: limits on.
    let pairs = alternate(ctx.sizes.pairs, |side, pair| async move {
        match side {
            Side::Target => measure(ctx, &format!("enqueue-limits-on-{pair}"), &[], load).await,
            Side::Baseline => {
                let name = format!("enqueue-limits-off-{pair}");
                measure(ctx, &name, LIMITS_OFF, load).await
            }
        }
    })
    .await?;
    pairs.record_rates(
        r,
        "enqueue_limits_off_rps",
        "enqueue_limits_on_rps",
        "enqueue_limits_pair_ratio",
    );
    let failed = pairs.failed() + pairs.base.iter().map(Outcome::failed).sum::<u64>();
    r.set("enqueue_limits_failed", failed as f64);
    Ok(())
}
