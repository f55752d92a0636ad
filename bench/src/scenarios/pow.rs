//! What a proof-of-work costs the server: one `PowKey::verify` of a valid solution, measured
//! in this process (it is the server's own code), beside one SHA-256 of the same
//! `challenge:nonce` text, the least a verify can do. The difference is the MAC, the parsing
//! and the allocations; the Redis `SET NX` that makes a proof single-use is not included.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use waitroom::flows::door::pow::{self, PowKey, Proof};
use waitroom::flows::door::ClientKey;

use super::{now_ms, say};
use crate::report::Report;

/// Sales default to 0 bits (off); 16 bits is a fraction of a second in a browser. The
/// difficulty changes the client's cost only: a verify hashes once whatever it is.
pub const BITS: u32 = 16;
/// Each figure is the best of these rounds, so a round that shared its core with another
/// process does not count.
const ROUNDS: usize = 5;
const ROUND: Duration = Duration::from_millis(400);

/// Microseconds per call of `f`, the fastest of `ROUNDS` rounds of about `ROUND` each.
fn us_per_call(mut f: impl FnMut() -> bool) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let (mut n, start) = (0u64, Instant::now());
        while start.elapsed() < ROUND {
            for _ in 0..256 {
                if !black_box(f()) {
                    bail!("a valid proof was refused");
                }
            }
            n += 256;
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    Ok(best)
}

pub fn run(r: &mut Report) -> Result<()> {
    let key = PowKey::new(b"bench pow key");
    let client = ClientKey::of([203, 0, 113, 7].into());
    let sale = &waitroom::core::domain::SaleId::parse("bench-pow")?;
    let now = now_ms();
    let c = key.issue(sale, &client, BITS, now + 3_600_000);
    let nonce = pow::solve(&c.challenge, BITS);
    let proof = Proof {
        challenge: Some(c.challenge.clone()),
        nonce: Some(nonce.clone()),
    };
    say(format!(
        "pow: verify of a {BITS}-bit solution ({} + {} chars) vs one SHA-256 of it",
        c.challenge.len(),
        nonce.len()
    ));
    let verify = us_per_call(|| key.verify(sale, &client, &proof, now).is_ok())?;
    // `solves` at 0 bits: the hash of the same text and nothing else.
    let sha = us_per_call(|| pow::solves(&c.challenge, &nonce, 0))?;
    say(format!(
        "pow: verify {verify:.2} µs, SHA-256 {sha:.2} µs ({:.1}x); {:.0} verifies/s per core",
        verify / sha,
        1e6 / verify
    ));
    r.set("pow_bits", f64::from(BITS));
    r.set("pow_verify_us", verify);
    r.set("baseline_sha256_us", sha);
    Ok(())
}
