//! Operator and integration endpoints: health, readiness, metrics, keys, the gate, payments.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::error::AppError;
use crate::metrics::METRICS;
use crate::payments;
use crate::state::AppState;
use crate::tokens::{TicketClaims, TICKET_TYP};

/// Cookie an admission ticket may travel in to the shop's origin.
const TICKET_COOKIE: &str = "wr_ticket";

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when Redis answers with our scripts loaded and Postgres answers.
pub async fn readyz(s: web::Data<AppState>) -> HttpResponse {
    let redis = s.store.ready().await.is_ok();
    let postgres = s.ledger.ping().await.is_ok();
    let body = serde_json::json!({ "redis": redis, "postgres": postgres, "scripts": redis });
    if redis && postgres {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "2"))
            .json(body)
    }
}

pub async fn metrics() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(METRICS.render())
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

/// For nginx `auth_request`: 204 for a valid, unexpired admission ticket (optionally of the
/// given sale), 401 otherwise. The sale travels back in `X-Waitroom-Sale`.
pub async fn gate(
    s: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<GateQuery>,
) -> HttpResponse {
    let token = super::token_from(&req, TICKET_COOKIE);
    let verified = token
        .as_deref()
        .map(|t| s.keys.verify_any_sale::<TicketClaims>(t, TICKET_TYP));
    match verified {
        Some(Ok((_, aud))) if q.sale.as_deref().is_none_or(|want| want == aud) => HttpResponse::NoContent()
            .insert_header(("X-Waitroom-Sale", aud))
            .finish(),
        _ => HttpResponse::Unauthorized()
            .json(serde_json::json!({"code": "invalid_ticket", "message": "a valid admission ticket is required"})),
    }
}

pub async fn payment_webhook(
    s: web::Data<AppState>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let body = super::body_bytes(body)?;
    let sig = req
        .headers()
        .get(payments::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    Ok(HttpResponse::Ok().json(payments::webhook(&s, &body, sig).await?))
}

pub async fn api_not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::not_found("not_found", "no such endpoint"))
}
