//! The server under test: `target/release/waitroom` started as a child process, one per
//! instance, all sharing one signing key so any instance verifies another's tokens.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::{Conn, Req};
/// Where the instances' CPU figures come from (sse.rs reads its workers' with it too).
pub use crate::cpu::cpu_secs;

pub const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";
const PAYMENT_SECRET: &str = "bench-payment-secret";

/// What every instance is started with.
pub struct Env {
    pub bin: PathBuf,
    pub key: PathBuf,
    pub log_dir: PathBuf,
    pub redis_url: String,
    pub database_url: String,
}

impl Env {
    /// Writes a fresh signing key with `waitroom keygen` (the key file must not exist yet).
    pub fn prepare(
        bin: PathBuf,
        work_dir: &Path,
        redis_url: String,
        database_url: String,
    ) -> Result<Self> {
        if !bin.exists() {
            bail!(
                "{} not found: build it with cargo build --release -p waitroom",
                bin.display()
            );
        }
        std::fs::create_dir_all(work_dir)?;
        let key = work_dir.join(format!("signing-{}.pem", std::process::id()));
        let _ = std::fs::remove_file(&key);
        let out = Command::new(&bin)
            .args(["keygen", "--out"])
            .arg(&key)
            .output()
            .context("run waitroom keygen")?;
        if !out.status.success() {
            bail!(
                "waitroom keygen failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Self {
            bin,
            key,
            log_dir: work_dir.to_path_buf(),
            redis_url,
            database_url,
        })
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.key);
    }
}

pub struct Instance {
    pub addr: SocketAddr,
    child: Child,
}

/// A port nobody listens on right now (the tiny race until the child binds is acceptable).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Instance {
    /// Starts one instance and waits until `/readyz` says Redis and Postgres answer.
    pub async fn start(env: &Env, name: &str) -> Result<Self> {
        Self::start_with(env, name, &[]).await
    }

    /// `start` with some environment variables set otherwise (they win over the defaults).
    pub async fn start_with(env: &Env, name: &str, vars: &[(&str, &str)]) -> Result<Self> {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()?).into();
        let log_path = env.log_dir.join(format!("server-{name}.log"));
        let log = File::create(&log_path)?;
        let mut cmd = Command::new(&env.bin);
        // If the bench dies without cleaning up (SIGKILL, a panic that aborts), its servers go
        // with it instead of holding ports and sockets.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .env("WAITROOM_BIND", addr.to_string())
            .env("WAITROOM_ADMIN_TOKEN", ADMIN_TOKEN)
            // The bench's clients keep no cookies, as an API client.
            .env("WAITROOM_BIND_TOKENS", "false")
            .env("WAITROOM_PAYMENT_SECRET", PAYMENT_SECRET)
            .env("WAITROOM_SIGNING_KEYS", &env.key)
            .env("WAITROOM_REDIS_URL", &env.redis_url)
            .env("WAITROOM_DATABASE_URL", &env.database_url)
            // All load comes from 127.0.0.1: limits on (their cost is in every figure) but
            // too high to refuse anything.
            .env("WAITROOM_IP_RATE_PER_SEC", "1000000")
            .env("WAITROOM_IP_BURST", "1000000")
            .env("WAITROOM_IP_READ_RATE_PER_SEC", "1000000")
            .env("RUST_LOG", "warn")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", env.bin.display()))?;
        let mut inst = Self { addr, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut conn = Conn::new(addr);
        loop {
            if let Some(status) = inst.child.try_wait()? {
                bail!(
                    "instance {name} exited ({status}) before ready; see {}",
                    log_path.display()
                );
            }
            if let Ok(r) = conn.send(&Req::get("/readyz")).await {
                if r.status == 200 {
                    return Ok(inst);
                }
            }
            if Instant::now() > deadline {
                inst.stop();
                bail!(
                    "instance {name} not ready within 60 s; see {}",
                    log_path.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size from /proc/<pid>/status (VmRSS), in MiB.
    pub fn rss_mib(&self) -> Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS in /proc/<pid>/status")?;
        Ok(kib / 1024.0)
    }

    /// CPU time (user + system, all threads) used so far, in seconds.
    pub fn cpu_secs(&self) -> Result<f64> {
        cpu_secs(self.pid())
    }

    /// SIGKILL: by the time an instance is stopped every check has been made, and a graceful
    /// drain of thousands of streams would only slow the run down.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop();
    }
}
