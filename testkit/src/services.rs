//! Where the suite's Redis and Postgres are (`scripts/test` exports them), connections to
//! them, and the checkout's own folders.

use std::path::{Path, PathBuf};

use redis::AsyncCommands;

/// The defaults are what `scripts/test` exports: the suite's own Redis DB and database, so the
/// dev data of `scripts/run` (DB 0, database `waitroom`) is never touched.
pub fn redis_url() -> String {
    std::env::var("WAITROOM_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6390/1".into())
}

pub fn database_url() -> String {
    std::env::var("WAITROOM_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://waitroom@127.0.0.1:5442/waitroom_test".into())
}

pub async fn redis() -> redis::aio::MultiplexedConnection {
    redis_at(&redis_url()).await
}

/// A connection to the Redis at `url` (see `redis_url_db`).
pub async fn redis_at(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The Redis URL with another database number: a test whose sales must not be seen by the
/// tickers and sweepers of other apps (other tests, other processes) gives its apps a
/// database of their own. Pub/sub channels are shared across databases.
pub fn redis_url_db(db: u8) -> String {
    let url = redis_url();
    let host_start = url.find("://").map_or(0, |i| i + 3);
    let base = match url[host_start..].find('/') {
        Some(i) => &url[..host_start + i],
        None => url.as_str(),
    };
    format!("{base}/{db}")
}

/// A pool on the test database, for tests that read the ledger's tables themselves.
pub async fn pg() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&database_url())
        .await
        .unwrap()
}

/// Deletes every Redis key of one sale (what a lost Redis looks like to that sale).
pub async fn wipe_sale_keys(sale: &str) {
    let mut r = redis().await;
    let keys: Vec<String> = r.keys(format!("wr:{{{sale}}}:*")).await.unwrap();
    if !keys.is_empty() {
        let _: () = r.del(keys).await.unwrap();
    }
}

/// Redis's clock (`TIME`) in milliseconds: the clock admit.lua runs on, so tests measure
/// against it rather than this machine's.
pub async fn redis_now_ms(r: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(r).await.unwrap();
    secs * 1000 + micros / 1000
}

/// Host:port and DB number of the suite's Redis (the DB is the URL's path, 0 when absent).
fn redis_parts() -> (String, u32) {
    let url = redis_url();
    let rest = url.trim_start_matches("redis://");
    let (hostport, db) = rest.split_once('/').unwrap_or((rest, ""));
    let hostport = hostport.rsplit('@').next().unwrap().to_string();
    (hostport, db.parse().unwrap_or(0))
}

pub fn redis_addr() -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    redis_parts().0.to_socket_addrs().unwrap().next().unwrap()
}

/// The suite's Redis DB (scripts/test gives it its own, away from the dev data).
pub fn redis_db() -> u32 {
    redis_parts().1
}

/// The suite's Redis URL through a proxy listening on `port`: same DB.
pub fn redis_url_via(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/{}", redis_db())
}

/// The suite's Postgres URL through a proxy listening on `port`: same database.
pub fn database_url_via(port: u16) -> String {
    let url = database_url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth_host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let auth = auth_host
        .rsplit_once('@')
        .map_or(String::new(), |(a, _)| format!("{a}@"));
    format!("{scheme}://{auth}127.0.0.1:{port}/{path}")
}

pub fn database_addr() -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let url = database_url();
    let rest = url.split_once("://").unwrap().1;
    let host = rest.split('/').next().unwrap().rsplit('@').next().unwrap();
    host.to_socket_addrs().unwrap().next().unwrap()
}

/// The checkout (the workspace root), for the files the harnesses run from (`deploy/`) and
/// their data (`.data/`).
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The cargo target directory the running test binary was built in (`target/`, or
/// `CARGO_TARGET_DIR`): a test binary lives in `<target>/<profile>/deps/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let deps = exe.parent().expect("the binary's folder");
    deps.parent()
        .and_then(Path::parent)
        .expect("a test binary runs from <target>/<profile>/deps")
        .to_path_buf()
}

/// `target/tmp`, as cargo's `CARGO_TARGET_TMPDIR` for integration tests: kept after a run.
pub fn target_tmp() -> PathBuf {
    let dir = target_dir().join("tmp");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
