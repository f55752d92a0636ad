//! Errors at the HTTP boundary.
//!
//! The rule: every handler returns `Result<_, AppError>`. Domain modules know nothing of HTTP:
//! each flow returns its own enum (`QueueError`, `CheckoutError`, `SaleError`,
//! `WebhookError`), the stores return `Fault`, input parsing returns `InvalidInput`, and the
//! `From` impls at the end of this file are the one place they become a status and a stable
//! `code`. A store that is down or slow is 503 with `Retry-After` (nothing was lost; retry); a
//! `Fault::Bug` is a logged 500. Clients branch on `code`, never on `message`.

use actix_web::dev::ServiceResponse;
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::core::domain::InvalidInput;
use crate::core::fault::Fault;
use crate::flows::checkout::CheckoutError;
use crate::flows::door::pow::PowError;
use crate::flows::draw::DrawError;
use crate::flows::handoff::HandoffError;
use crate::flows::payments::WebhookError;
use crate::flows::queue::QueueError;
use crate::flows::sales::SaleError;
use crate::flows::webhooks::EndpointError;
use crate::infra::metrics::METRICS;
use crate::infra::tokens::TokenError;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u32>,
    /// Fields the answer carries beside `code` and `message`, when a client needs more than
    /// a code to act (the order and its status of a `not_payable`).
    pub extra: Option<Map<String, Value>>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    extra: Option<&'a Map<String, Value>>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            extra: None,
        }
    }

    /// This error with one more field in its body.
    pub fn with(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.extra
            .get_or_insert_with(Map::new)
            .insert(field.to_string(), value.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn unknown_sale() -> Self {
        Self::not_found("unknown_sale", "no sale with that id")
    }

    pub fn sold_out() -> Self {
        Self::conflict("sold_out", "every unit of this sale has been sold")
    }

    pub fn ticket_expired() -> Self {
        Self::new(
            StatusCode::GONE,
            "ticket_expired",
            "the admission ticket has expired; join the line again",
        )
    }

    /// A dependency is down or slow: the client should retry, nothing was lost.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(2),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        res.json(Body {
            code: self.code,
            message: &self.message,
            extra: self.extra.as_ref(),
        })
    }
}

/// actix answers a known path with the wrong method by an empty 405: give it our JSON shape,
/// keeping its `Allow` header.
pub fn json_method_errors<B: 'static>() -> ErrorHandlers<B> {
    ErrorHandlers::new().handler(StatusCode::METHOD_NOT_ALLOWED, |res: ServiceResponse<B>| {
        let (req, res) = res.into_parts();
        let mut json = AppError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        )
        .error_response();
        if let Some(allow) = res.headers().get(header::ALLOW) {
            json.headers_mut().insert(header::ALLOW, allow.clone());
        }
        let res = ServiceResponse::new(req, json).map_into_right_body();
        Ok(ErrorHandlerResponse::Response(res))
    })
}

/// JSON and path extractor failures answer in our error shape instead of actix's plain text.
pub fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(16 * 1024)
        .error_handler(|err, _req| {
            use actix_web::error::JsonPayloadError as E;
            let e = match &err {
                E::OverflowKnownLength { .. } | E::Overflow { .. } => AppError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is too large",
                ),
                E::ContentType => AppError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as application/json",
                ),
                other => AppError::bad_request("invalid_json", other.to_string()),
            };
            e.into()
        })
}

pub fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default()
        .error_handler(|err, _req| AppError::bad_request("invalid_path", err.to_string()).into())
}

pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default()
        .error_handler(|err, _req| AppError::bad_request("invalid_query", err.to_string()).into())
}

// ---- domain → HTTP ----

impl From<Fault> for AppError {
    fn from(e: Fault) -> Self {
        match e {
            Fault::Redis(e) => {
                tracing::warn!(error = %e, "redis unavailable");
                METRICS.dependency_errors.inc();
                Self::unavailable("the queue store is unavailable, retry shortly")
            }
            Fault::Postgres(e) => {
                tracing::warn!(error = %e, "postgres unavailable");
                METRICS.dependency_errors.inc();
                Self::unavailable("the order ledger is unavailable, retry shortly")
            }
            Fault::Busy(why) => Self::unavailable(why),
            Fault::Bug(what) => {
                tracing::error!(bug = %what, "internal error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "something went wrong on our side",
                )
            }
        }
    }
}

impl From<InvalidInput> for AppError {
    fn from(e: InvalidInput) -> Self {
        Self::bad_request(e.code, e.message)
    }
}

impl From<QueueError> for AppError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Token(t) => t.into_app_error(false),
            QueueError::UnknownSale => Self::unknown_sale(),
            QueueError::SoldOut => Self::sold_out(),
            QueueError::Pow(p) => p.into(),
            // No Retry-After: a place frees only when one of the client's places is admitted,
            // which its own streams show; a fixed hint would only invite retries.
            QueueError::TooManyPlaces(held) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_places",
                format!("this client already holds {held} places in this line; one frees when it is admitted"),
            ),
            QueueError::Fault(f) => f.into(),
        }
    }
}

impl From<PowError> for AppError {
    fn from(e: PowError) -> Self {
        match e {
            PowError::Required => Self::bad_request(
                "pow_required",
                "solve GET /api/sales/{id}/challenge and send its challenge and nonce",
            ),
            PowError::Invalid => Self::forbidden(
                "pow_invalid",
                "the proof-of-work is wrong or for another sale or client; fetch a new challenge",
            ),
            PowError::Expired => Self::new(
                StatusCode::GONE,
                "pow_expired",
                "the challenge has expired; fetch a new one",
            ),
            PowError::Reused => Self::conflict(
                "pow_reused",
                "this challenge was used before; fetch a new one",
            ),
        }
    }
}

impl From<CheckoutError> for AppError {
    fn from(e: CheckoutError) -> Self {
        use CheckoutError as E;
        match e {
            E::MissingTicket => Self::unauthorized(
                "missing_token",
                "an admission ticket is required as a bearer token",
            ),
            E::Ticket(t) => t.into_app_error(true),
            E::InvalidQuantity => {
                Self::bad_request("invalid_quantity", "quantity must be at least 1")
            }
            E::TooMany(max) => {
                Self::bad_request("invalid_quantity", format!("at most {max} per order"))
            }
            E::Expired => Self::ticket_expired(),
            E::SoldOut => Self::sold_out(),
            E::Insufficient(left) => Self::conflict(
                "insufficient_stock",
                format!("only {left} left; ask for fewer"),
            ),
            E::UnknownSale => Self::unknown_sale(),
            E::UnknownVariant => Self::bad_request(
                "unknown_variant",
                "name one of the sale's variants (\"variant\" in the body)",
            ),
            E::VariantSoldOut(left) => Self::conflict(
                "variant_sold_out",
                "this variant is sold out; others may be left",
            )
            .with(
                "variants_left",
                serde_json::to_value(left).unwrap_or_default(),
            ),
            E::Fault(f) => f.into(),
        }
    }
}

impl From<SaleError> for AppError {
    fn from(e: SaleError) -> Self {
        match e {
            SaleError::Invalid(i) => i.into(),
            SaleError::Exists => {
                Self::conflict("sale_exists", "a sale with this id already exists")
            }
            SaleError::UnknownSale => Self::unknown_sale(),
            SaleError::UnitsBelowSold(held) => Self::conflict(
                "units_below_sold",
                format!("{held} units are sold or held for payment; units cannot go below that"),
            ),
            SaleError::UnitsShrink(units) => Self::conflict(
                "units_cannot_shrink",
                format!("the sale has {units} units; units may only grow"),
            ),
            e @ SaleError::VariantShrinks(..) => {
                Self::conflict("units_cannot_shrink", e.to_string())
            }
            SaleError::Draw(d) => d.into(),
            SaleError::Fault(f) => f.into(),
        }
    }
}

impl From<DrawError> for AppError {
    fn from(e: DrawError) -> Self {
        match e {
            DrawError::UnknownSale => Self::unknown_sale(),
            DrawError::NotADraw => Self::new(
                StatusCode::NOT_FOUND,
                "not_a_draw",
                "this sale lines up in arrival order; it has no draw",
            ),
            DrawError::NotDrawn => Self::conflict(
                "draw_pending",
                "the draw runs at the opening; its entries are published then",
            ),
            DrawError::Started => Self::conflict(
                "draw_started",
                "prequeue and draw_beacon can only change before the sale opens",
            ),
            DrawError::Fault(f) => f.into(),
        }
    }
}

impl From<WebhookError> for AppError {
    fn from(e: WebhookError) -> Self {
        use WebhookError as E;
        match e {
            E::BadSignature => {
                Self::unauthorized("invalid_signature", "the webhook signature does not match")
            }
            E::InvalidBody(why) => Self::bad_request("invalid_json", why),
            E::Invalid(i) => i.into(),
            E::UnknownOrder => Self::not_found("unknown_order", "no order with that id"),
            E::EventReused => Self::conflict(
                "event_id_reused",
                "this event_id was already used for another order; nothing was recorded",
            ),
            E::Fault(f) => f.into(),
        }
    }
}

impl From<EndpointError> for AppError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::Invalid(i) => i.into(),
            EndpointError::UnknownEndpoint => {
                Self::not_found("unknown_webhook", "no webhook endpoint with that id")
            }
            EndpointError::UnknownEvent => Self::not_found(
                "unknown_event",
                "no event with that id for this endpoint's filters",
            ),
            EndpointError::Fault(f) => f.into(),
        }
    }
}

impl From<HandoffError> for AppError {
    fn from(e: HandoffError) -> Self {
        use HandoffError as E;
        match e {
            E::MissingToken => Self::unauthorized(
                "missing_token",
                "a queue token or admission ticket is required as a bearer token",
            ),
            E::Token(t) => t.into_app_error(false),
            E::UnknownSale => Self::unknown_sale(),
            E::NoOrder => Self::not_found("no_order", "this place in line has bought nothing"),
            E::NotPayable { order_id, status } => Self::conflict(
                "not_payable",
                format!("the order is {status}, not waiting for payment"),
            )
            .with("order_id", order_id.to_string())
            .with("status", status),
            E::NoCheckoutUrl {
                order_id,
                hold_expires_at,
            } => Self::conflict(
                "no_checkout_url",
                "this sale names no payment page: the shop completes the payment itself",
            )
            .with("order_id", order_id.to_string())
            .with("hold_expires_at", hold_expires_at),
            E::Fault(f) => f.into(),
        }
    }
}

/// Which token was wrong changes the answer: an expired ticket is 410, an expired queue token
/// 401.
impl TokenError {
    pub fn into_app_error(self, ticket: bool) -> AppError {
        match self {
            Self::Missing => AppError::unauthorized("missing_token", "a token is required"),
            Self::Malformed | Self::BadSignature => {
                AppError::unauthorized("invalid_token", "the token is not valid")
            }
            Self::Expired if ticket => AppError::ticket_expired(),
            Self::Expired => AppError::unauthorized("token_expired", "the token has expired"),
            Self::WrongType => AppError::forbidden(
                "wrong_token_type",
                if ticket {
                    "an admission ticket is required, not a queue token"
                } else {
                    "a queue token is required, not an admission ticket"
                },
            ),
            Self::WrongSale => AppError::forbidden("wrong_sale", "the token is for another sale"),
        }
    }
}
