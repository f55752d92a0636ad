//! One shopper's live stream: `state` first, then `progress`, `admitted` (to this shopper
//! only), `sold_out`, `restocked`, `opened`, `closed`. Heartbeat comments every 15 s also reap
//! dead connections (a closed client is only noticed on write).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix_web::Responder;
use actix_web_lab::sse::{self, Sse};
use bytestring::ByteString;
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::time::{Interval, MissedTickBehavior};

use crate::domain::SaleId;
use crate::error::AppError;
use crate::events::{Frame, Progress, Registration, SaleEvent};
use crate::metrics::METRICS;
use crate::queue;
use crate::state::AppState;

pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Progress is re-sent at least this often even when nothing changed.
const REFRESH: Duration = Duration::from_secs(2);

struct Live {
    state: Arc<AppState>,
    sale: String,
    qid: String,
    progress: watch::Receiver<Frame>,
    events: broadcast::Receiver<SaleEvent>,
    registration: Registration,
    shutdown: watch::Receiver<bool>,
    refresh: Interval,
    next_id: u64,
    queued: VecDeque<sse::Event>,
    _open: OpenStream,
}

/// Counts open streams for /metrics.
struct OpenStream;

impl OpenStream {
    fn new() -> Self {
        METRICS.sse_streams.add(1);
        Self
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        METRICS.sse_streams.add(-1);
    }
}

#[derive(Serialize)]
struct AdmittedData {
    ticket: String,
    ticket_expires_at: i64,
}

#[derive(Serialize)]
struct SaleEventData {
    remaining: i64,
}

impl Live {
    fn event(&mut self, name: &'static str, data: &impl Serialize) -> sse::Event {
        let json = serde_json::to_string(data).expect("event data serializes");
        self.frame(name, json.into())
    }

    fn frame(&mut self, name: &'static str, json: ByteString) -> sse::Event {
        self.next_id = self.next_id.wrapping_add(1);
        sse::Data::new(json)
            .event(name)
            .id(self.next_id.to_string())
            .into()
    }

    fn progress_event(&mut self) -> sse::Event {
        let json = self.progress.borrow_and_update().json.clone();
        self.refresh.reset();
        self.frame("progress", json)
    }

    /// The next event to send, or None when the stream should end.
    async fn next(&mut self) -> Option<sse::Event> {
        if let Some(e) = self.queued.pop_front() {
            return Some(e);
        }
        if *self.shutdown.borrow() {
            return None;
        }
        tokio::select! {
            biased;
            _ = self.shutdown.changed() => None,
            Some(a) = self.registration.admissions.recv() => {
                let ticket = self.state.keys.ticket(&self.sale, &self.qid, a.expires_at_ms);
                Some(self.event("admitted", &AdmittedData { ticket, ticket_expires_at: a.expires_at_ms }))
            }
            r = self.events.recv() => match r {
                Ok(e) => {
                    let remaining = self.progress.borrow().remaining;
                    Some(self.event(e.name(), &SaleEventData { remaining }))
                }
                // Missed some: the latest progress carries the current open/sold-out state.
                Err(broadcast::error::RecvError::Lagged(_)) => Some(self.progress_event()),
                Err(broadcast::error::RecvError::Closed) => None,
            },
            r = self.progress.changed() => match r {
                Ok(()) => Some(self.progress_event()),
                Err(_) => None,
            },
            _ = self.refresh.tick() => Some(self.progress_event()),
        }
    }
}

/// Opens the stream after checking the queue token; an invalid token gets a JSON error, not
/// a stream. `last_event_id` (a reconnect) continues the id sequence with a fresh `state`.
pub async fn open(
    state: Arc<AppState>,
    sale: SaleId,
    token: Option<&str>,
    last_event_id: Option<u64>,
) -> Result<impl Responder, AppError> {
    let token = token.ok_or_else(|| {
        AppError::unauthorized(
            "missing_token",
            "pass the queue token as ?token= or the wr_queue cookie",
        )
    })?;
    let claims = state
        .keys
        .verify_queue(token, sale.as_str())
        .map_err(|e| e.into_app_error(false))?;
    // Register before reading the state, so an admission between the two is not missed.
    let registration = state.hub.register(sale.as_str(), &claims.sub);
    let (mut progress, events) = state.hub.subscribe(sale.as_str());
    let view = queue::status(&state, &sale, &claims).await?;
    state.hub.seed(
        sale.as_str(),
        Progress {
            admitted_total: view.admitted_total,
            queue_len: view.queue_len,
            remaining: view.remaining,
            rate_per_sec: view.rate_per_sec,
            open: view.open,
            sold_out: view.remaining <= 0,
        },
    );
    progress.borrow_and_update();
    let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + REFRESH, REFRESH);
    refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut live = Live {
        shutdown: state.shutdown.clone(),
        state,
        sale: sale.to_string(),
        qid: claims.sub,
        progress,
        events,
        registration,
        refresh,
        next_id: last_event_id.unwrap_or(0),
        queued: VecDeque::new(),
        _open: OpenStream::new(),
    };
    let first = live.event("state", &view);
    live.queued.push_back(first);
    tracing::debug!(sale = %sale, qid = %live.qid, "stream opened");
    let stream = futures_util::stream::unfold(live, |mut live| async move {
        live.next().await.map(|e| (e, live))
    });
    Ok(Sse::from_infallible_stream(stream)
        .with_keep_alive(KEEP_ALIVE)
        .with_retry_duration(Duration::from_secs(3))
        .customize()
        .insert_header(("X-Accel-Buffering", "no")))
}
