//! The release binary as a real process, for tests that kill instances for real: its own
//! port, its output in a file under target/, SIGKILL on demand and when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::*;

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
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("procs");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port nothing listens on now: the kernel picks it, the process binds it right after.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

pub struct AppProcess {
    pub name: String,
    pub port: u16,
    pub addr: String,
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
        let port = free_port();
        let log = proc_dir().join(format!("{}.log", unique(name)));
        let out = std::fs::File::create(&log).unwrap();
        let key = KEY_FILE.to_str().unwrap().to_string();
        let bind = format!("127.0.0.1:{port}");
        let defaults = [
            ("WAITROOM_BIND", bind.as_str()),
            ("WAITROOM_REDIS_URL", &redis_url()),
            ("WAITROOM_DATABASE_URL", &database_url()),
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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_waitroom"));
        cmd.arg("serve")
            .envs(defaults)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = cmd.spawn().expect("the waitroom binary starts");
        Self {
            name: name.to_string(),
            port,
            addr: format!("http://127.0.0.1:{port}"),
            log,
            child,
        }
    }

    /// Waits until `/readyz` answers 200; fails at once, with the log, if the process exited.
    pub async fn ready(&mut self) {
        let client = reqwest::Client::new();
        let url = self.url("/readyz");
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ok = client
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if ok.is_ok_and(|r| r.status() == 200) {
                return;
            }
            let exited = self.child.try_wait().unwrap().is_some();
            assert!(
                !exited && tokio::time::Instant::now() < deadline,
                "{} not ready ({}): {}",
                self.name,
                if exited { "exited" } else { "timed out" },
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }

    /// kill -9: no shutdown hook runs, open connections are reset by the kernel.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.child.wait().expect("the killed process is reaped");
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
