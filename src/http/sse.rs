//! One shopper's live stream: `state` first, then `progress`, `admitted` (to this shopper
//! only), `sold_out`, `restocked`, `opened`, `closed`, and `state` again when this shopper's
//! order changes (paid, payment failed, hold lapsed, refund due); `progress` only when it changed, so an
//! idle line costs nothing per stream. Heartbeat comments every 15 s also reap
//! dead connections (a closed client is only noticed on write). A stream pushed out by newer
//! ones of the same queue id (`Hub::register`) ends with `replaced` and a long `retry:`, so
//! the tab it served does not come straight back to push out another.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{CacheControl, CacheDirective, ContentEncoding};
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use actix_web_lab::sse::{self, Sse};
use bytestring::ByteString;
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tracing::Instrument;

use crate::core::client::ClientKey;
use crate::core::domain::{QueueId, SaleId, VariantId, VariantsLeft};
use crate::flows::door::streams::ClientSlot;
use crate::flows::queue;
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::infra::events::{Frame, Notice, Progress, Registration, SaleEvent};
use crate::infra::metrics::METRICS;
use crate::infra::telemetry::EVENTS_ROUTE;

pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a replaced stream's browser waits before trying again.
const REPLACED_RETRY: &[u8] = b"retry: 30000\n\n";

struct Live {
    state: Arc<AppState>,
    sale: SaleId,
    qid: QueueId,
    /// The session the token is bound to: tickets sent on this stream carry it too.
    sid: Option<String>,
    /// The place's score (the token's `t`), to re-read the standing on their order's news.
    joined_us: i64,
    progress: watch::Receiver<Frame>,
    events: broadcast::Receiver<SaleEvent>,
    registration: Registration,
    shutdown: watch::Receiver<bool>,
    next_id: u64,
    queued: VecDeque<sse::Event>,
    /// Set when a newer stream of this shopper pushed this one out.
    replaced: Arc<AtomicBool>,
    _open: OpenStream,
    _slot: ClientSlot,
}

/// 429 `too_many_streams`: the client's open streams on this instance are at the limit. The
/// page falls back to polling `/status`, which its read budget pays for.
fn too_many_streams() -> AppError {
    AppError {
        retry_after: Some(30),
        ..AppError::new(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            "too many open event streams from your network; close some tabs or retry later",
        )
    }
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
struct SaleEventData<'a> {
    remaining: i64,
    held: i64,
    /// The variant a `variant_sold_out` is about, and what is left of each.
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a VariantId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variants_left: Option<VariantsLeft>,
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
        self.frame("progress", json)
    }

    /// The shopper's order changed: where they stand now, as `state`. If Redis cannot say,
    /// the latest progress instead (the page's next status read catches up).
    async fn order_news(&mut self) -> sse::Event {
        let (sale, qid, sid) = (&self.sale, &self.qid, self.sid.as_deref());
        match queue::status_of(&self.state, sale, qid, self.joined_us, sid).await {
            Ok(view) => self.event("state", &view),
            Err(e) => {
                tracing::debug!(sale = %self.sale, error = %e, "order news not read");
                self.progress_event()
            }
        }
    }

    /// The next event to send, or None when the stream should end.
    async fn next(&mut self) -> Option<sse::Event> {
        if let Some(e) = self.queued.pop_front() {
            return Some(e);
        }
        if *self.shutdown.borrow() || self.replaced.load(Ordering::Relaxed) {
            return None;
        }
        tokio::select! {
            biased;
            _ = self.shutdown.changed() => None,
            n = self.registration.notices.recv() => match n {
                Some(Notice::Admitted(a)) => {
                    let sid = self.sid.as_deref();
                    let ticket = self.state.keys.ticket(&self.sale, &self.qid, sid, a.expires_at_ms);
                    Some(self.event("admitted", &AdmittedData { ticket, ticket_expires_at: a.expires_at_ms }))
                }
                Some(Notice::Order) => Some(self.order_news().await),
                // The hub dropped us for a newer stream of the same shopper.
                None => {
                    self.replaced.store(true, Ordering::Relaxed);
                    Some(self.event("replaced", &serde_json::json!({})))
                }
            },
            r = self.events.recv() => match r {
                Ok(e) => {
                    let (remaining, held, variants_left) = {
                        let p = self.progress.borrow();
                        (p.remaining, p.held, p.variants_left.clone())
                    };
                    let variant = e.variant();
                    let data = SaleEventData { remaining, held, variant, variants_left };
                    Some(self.event(e.name(), &data))
                }
                // Missed some: the latest progress carries the current open/sold-out state.
                Err(broadcast::error::RecvError::Lagged(_)) => Some(self.progress_event()),
                Err(broadcast::error::RecvError::Closed) => None,
            },
            r = self.progress.changed() => match r {
                Ok(()) => Some(self.progress_event()),
                Err(_) => None,
            },
        }
    }
}

/// Opens the stream after checking the queue token; an invalid token gets a JSON error, not
/// a stream. `last_event_id` (a reconnect) continues the id sequence with a fresh `state`.
/// The opening runs in its own span; the stream itself, which lives for hours, in none.
pub async fn open(
    state: Arc<AppState>,
    sale: SaleId,
    client: ClientKey,
    token: Option<&str>,
    last_event_id: Option<u64>,
) -> Result<HttpResponse, AppError> {
    let span = tracing::info_span!("HTTP request", http.route = EVENTS_ROUTE, sale = %sale);
    start(state, sale, client, token, last_event_id)
        .instrument(span)
        .await
}

async fn start(
    state: Arc<AppState>,
    sale: SaleId,
    client: ClientKey,
    token: Option<&str>,
    last_event_id: Option<u64>,
) -> Result<HttpResponse, AppError> {
    let token = token.ok_or_else(|| {
        AppError::unauthorized(
            "missing_token",
            "pass the queue token as a bearer token or the wr_queue cookie",
        )
    })?;
    let claims = state
        .keys
        .verify_queue(token, &sale)
        .map_err(|e| e.into_app_error(false))?;
    let slot = state
        .client_streams
        .take(client, state.config.streams.per_client)
        .ok_or_else(too_many_streams)?;
    // Register before reading the state, so an admission between the two is not missed.
    let max = state.config.streams.per_token;
    let registration = state.hub.register(&sale, &claims.sub, max);
    let (mut progress, events) = state.hub.subscribe(&sale);
    let view = queue::status(&state, &sale, &claims).await?;
    state.hub.seed(
        &sale,
        Progress {
            admitted_total: view.admitted_total,
            queue_len: view.queue_len,
            remaining: view.remaining,
            rate_per_sec: view.rate_per_sec,
            open: view.open,
            sold_out: view.remaining <= 0,
            held: view.held,
            variants_left: None,
        },
    );
    progress.borrow_and_update();
    let replaced = Arc::new(AtomicBool::new(false));
    let mut live = Live {
        shutdown: state.shutdown.clone(),
        state,
        sale: sale.clone(),
        qid: claims.sub,
        sid: claims.sid,
        joined_us: claims.t,
        progress,
        events,
        registration,
        next_id: last_event_id.unwrap_or(0),
        queued: VecDeque::new(),
        replaced: replaced.clone(),
        _open: OpenStream::new(),
        _slot: slot,
    };
    let first = live.event("state", &view);
    live.queued.push_back(first);
    // A sale that is over says so again to every stream that opens or reopens later: its
    // `sold_out` went out once, maybe while this browser was away.
    let (over, remaining, held) = {
        let p = live.progress.borrow();
        (p.sold_out_for_good(), p.remaining, p.held)
    };
    if over || (view.remaining <= 0 && view.held <= 0) {
        let data = SaleEventData {
            remaining,
            held,
            variant: None,
            variants_left: None,
        };
        let last = live.event("sold_out", &data);
        live.queued.push_back(last);
    }
    tracing::debug!(qid = %live.qid, "stream opened");
    let stream = futures_util::stream::unfold(live, |mut live| async move {
        live.next().await.map(|e| (e, live))
    });
    let body = Sse::from_infallible_stream(stream)
        .with_keep_alive(KEEP_ALIVE)
        .with_retry_duration(Duration::from_secs(3));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(ContentEncoding::Identity)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .insert_header(("X-Accel-Buffering", "no"))
        .body(Tail {
            body: Box::pin(body),
            replaced,
            done: false,
        }))
}

/// The stream's body, plus a long `retry:` after it when it was replaced (the SSE library
/// only sends `retry:` first).
struct Tail<B> {
    body: Pin<Box<B>>,
    replaced: Arc<AtomicBool>,
    done: bool,
}

impl<B: MessageBody> MessageBody for Tail<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.body.as_mut().poll_next(cx) {
            Poll::Ready(None) => {
                this.done = true;
                let tail = this.replaced.load(Ordering::Relaxed);
                Poll::Ready(tail.then(|| Ok(Bytes::from_static(REPLACED_RETRY))))
            }
            other => other,
        }
    }
}
