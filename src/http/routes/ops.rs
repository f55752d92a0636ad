//! Operator and integration endpoints: health, readiness, metrics, keys, the gate, payments.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::core::domain::SaleId;
use crate::flows::payments;
use crate::http::credentials;
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::infra::metrics::{self, Route};

/// Cookie an admission ticket may travel in to the shop's origin.
const TICKET_COOKIE: &str = "wr_ticket";
/// The sale the gate is asked about, when the proxy names it in a header.
const GATE_SALE_HEADER: &str = "X-Waitroom-Sale";

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when Redis answers with our scripts loaded and Postgres answers, as the background
/// check (`health`) last saw them.
pub async fn readyz(s: web::Data<AppState>) -> HttpResponse {
    let (redis, postgres) = s.health.ready();
    let body = serde_json::json!({ "redis": redis, "postgres": postgres, "scripts": redis });
    if redis && postgres {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "2"))
            .json(body)
    }
}

/// Prometheus text of the process's recorder (`metrics`), shared by every instance in it.
pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(metrics::render())
}

pub async fn jwks(s: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(s.keys.jwks())
}

#[derive(Deserialize)]
pub struct GateQuery {
    sale: Option<String>,
}

/// For nginx `auth_request`: 204 for a valid, unexpired admission ticket of the sale named by
/// `X-Waitroom-Sale` (which nginx sets; it wins when both name one) or `?sale=`, 401 otherwise. Without a sale the gate
/// cannot say whose ticket it wants: 400, so a misconfigured proxy fails loudly rather than
/// letting one sale's tickets into another's shop. The binding to a browser (`sid`) is not
/// checked here: the shop's origin may not see the waitroom's cookie (see `door::session`).
pub async fn gate(
    s: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<GateQuery>,
) -> Result<HttpResponse, AppError> {
    let header = req
        .headers()
        .get(GATE_SALE_HEADER)
        .and_then(|v| v.to_str().ok());
    // The header first: nginx sets it from its own config, while the query may be the
    // client's, forwarded; a ticket of sale A must not pass shop B's gate by `?sale=A`.
    let sale = header
        .or(q.sale.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AppError::bad_request(
                "sale_required",
                "name the sale as ?sale= or the X-Waitroom-Sale header",
            )
        })?;
    let token = credentials::token_from(&req, TICKET_COOKIE);
    // A name that is no sale id names no sale a ticket could be for: 401 like a wrong ticket.
    let id = SaleId::parse(sale).ok();
    let verified = token
        .as_deref()
        .zip(id.as_ref())
        .map(|(t, id)| s.keys.verify_ticket(t, id));
    Ok(match verified {
        Some(Ok(_)) => HttpResponse::NoContent()
            .insert_header((GATE_SALE_HEADER, sale))
            .finish(),
        _ => HttpResponse::Unauthorized()
            .json(serde_json::json!({"code": "invalid_ticket", "message": "a valid admission ticket is required"})),
    })
}

pub async fn payment_webhook(
    s: web::Data<AppState>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let _timer = metrics::time(Route::Webhook);
    let body = super::body_bytes(body)?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    // Standard Webhooks' headers win when their signature is there; otherwise today's header.
    let sig = match header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE) {
        Some(signature) => payments::Signature::Standard {
            id: header(standardwebhooks::HEADER_WEBHOOK_ID).unwrap_or_default(),
            timestamp: header(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP).unwrap_or_default(),
            signature,
        },
        None => payments::Signature::Hmac(header(payments::SIGNATURE_HEADER)),
    };
    Ok(HttpResponse::Ok().json(payments::webhook(&s, &body, sig).await?))
}

pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::not_found("not_found", "no such endpoint"))
}
