//! nginx as a child process, run from `deploy/nginx.conf` byte for byte: the test writes only
//! the two host files the config includes (`waitroom.d/upstream.conf`, `listen.conf`), as
//! docker-compose ships its own. Everything lives under `.data/nginx/<run>/`; nginx is stopped
//! on Drop. The binary: `WAITROOM_NGINX` (which scripts/test sets), else PATH, else /usr/sbin.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use crate::api::unique;
use crate::services::repo_root;
use crate::wait::WAIT;

const CONF: &str = include_str!("../../deploy/nginx.conf");

pub struct Nginx {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

fn binary() -> PathBuf {
    let from_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nginx")).collect())
        .unwrap_or_default();
    std::env::var_os("WAITROOM_NGINX")
        .map(PathBuf::from)
        .into_iter()
        .chain(from_path)
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
        .expect("no nginx: scripts/test installs it (or set WAITROOM_NGINX)")
}

/// The next of the ports from `WAITROOM_NGINX_PORT` on, if set (one per nginx, so tests in
/// parallel do not collide), else a port the OS just had free.
fn port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    if let Ok(p) = std::env::var("WAITROOM_NGINX_PORT") {
        let base: u16 = p.parse().expect("WAITROOM_NGINX_PORT is a port number");
        return base + NEXT.fetch_add(1, Ordering::SeqCst);
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Nginx {
    /// nginx on 127.0.0.1 in front of the instances on these ports, once it proxies. A port
    /// someone took between our choosing and nginx binding it costs one more try.
    pub async fn start(instances: &[u16]) -> Self {
        for _ in 0..3 {
            if let Some(nginx) = Self::try_start(instances, port()).await {
                return nginx;
            }
        }
        panic!("nginx found no free port in 3 tries");
    }

    async fn try_start(instances: &[u16], port: u16) -> Option<Self> {
        let dir = repo_root().join(".data/nginx").join(unique("run"));
        std::fs::create_dir_all(dir.join("waitroom.d")).unwrap();
        std::fs::write(dir.join("nginx.conf"), CONF).unwrap();
        let servers: String = instances
            .iter()
            .map(|p| format!("server 127.0.0.1:{p} max_fails=3 fail_timeout=10s;\n"))
            .collect();
        std::fs::write(dir.join("waitroom.d/upstream.conf"), servers).unwrap();
        let listen = format!("listen 127.0.0.1:{port};\n");
        std::fs::write(dir.join("waitroom.d/listen.conf"), listen).unwrap();

        // As root, nginx's workers would run as nobody, who may not reach a checkout under
        // /root: they run as us instead (the directive is only honoured for root).
        let root = std::fs::metadata(&dir).unwrap().uid() == 0;
        let globals = if root {
            "daemon off; user root;"
        } else {
            "daemon off;"
        };
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let child = Command::new(binary())
            .arg("-p")
            .arg(format!("{}/", dir.display()))
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-e", "stderr", "-g", globals])
            .stdin(Stdio::null())
            .stdout(log("access.log"))
            .stderr(log("error.log"))
            .spawn()
            .expect("nginx starts");
        let mut nginx = Self { child, dir, port };
        nginx.wait_until_proxying().await.then_some(nginx)
    }

    /// False if nginx exited because its port was taken; panics on any other failure.
    async fn wait_until_proxying(&mut self) -> bool {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let errors = self.errors();
                if errors.contains("Address already in use") {
                    return false;
                }
                panic!("nginx exited ({status}):\n{errors}");
            }
            let res = client.get(self.url("/healthz")).send().await;
            if res.is_ok_and(|r| r.status() == 200) {
                return true;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nginx did not proxy /healthz within {WAIT:?}:\n{}",
                self.errors()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// The access log so far, one request a line (`log_format waitroom`).
    pub fn access_log(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        text.lines().map(str::to_string).collect()
    }
}

impl Drop for Nginx {
    /// TERM, not KILL: the master then stops its workers, which would otherwise outlive it
    /// holding the port.
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Kept after a failure, for its logs.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
