//! Redis bytes per queued shopper at 1,000,000 queued (DESIGN.md: ≤ 120 B; quick mode: 100,000).
//!
//! A sample of real joins through the API first: their queue entries show the format
//! lua/enqueue.lua writes (a 28-hex-character queue id scored by Redis TIME in µs, strictly
//! increasing; with no cap on places per client nothing else per shopper). The rest is loaded
//! with pipelined `ZADD` batches of that exact format straight to Redis, not by running the
//! script a million times: the encoding depends only on the members, scores and their count,
//! and EVALSHA one by one would take about a minute of the shared cores for the same bytes.
//! Then `MEMORY USAGE key SAMPLES 0` (exact) of every key of the sale, and INFO's used_memory
//! before and after (the whole instance: other clients of a shared Redis move it too).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, AsyncConnectionConfig};

use super::{say, Ctx};
use crate::api::{self, SaleSpec};
use crate::client::Conn;
use crate::load::join_many;
use crate::report::Report;

/// Joins through the API before the bulk load: enough to see the format, quick to make.
const SAMPLE_JOINS: usize = 200;
/// Members per ZADD, and ZADDs in flight per pipeline.
const BATCH: usize = 1_000;
const PIPELINE: usize = 20;

pub async fn run(ctx: &Ctx, r: &mut Report, quick: bool) -> Result<()> {
    let total: usize = if quick { 100_000 } else { 1_000_000 };
    let inst = ctx.start("memory").await?;
    let sale = ctx.sale_id("memory");
    let mut c = Conn::new(inst.addr);
    // Closed: nobody is admitted, the line only grows (as in the enqueue scenario).
    let spec = SaleSpec::line_only();
    api::create_sale(&mut c, &sale, &spec).await?;
    // Not the default 500 ms reply timeout: a 20,000-member pipeline or an exact MEMORY USAGE
    // of a million entries takes longer on a busy machine.
    let cfg = AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(60)));
    let mut redis = ctx
        .stores
        .redis
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?;
    let before = used_memory(&mut redis).await?;
    let joined = join_many(&[inst.addr], &sale, SAMPLE_JOINS, 16).await?;
    let queue = format!("wr:{{{sale}}}:queue");
    let sample: Vec<(String, String)> = redis.zrange_withscores(&queue, 0, -1).await?;
    let shape = check_format(&sample, joined.len())?;
    let last_us: i64 = sample.last().context("empty queue")?.1.parse()?;

    let t = Instant::now();
    fill(
        &mut redis,
        &queue,
        total - sample.len(),
        &shape,
        last_us + 1,
    )
    .await?;
    // The side keys as the script leaves them after `total` joins (one hash per sale).
    let seq = format!("wr:{{{sale}}}:seq");
    let last = last_us + (total - sample.len()) as i64;
    redis::pipe()
        .hset(&seq, "n", total)
        .hset(&seq, "last_us", last)
        .exec_async(&mut redis)
        .await?;
    let queued: usize = redis.zcard(&queue).await?;
    if queued != total {
        bail!("{queued} queued after the load, {total} expected");
    }
    say(format!(
        "memory: {total} queued ({} through the API) in {:.1} s",
        sample.len(),
        t.elapsed().as_secs_f64()
    ));

    let keys: Vec<String> = redis.keys(format!("wr:{{{sale}}}:*")).await?;
    let mut bytes = 0u64;
    let mut queue_bytes = 0u64;
    for k in &keys {
        let b: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(k)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut redis)
            .await?;
        bytes += b.unwrap_or(0);
        if *k == queue {
            queue_bytes = b.unwrap_or(0);
        }
    }
    let after = used_memory(&mut redis).await?;
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(&queue)
        .query_async(&mut redis)
        .await?;
    // The sale's keys go now, not at the clean-up: a million entries are worth freeing early.
    let _: () = redis::cmd("UNLINK")
        .arg(&keys)
        .query_async(&mut redis)
        .await?;

    let per = bytes as f64 / total as f64;
    say(format!(
        "memory: {} keys, {bytes} B ({per:.1} B per queued; the queue {queue_bytes} B, {encoding}); \
         used_memory {before} -> {after}",
        keys.len()
    ));
    r.set("redis_queued", total as f64);
    r.set("redis_bytes_per_queued", per);
    r.set(
        "redis_used_memory_per_queued",
        after.saturating_sub(before) as f64 / total as f64,
    );
    if per > 120.0 {
        r.note(explain(per, total, shape.len(), &encoding));
    }
    Ok(())
}

/// Every entry a real join made: a lowercase hex id of one length and its client's tag
/// (`<hex>.<tag>`, one client here, so one tag), an integer score in µs, strictly increasing in
/// join order. Returns the shape, which the bulk load copies.
fn check_format(sample: &[(String, String)], joined: usize) -> Result<Shape> {
    if sample.len() != joined {
        bail!("{joined} joins but {} queue entries", sample.len());
    }
    let first = &sample.first().context("empty queue")?.0;
    let (id, tag) = first
        .split_once('.')
        .context("a queue id without its client's tag")?;
    let shape = Shape {
        hex_len: id.len(),
        tag: tag.to_string(),
    };
    let mut prev = 0i64;
    for (member, score) in sample {
        let fits = member.split_once('.').is_some_and(|(id, tag)| {
            id.len() == shape.hex_len
                && tag == shape.tag
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        let us: i64 = score.parse().unwrap_or(0);
        if !fits || us <= prev || us < 1_000_000_000_000_000 {
            bail!("queue entry {member:?} {score:?} is not what the bulk load writes");
        }
        prev = us;
    }
    Ok(shape)
}

/// What a queue member looks like: `hex_len` hex characters, a dot, the client's tag.
struct Shape {
    hex_len: usize,
    tag: String,
}

impl Shape {
    fn len(&self) -> usize {
        self.hex_len + 1 + self.tag.len()
    }
}

/// `n` more entries of the same shape: random hex ids, the tag, scores `first_us`,
/// `first_us + 1`, ...
async fn fill(
    redis: &mut MultiplexedConnection,
    queue: &str,
    n: usize,
    shape: &Shape,
    first_us: i64,
) -> Result<()> {
    let mut done = 0usize;
    while done < n {
        let mut pipe = redis::pipe();
        for _ in 0..PIPELINE {
            let m = BATCH.min(n - done);
            if m == 0 {
                break;
            }
            let items: Vec<(i64, String)> = (0..m)
                .map(|i| {
                    let mut id = uuid::Uuid::new_v4().simple().to_string();
                    id.truncate(shape.hex_len);
                    (first_us + (done + i) as i64, format!("{id}.{}", shape.tag))
                })
                .collect();
            pipe.zadd_multiple(queue, &items).ignore();
            done += m;
        }
        pipe.exec_async(redis).await?;
    }
    Ok(())
}

async fn used_memory(redis: &mut MultiplexedConnection) -> Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(redis).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .context("INFO memory without used_memory")?
        .trim()
        .parse()
        .context("used_memory")
}

/// Why a miss, from what `MEMORY USAGE` counts for one entry of a big sorted set in Redis 7
/// (skiplist + dict; jemalloc, whose classes are 16 B apart from 16 to 128 B): the member's sds
/// string, a skiplist node (24 B + 16 B per level, levels 1, 2, ... with p = 1/4), a dict entry
/// (24 B) and the dict's 8-byte buckets (a power of two at least the entry count).
fn explain(per: f64, total: usize, member_len: usize, encoding: &str) -> String {
    let (sds, node, buckets) = (sds_alloc(member_len), node_alloc(), bucket_bytes(total));
    let estimate = sds as f64 + node + 24.0 + buckets;
    let shorter = estimate - (sds - sds_alloc(12)) as f64;
    format!(
        "redis_bytes_per_queued {per:.1} B at {total} queued misses 120 B. Past 128 entries the \
         queue is a {encoding} (skiplist + dict) and each shopper costs: its {member_len}-char \
         member as an sds string, {} B with header and NUL, allocated in the {sds} B class; a \
         skiplist node, {node:.1} B on average; a dict entry, 24 B; {buckets:.1} B of dict \
         buckets: {estimate:.1} B estimated (MEMORY USAGE counts a dict entry as 24 B; jemalloc \
         gives it 32, which used_memory shows). The member is the lever: 72 bits as 12 \
         base64url characters would sit in the {} B class, {shorter:.1} B per shopper",
        member_len + 4,
        sds_alloc(12)
    )
}

/// jemalloc's class for an sds string of `len` (sdshdr8: 3 header bytes + len + NUL).
fn sds_alloc(len: usize) -> usize {
    jemalloc_class(len + 4)
}

/// Bytes per skiplist node on average: 24 + 16 per level, P(levels = k) = (3/4)(1/4)^(k-1).
fn node_alloc() -> f64 {
    (1..=8)
        .map(|k| 0.75 * 0.25f64.powi(k - 1) * jemalloc_class(24 + 16 * k as usize) as f64)
        .sum()
}

fn jemalloc_class(n: usize) -> usize {
    if n <= 8 {
        8
    } else {
        n.div_ceil(16) * 16
    }
}

/// 8-byte buckets, a power of two at least the entry count, spread over the entries.
fn bucket_bytes(total: usize) -> f64 {
    (total.next_power_of_two() * 8) as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_matches_what_redis_reported_at_a_million() {
        // Measured on Redis 7.0.15: 133,732,112 B for the queue of 1,000,000 32-char members.
        let e = sds_alloc(32) as f64 + node_alloc() + 24.0 + bucket_bytes(1_000_000);
        assert!((e - 133.7).abs() < 0.5, "{e}");
        // 28 characters and the NUL and header fill the 32-byte class exactly; 29 spill.
        assert_eq!(sds_alloc(28), 32);
        assert_eq!(sds_alloc(29), 48);
    }
}
