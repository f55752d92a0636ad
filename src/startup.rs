//! Building and running one app instance: pools, background loops, the HTTP server. Tests
//! start the real thing through here on port 0.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::sync::watch;
use tracing_actix_web::TracingLogger;

use crate::core::config::Config;
use crate::flows::door::limits::Limiters;
use crate::flows::{recovery, Deps};
use crate::http::state::AppState;
use crate::http::{error, routes};
use crate::infra::ledger::{Ledger, Webhooks};
use crate::infra::outbound::Sender;
use crate::infra::store::{Store, Target};
use crate::infra::tokens::{self, Keys};
use crate::infra::{metrics, telemetry};
use crate::tasks;

pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
}

/// Stops an instance: streams end first, then the server drains.
#[derive(Clone)]
pub struct AppHandle {
    server: actix_web::dev::ServerHandle,
    shutdown: watch::Sender<bool>,
}

impl AppHandle {
    pub async fn stop(&self) {
        let _ = self.shutdown.send(true);
        self.server.stop(true).await;
    }
}

fn signing_keys(config: &Config) -> anyhow::Result<Keys> {
    if config.tokens.signing_keys_pem.is_empty() {
        tracing::warn!(
            "WAITROOM_SIGNING_KEYS is not set: using a throwaway development key. Tokens will not \
             survive a restart and other instances cannot verify them. Run `waitroom keygen`."
        );
        return Ok(Keys::from_pems(
            &[tokens::generate_pem().into()],
            &config.tokens.issuer,
        )?);
    }
    Keys::from_pems(&config.tokens.signing_keys_pem, &config.tokens.issuer)
        .context("WAITROOM_SIGNING_KEYS")
}

/// Retries a start-up step while a dependency comes up (compose starts everything at once).
async fn wait_for<F, Fut, T, E>(what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "waiting for {what}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => anyhow::bail!("{what}: {e}"),
        }
    }
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        metrics::install();
        let keys = signing_keys(&config)?;
        let target = Target::of(&config);
        let store = wait_for("redis", || Store::open(&target, config.redis.connections)).await?;
        let ledger = Ledger::connect_lazy(
            config.postgres.url.expose_secret(),
            config.postgres.pool_size,
        )
        .context("WAITROOM_DATABASE_URL")?;
        let webhooks = Webhooks::connect_lazy(
            config.postgres.url.expose_secret(),
            config.webhooks.pool_size,
        )
        .context("WAITROOM_DATABASE_URL")?;
        let outbound = Sender::new(config.webhooks.timeout, config.webhooks.allow_private)
            .context("the webhooks' TLS configuration")?;
        wait_for("postgres migrations", || ledger.migrate()).await?;
        wait_for("redis scripts", || store.ready()).await?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let deps = Arc::new(Deps::new(config, store, ledger, webhooks, keys));
        let shared = tasks::Shared {
            limits: Arc::new(Limiters::new(&deps.config.door.limits)),
            health: Default::default(),
            console: Default::default(),
            outbound,
        };
        // Ready from the first request on if the stores are; the checker keeps it current.
        shared.health.check(&deps.store, &deps.ledger).await;
        if let Err(e) = recovery::detect_lost_sales(&deps).await {
            tracing::warn!(error = %e, "could not check sales against redis at start");
        }
        let state = Arc::new(AppState {
            flows: deps.clone(),
            limits: shared.limits.clone(),
            health: shared.health.clone(),
            console: shared.console.clone(),
            client_streams: Default::default(),
            shutdown: shutdown_rx.clone(),
        });

        let listener = TcpListener::bind(state.config.http.bind).context("WAITROOM_BIND")?;
        let port = listener.local_addr()?.port();
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(error::json_config())
                .app_data(web::PayloadConfig::new(16 * 1024))
                .app_data(error::path_config())
                .app_data(error::query_config())
                .wrap(error::json_method_errors())
                .wrap(TracingLogger::<telemetry::RequestSpan>::new())
                .configure(routes::configure)
        })
        .workers(state.config.http.workers)
        // Each SSE stream holds a connection: the default 25k per worker is raised on
        // purpose (also raise `ulimit -n`; see the README).
        .max_connections(state.config.http.max_connections_per_worker)
        .backlog(8192)
        .disable_signals()
        .shutdown_timeout(5)
        .listen(listener)?
        .run();

        tasks::spawn_all(&deps, &shared, &shutdown_rx);
        Ok(Self {
            port,
            server,
            state,
            shutdown,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    pub fn handle(&self) -> AppHandle {
        AppHandle {
            server: self.server.handle(),
            shutdown: self.shutdown.clone(),
        }
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
