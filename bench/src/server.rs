//! The server under test: `target/release/waitroom` started as a child process (the test
//! kit's `AppProcess`), one per instance, all sharing one signing key so any instance
//! verifies another's tokens.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use waitroom_testkit::api::{ADMIN_TOKEN, PAYMENT_SECRET};
use waitroom_testkit::process::AppProcess;

/// Where the instances' CPU figures come from (sse.rs reads its workers' with it too).
pub use crate::cpu::cpu_secs;

/// One running instance of the server.
pub type Instance = AppProcess;

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

    /// Starts one instance and waits until `/readyz` says Redis and Postgres answer.
    pub async fn start(&self, name: &str) -> Result<Instance> {
        self.start_with(name, &[]).await
    }

    /// `start` with some environment variables set otherwise (they win over the defaults).
    pub async fn start_with(&self, name: &str, vars: &[(&str, &str)]) -> Result<Instance> {
        let log = self.log_dir.join(format!("server-{name}.log"));
        let key = self.key.to_str().context("the key's path is UTF-8")?;
        let defaults = [
            ("WAITROOM_ADMIN_TOKEN", ADMIN_TOKEN),
            // The bench's clients keep no cookies, as an API client.
            ("WAITROOM_BIND_TOKENS", "false"),
            ("WAITROOM_PAYMENT_SECRET", PAYMENT_SECRET),
            ("WAITROOM_SIGNING_KEYS", key),
            ("WAITROOM_REDIS_URL", &self.redis_url),
            ("WAITROOM_DATABASE_URL", &self.database_url),
            // All load comes from 127.0.0.1: limits on (their cost is in every figure) but
            // too high to refuse anything.
            ("WAITROOM_IP_RATE_PER_SEC", "1000000"),
            ("WAITROOM_IP_BURST", "1000000"),
            ("WAITROOM_IP_READ_RATE_PER_SEC", "1000000"),
            ("RUST_LOG", "warn"),
        ];
        let env: Vec<_> = defaults.into_iter().chain(vars.iter().copied()).collect();
        let mut inst = AppProcess::launch(&self.bin, name, log.clone(), &env)
            .with_context(|| format!("start {}", self.bin.display()))?;
        if let Err(e) = inst.wait_ready(Duration::from_secs(60)).await {
            bail!("instance {e}; see {}", log.display());
        }
        Ok(inst)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.key);
    }
}
