//! `GET /api/admin/events`: a `history` event (up to fifteen minutes of samples per sale),
//! then a `sample` event each second. Every stream shares the sampler's JSON: no Redis work
//! and no serialisation per dashboard. Heartbeat comments reap dead connections; streams end
//! when the instance stops.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{CacheControl, CacheDirective, ContentEncoding};
use actix_web::HttpResponse;
use actix_web_lab::sse::{self, Sse};
use bytestring::ByteString;
use tokio::sync::watch;

use crate::http::sse::KEEP_ALIVE;
use crate::http::state::AppState;
use crate::infra::telemetry::ADMIN_EVENTS_ROUTE as ROUTE;
use crate::infra::tokens::now_secs;

struct Stream {
    history: Option<ByteString>,
    /// The end of the session that opened the stream.
    until: tokio::time::Instant,
    samples: watch::Receiver<Option<ByteString>>,
    shutdown: watch::Receiver<bool>,
}

impl Stream {
    async fn next(&mut self) -> Option<sse::Event> {
        if let Some(h) = self.history.take() {
            return Some(sse::Data::new(h).event("history").into());
        }
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            tokio::select! {
                biased;
                _ = self.shutdown.changed() => return None,
                _ = tokio::time::sleep_until(self.until) => return None,
                r = self.samples.changed() => {
                    r.ok()?;
                    let sample = self.samples.borrow_and_update().clone();
                    if let Some(json) = sample {
                        return Some(sse::Data::new(json).event("sample").into());
                    }
                }
            }
        }
    }
}

/// Opens a dashboard's stream (the caller is already known to be the admin) until `until`
/// (unix seconds), if given.
pub fn open(state: Arc<AppState>, until: Option<i64>) -> HttpResponse {
    let span = tracing::info_span!("HTTP request", http.route = ROUTE);
    let _entered = span.enter();
    let mut samples = state.console.subscribe();
    // Seen now: the history below already holds it (a sample in between arrives twice and
    // the page keeps one).
    samples.borrow_and_update();
    // A day stands for "no end": the bearer token does not expire.
    let secs = until.map_or(86_400, |exp| (exp - now_secs()).clamp(0, 86_400));
    let live = Stream {
        history: Some(state.console.history()),
        until: tokio::time::Instant::now() + Duration::from_secs(secs as u64),
        samples,
        shutdown: state.shutdown.clone(),
    };
    tracing::debug!("admin stream opened");
    let stream = futures_util::stream::unfold(live, |mut live| async move {
        live.next().await.map(|e| (e, live))
    });
    let body = Sse::from_infallible_stream(stream)
        .with_keep_alive(KEEP_ALIVE)
        .with_retry_duration(Duration::from_secs(3));
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(ContentEncoding::Identity)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .insert_header(("X-Accel-Buffering", "no"))
        .body(body)
}
