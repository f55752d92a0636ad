//! Same-run baselines, so a figure can be read against what this box does at all right now:
//! a bare actix-web route served by the harness itself, and a bare decrement script run
//! straight against Redis.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Result;
use redis::Script;

use crate::client::Req;
use crate::load::{saturate, Latencies, Load, Outcome};
use crate::stores::Stores;

/// Starts the bare route on its own thread (its own actix system, 2 workers like the server
/// on this box). It lives until the process exits.
pub fn start_bare_http() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = || {
                App::new().route(
                    "/",
                    web::post().to(|| async {
                        HttpResponse::Created().json(serde_json::json!({ "status": "ok" }))
                    }),
                )
            };
            match HttpServer::new(app)
                .workers(2)
                .disable_signals()
                .listen(listener)
            {
                Ok(server) => {
                    let _ = server.run().await;
                }
                Err(e) => eprintln!("[bench] bare route failed to start: {e}"),
            }
        })
    });
    Ok(addr)
}

/// The bare route under the same load as the enqueue scenario.
pub async fn http(load: Load) -> Result<Outcome> {
    let addr = start_bare_http()?;
    Ok(saturate(addr, load, Req::post("/"), 201).await)
}

/// What checkout.lua boils down to: decrement stock if positive, one round trip by SHA.
const DECREMENT_IF_POSITIVE: &str = r"
local s = tonumber(redis.call('GET', KEYS[1]) or '0')
if s <= 0 then return -1 end
return redis.call('DECR', KEYS[1])
";

/// EVALSHA of the decrement script with as many connections, each with one call in flight,
/// as the HTTP scenarios use.
pub async fn redis_evalsha(stores: &Stores, load: Load, key: &str) -> Result<Outcome> {
    let mut setup = stores.redis_conn().await?;
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(i64::MAX / 2)
        .query_async(&mut setup)
        .await?;
    let from = Instant::now() + load.warmup;
    let end = from + load.duration;
    let mut workers = Vec::new();
    for _ in 0..load.conns {
        let mut conn = stores.redis_conn().await?;
        let key = key.to_string();
        workers.push(tokio::spawn(async move {
            let script = Script::new(DECREMENT_IF_POSITIVE);
            let (mut ok, mut errors, mut lat) = (0u64, 0u64, Latencies::default());
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let r: redis::RedisResult<i64> = script.key(&key).invoke_async(&mut conn).await;
                let t1 = Instant::now();
                match r {
                    Ok(_) if t0 >= from && t1 <= end => {
                        ok += 1;
                        lat.push(t1 - t0);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (ok, errors, lat)
        }));
    }
    let mut out = Outcome {
        secs: load.duration.as_secs_f64(),
        ..Outcome::default()
    };
    for w in workers {
        let (ok, errors, lat) = w.await?;
        out.ok += ok;
        out.errors += errors;
        out.lat.extend(lat);
    }
    out.lat = out.lat.finish();
    let _: () = redis::cmd("DEL").arg(key).query_async(&mut setup).await?;
    Ok(out)
}
