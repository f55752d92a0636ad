//! The release binary as a real process, for tests that kill instances for real and for the
//! bench: its own port, its output in a file, SIGKILL on demand, when dropped, and when the
//! process that started it dies.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use crate::api::{unique, ADMIN_TOKEN, PAYMENT_SECRET};
use crate::app::KEY_PEM;
use crate::client::{Conn, Req};
use crate::services::{database_url, redis_url, target_dir, target_tmp};
use crate::wait::WAIT;

/// The binary-wide signing key as a file, for `WAITROOM_SIGNING_KEYS`: processes and in-test
/// apps verify each other's tokens.
static KEY_FILE: LazyLock<PathBuf> = LazyLock::new(|| {
    use std::os::unix::fs::OpenOptionsExt;
    let path = proc_dir().join(format!("signing-key-{}.pem", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, KEY_PEM.as_bytes()).unwrap();
    path
});

/// target/tmp/procs: where processes' logs (and the key) go, kept after the test for reading.
fn proc_dir() -> PathBuf {
    let dir = target_tmp().join("procs");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The server binary cargo built beside this test binary (`<target>/<profile>/waitroom`),
/// or `WAITROOM_BIN`.
pub fn waitroom_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WAITROOM_BIN") {
        return bin.into();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe.parent().and_then(Path::parent);
    let bin = profile.unwrap_or(&target_dir()).join("waitroom");
    assert!(bin.is_file(), "{} is not built", bin.display());
    bin
}

/// A port nothing listens on now: the kernel picks it, the process binds it right after.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub struct AppProcess {
    pub name: String,
    pub port: u16,
    pub addr: SocketAddr,
    /// stdout and stderr of the process.
    pub log: PathBuf,
    child: Child,
}

impl AppProcess {
    /// Starts `waitroom serve` on the suite's Redis and Postgres with the test settings of
    /// `test_config` (signing key, admin token, fast ticks, no rate limits); `env` adds or
    /// overrides variables. Returns once `/readyz` answers 200.
    pub async fn start(name: &str, env: &[(&str, &str)]) -> Self {
        let mut p = Self::spawn(name, env);
        p.ready().await;
        p
    }

    /// Starts the process without waiting for it (see `ready`).
    pub fn spawn(name: &str, env: &[(&str, &str)]) -> Self {
        let log = proc_dir().join(format!("{}.log", unique(name)));
        let key = KEY_FILE.to_str().unwrap().to_string();
        let (redis, database) = (redis_url(), database_url());
        let defaults = [
            ("WAITROOM_REDIS_URL", redis.as_str()),
            ("WAITROOM_DATABASE_URL", &database),
            ("WAITROOM_ADMIN_TOKEN", ADMIN_TOKEN),
            ("WAITROOM_PAYMENT_SECRET", PAYMENT_SECRET),
            ("WAITROOM_SIGNING_KEYS", &key),
            ("WAITROOM_TICK_MS", "50"),
            ("WAITROOM_SWEEP_MS", "200"),
            ("WAITROOM_WORKERS", "2"),
            ("WAITROOM_PG_POOL", "8"),
            ("WAITROOM_IP_RATE_PER_SEC", "0"),
            ("WAITROOM_IP_READ_RATE_PER_SEC", "0"),
            ("RUST_LOG", "info,sqlx=warn"),
            ("NO_COLOR", "1"),
        ];
        let env: Vec<_> = defaults.into_iter().chain(env.iter().copied()).collect();
        Self::launch(&waitroom_bin(), name, log, &env).expect("the waitroom binary starts")
    }

    /// Starts `bin serve` on a free port with exactly `env` (later pairs win), its output to
    /// `log`. The child is SIGKILLed if this process dies without cleaning up (a panic that
    /// aborts, a SIGKILL), so it never outlives us holding ports and sockets.
    pub fn launch(
        bin: &Path,
        name: &str,
        log: PathBuf,
        env: &[(&str, &str)],
    ) -> std::io::Result<Self> {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let out = std::fs::File::create(&log)?;
        let mut cmd = Command::new(bin);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .arg("serve")
            .env("WAITROOM_BIND", addr.to_string())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(Self {
            name: name.to_string(),
            port,
            addr,
            log,
            child,
        })
    }

    /// Waits until `/readyz` answers 200; fails at once, with the log, if the process exited.
    pub async fn ready(&mut self) {
        if let Err(e) = self.wait_ready(WAIT).await {
            panic!("{e}: {}", self.log_tail());
        }
    }

    /// Waits until `/readyz` says Redis and Postgres answer; an error if the process exits
    /// first or `timeout` passes.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut conn = Conn::new(self.addr);
        let readyz = Req::get("/readyz");
        loop {
            let ask = tokio::time::timeout(Duration::from_secs(2), conn.send(&readyz)).await;
            if matches!(ask, Ok(Ok(r)) if r.status == 200) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("{} exited ({status}) before ready", self.name));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{} not ready within {timeout:?}", self.name));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident set size from /proc/<pid>/status (VmRSS), in MiB.
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        use anyhow::Context;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("no VmRSS in /proc/<pid>/status")?;
        Ok(kib / 1024.0)
    }

    /// kill -9: no shutdown hook runs, open connections are reset by the kernel.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("the killed process is reaped");
    }

    /// SIGKILL, if it still runs: for when every check has been made and a graceful drain
    /// would only slow the run down.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The last lines of the process's output, for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        format!("(log {}):\n{tail}", self.log.display())
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
