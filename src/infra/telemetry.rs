//! Structured logs. `RUST_LOG` filters (default `info`); `WAITROOM_LOG_FORMAT=json` for
//! machines. Every request carries a request id (tracing-actix-web).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Span, Subscriber};
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub fn init(log: &crate::core::config::Log) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = if log.json {
        builder.json().finish().with(ClientFaultsAtDebug).try_init()
    } else {
        builder
            .compact()
            .finish()
            .with(ClientFaultsAtDebug)
            .try_init()
    };
}

/// actix-http logs at ERROR what a client did wrong on the wire (a request it cannot parse,
/// a slow or reset connection), so anyone could fill the error log. This layer drops those
/// lines and says them again at DEBUG (target `waitroom::http`); faults of ours stay ERROR.
/// Client mistakes at the API level (our 4xx) are never logged above INFO in the first place.
pub struct ClientFaultsAtDebug;

/// How actix-http's client-caused errors begin (its `DispatchError` texts and the decoder's).
const CLIENT_FAULTS: [&str; 6] = [
    "stream error: request parse error",
    "stream error: I/O error",
    "stream error: request did not complete",
    "stream error: connection shutdown timeout",
    "stream error: handler dropped payload",
    "MAX_BUFFER_SIZE unprocessed data reached",
];

impl<S: Subscriber> Layer<S> for ClientFaultsAtDebug {
    fn event_enabled(&self, event: &Event<'_>, _cx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || !meta.target().starts_with("actix_http") {
            return true;
        }
        let mut message = Message::default();
        event.record(&mut message);
        if !CLIENT_FAULTS.iter().any(|f| message.0.starts_with(f)) {
            return true;
        }
        tracing::debug!(target: "waitroom::http", error = %message.0, "client broke HTTP; connection closed");
        false
    }
}

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

/// The route every shopper's live stream opens: its request gets no root span (see below).
pub const EVENTS_ROUTE: &str = "/api/sales/{id}/events";
/// The dashboard's live stream: no root span either.
pub const ADMIN_EVENTS_ROUTE: &str = "/api/admin/events";

/// Request spans that never carry a query string: a token a stale page or a misbehaving
/// client put in the query must not reach a log. `http.target` is the path alone
/// and `http.route` the matched pattern.
///
/// The events route gets none: tracing-actix-web keeps the root span alive for as long as
/// the body streams, hours for an SSE stream. `sse::open` makes its own short span instead.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(req: &ServiceRequest) -> Span {
        let route = req.match_pattern();
        if matches!(route.as_deref(), Some(EVENTS_ROUTE | ADMIN_EVENTS_ROUTE)) {
            return Span::none();
        }
        // Field values are only formatted when the span is enabled (not at RUST_LOG=warn).
        tracing::info_span!(
            "HTTP request",
            http.method = %req.method(),
            http.route = %route.as_deref().unwrap_or("default"),
            http.target = %req.path(),
            http.status_code = tracing::field::Empty,
            request_id = %req.extensions().get::<RequestId>().map(ToString::to_string).unwrap_or_default(),
            exception.message = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
