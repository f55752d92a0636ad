//! Redis Cluster for the cluster tests: the three-master cluster `scripts/test` starts
//! (`WAITROOM_TEST_CLUSTER_NODES`), a ledger database beside each cluster, and a private
//! cluster a test starts on the spare ports (`WAITROOM_TEST_CLUSTER_SPARE_PORT`) to kill and
//! restart its masters.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::services::{database_url, pg, repo_root};
use crate::wait::{eventually, WAIT};

const RUN_WITH_SCRIPTS_TEST: &str = "run the suite with ./scripts/test, which starts a \
    three-master Redis Cluster and exports it (CI always does)";

/// The cluster `scripts/test` runs, if this process was told of it.
pub fn cluster_nodes() -> Option<Vec<String>> {
    let v = std::env::var("WAITROOM_TEST_CLUSTER_NODES").ok()?;
    let nodes: Vec<String> = v.split(',').map(|n| n.trim().to_string()).collect();
    nodes.iter().all(|n| !n.is_empty()).then_some(nodes)
}

/// The cluster's nodes; a cluster test without them fails rather than passing silently.
pub fn require_cluster_nodes() -> Vec<String> {
    cluster_nodes().unwrap_or_else(|| {
        panic!("WAITROOM_TEST_CLUSTER_NODES is not set: {RUN_WITH_SCRIPTS_TEST}")
    })
}

/// The suite's database URL with `suffix` added to the database name, created if missing.
/// Apps on different Redis must not share a ledger: each instance's rebuilder restores into
/// its own Redis every ledger sale that Redis lacks, so it would copy the other's sales.
pub async fn own_database(suffix: &str) -> String {
    let url = format!("{}{suffix}", database_url().trim_end_matches('/'));
    let name = url.rsplit('/').next().unwrap().to_string();
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "database name {name}"
    );
    let pool = pg().await;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&pool)
            .await
            .unwrap();
    if !exists {
        // Two tests may race to create it: the loser's error is fine, the database is there.
        // The name is checked above: lower-case letters, digits and '_' only.
        let create = sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""));
        let _ = sqlx::query(create).execute(&pool).await;
    }
    url
}

/// Three masters of a cluster this test owns: started here, each a child process, killed on
/// drop. Data (AOF with `appendfsync always`, so a kill loses nothing, and nodes.conf) lives
/// under .data/cluster-own/<port>.
pub struct OwnCluster {
    pub ports: [u16; 3],
    nodes: [Option<Child>; 3],
}

fn node_dir(port: u16) -> PathBuf {
    repo_root().join(format!(".data/cluster-own/{port}"))
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

fn start_node(port: u16) -> Child {
    let dir = node_dir(port);
    std::fs::create_dir_all(&dir).unwrap();
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--dir")
        .arg(&dir)
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .args(["--cluster-node-timeout", "5000"])
        .args(["--cluster-require-full-coverage", "no"])
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server starts")
}

impl OwnCluster {
    /// A fresh cluster on the spare ports, healthy when this returns.
    pub async fn start() -> Self {
        let first: u16 = std::env::var("WAITROOM_TEST_CLUSTER_SPARE_PORT")
            .unwrap_or_else(|_| {
                panic!("WAITROOM_TEST_CLUSTER_SPARE_PORT is not set: {RUN_WITH_SCRIPTS_TEST}")
            })
            .parse()
            .expect("WAITROOM_TEST_CLUSTER_SPARE_PORT is a port");
        let ports = [first, first + 1, first + 2];
        for p in ports {
            // A node an earlier, killed run left behind on our own port.
            redis_cli(p, &["shutdown", "nosave"]);
            let _ = std::fs::remove_dir_all(node_dir(p));
        }
        let nodes = ports.map(|p| Some(start_node(p)));
        let cluster = Self { ports, nodes };
        for p in ports {
            cluster.wait(p, |c| c.ping(p)).await;
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = tokio::task::spawn_blocking(move || {
            Command::new("redis-cli")
                .args(["--cluster", "create"])
                .args(&addrs)
                .args(["--cluster-replicas", "0", "--cluster-yes"])
                .stdout(Stdio::null())
                .status()
        })
        .await
        .unwrap()
        .expect("redis-cli --cluster create runs");
        assert!(created.success(), "redis-cli --cluster create failed");
        for p in ports {
            cluster.wait(p, |c| c.healthy(p)).await;
        }
        cluster
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    fn ping(&self, port: u16) -> bool {
        redis_cli(port, &["ping"]).trim() == "PONG"
    }

    /// The node sees the cluster whole: state ok and all three masters known.
    fn healthy(&self, port: u16) -> bool {
        let info = redis_cli(port, &["cluster", "info"]);
        info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:3")
    }

    async fn wait(&self, port: u16, ready: impl Fn(&Self) -> bool) {
        eventually(WAIT, || async { ready(self).then_some(()) })
            .await
            .unwrap_or_else(|| panic!("cluster node {port} not ready within {WAIT:?}"));
    }

    /// The port of the master that holds `key` (the others answer MOVED).
    pub fn owner_of(&self, key: &str) -> u16 {
        *self
            .ports
            .iter()
            .find(|&&p| !redis_cli(p, &["exists", key]).contains("MOVED"))
            .expect("some master holds the key")
    }

    /// Kills a master with SIGKILL and starts it again on the same port and data; returns
    /// once the cluster is whole again.
    pub async fn kill_and_restart(&mut self, port: u16) {
        let i = self.ports.iter().position(|&p| p == port).unwrap();
        if let Some(mut child) = self.nodes[i].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        self.nodes[i] = Some(start_node(port));
        for p in self.ports {
            self.wait(p, |c| c.healthy(p)).await;
        }
    }

    /// Scripts in the node's cache (`INFO memory`, `number_of_cached_scripts`).
    pub fn cached_scripts(&self, port: u16) -> i64 {
        redis_cli(port, &["info", "memory"])
            .lines()
            .find_map(|l| l.strip_prefix("number_of_cached_scripts:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("number_of_cached_scripts in INFO memory")
    }

    pub fn flush_scripts(&self) {
        for p in self.ports {
            assert_eq!(redis_cli(p, &["script", "flush"]).trim(), "OK");
        }
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for p in self.ports {
            let _ = std::fs::remove_dir_all(node_dir(p));
        }
    }
}
