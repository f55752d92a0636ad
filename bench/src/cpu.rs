//! Server CPU per request: a process's utime + stime from /proc/<pid>/stat, read when the
//! measured window opens and when it closes. CPU time does not depend on how busy the box is
//! the way throughput does, so it is the steadier figure on a shared machine.

use std::time::Instant;

use anyhow::{Context, Result};
use tokio::task::JoinHandle;

/// Clock ticks (user + system, all threads) a process has used so far.
pub fn ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name, in parentheses, may hold spaces: count fields after its end.
    let rest = stat.rsplit_once(')').context("odd /proc/<pid>/stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line (utime, stime) are 12 and 13 after the name.
    let field =
        |i: usize| -> Result<u64> { Ok(f.get(i).context("short /proc/<pid>/stat")?.parse()?) };
    Ok(field(11)? + field(12)?)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64
}

/// CPU time (user + system, all threads) a process has used, in seconds.
pub fn cpu_secs(pid: u32) -> Result<f64> {
    Ok(ticks(pid)? as f64 / ticks_per_sec())
}

/// Reads `pid`'s CPU at `from` and at `end`: the seconds it used in between, or None when the
/// process could not be read (gone, or no pid to watch).
pub fn window(pid: Option<u32>, from: Instant, end: Instant) -> JoinHandle<Option<f64>> {
    tokio::spawn(async move {
        let pid = pid?;
        tokio::time::sleep_until(from.into()).await;
        let a = ticks(pid).ok()?;
        tokio::time::sleep_until(end.into()).await;
        let b = ticks(pid).ok()?;
        Some(b.saturating_sub(a) as f64 / ticks_per_sec())
    })
}

/// The share of one core (%) `pid` uses over `d` with no load from us: background work (a
/// ticker, reconciling other sales in the same Redis) that every per-request figure includes.
pub async fn idle_pct(pid: u32, d: std::time::Duration) -> Option<f64> {
    let a = ticks(pid).ok()?;
    tokio::time::sleep(d).await;
    let b = ticks(pid).ok()?;
    Some(b.saturating_sub(a) as f64 / ticks_per_sec() / d.as_secs_f64() * 100.0)
}

/// Microseconds of CPU per answered request; None without a reading or answers.
pub fn us_per_request(cpu_secs: Option<f64>, answered: u64) -> Option<f64> {
    cpu_secs
        .filter(|_| answered > 0)
        .map(|s| s * 1e6 / answered as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_a_cpu_reading() {
        // Burn a little CPU so the reading cannot stay at zero forever.
        let pid = std::process::id();
        let a = ticks(pid).unwrap();
        let mut x = 0u64;
        while ticks(pid).unwrap() == a {
            for i in 0..100_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
        }
        std::hint::black_box(x);
        assert!(cpu_secs(pid).unwrap() > 0.0);
        assert_eq!(us_per_request(Some(0.5), 0), None);
        assert_eq!(us_per_request(Some(0.5), 1_000), Some(500.0));
    }
}
