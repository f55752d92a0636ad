//! `/api/sales`: what shoppers call from the queue page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, Responder};
use serde::Deserialize;

use crate::core::domain::{SaleId, VariantId};
use crate::flows::door::pow::Proof;
use crate::flows::door::ClientKey;
use crate::flows::{checkout, handoff, queue, sales};
use crate::http::credentials;
use crate::http::door::session::{self, Session, QUEUE_COOKIE};
use crate::http::error::AppError;
use crate::http::sse;
use crate::http::state::AppState;
use crate::infra::metrics::{self, Route};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct JoinBody {
    token: Option<String>,
    /// A solved proof-of-work (`door::pow`), needed for a new place when the sale asks one.
    challenge: Option<String>,
    nonce: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    quantity: Option<i32>,
    /// In a sale with variants, the one to buy.
    variant: Option<String>,
}

pub async fn list_sales(s: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(sales::public_list(&s).await?))
}

pub async fn get_sale(
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    Ok(HttpResponse::Ok().json(sales::public_one(&s, &id).await?))
}

/// The body is optional: an empty POST joins fresh (or finds this browser's place).
pub async fn join(
    s: web::Data<AppState>,
    id: web::Path<String>,
    client: ClientKey,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let _timer = metrics::time(Route::Join);
    let id = SaleId::parse(&id)?;
    let body: JoinBody = super::optional_json(body)?;
    let token = body.token.as_deref().filter(|t| !t.is_empty());
    if let Some(t) = token {
        session::check_bound(&s, &req, t)?;
    }
    let proof = Proof {
        challenge: body.challenge,
        nonce: body.nonce,
    };
    let browser = Session::of(&s, &req);
    let seat = browser.seat(&id);
    let view = queue::join(&s, &id, token, &client, &proof, &seat).await?;
    let ttl = s.config.tokens.queue_token_ttl.as_secs() as i64;
    let mut res = HttpResponse::Created();
    for c in browser.cookies(&id, &view.token, ttl) {
        res.cookie(c);
    }
    Ok(res.json(view))
}

/// A proof-of-work challenge for this client and sale (`door::pow`).
pub async fn challenge(
    s: web::Data<AppState>,
    id: web::Path<String>,
    client: ClientKey,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    Ok(HttpResponse::Ok().json(queue::challenge(&s, &id, &client).await?))
}

pub async fn status(
    s: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let _timer = metrics::time(Route::Status);
    let id = SaleId::parse(&id)?;
    let token = credentials::token_from(&req, QUEUE_COOKIE).ok_or_else(|| {
        AppError::unauthorized(
            "missing_token",
            "a queue token is required as a bearer token",
        )
    })?;
    session::check_bound(&s, &req, &token)?;
    let claims = s
        .keys
        .verify_queue(&token, &id)
        .map_err(|e| e.into_app_error(false))?;
    Ok(HttpResponse::Ok().json(queue::status(&s, &id, &claims).await?))
}

pub async fn events(
    s: web::Data<AppState>,
    id: web::Path<String>,
    client: ClientKey,
    req: HttpRequest,
) -> Result<impl Responder, AppError> {
    let id = SaleId::parse(&id)?;
    // Never from the URL: a query string ends up in proxies' and browsers' logs.
    let token = credentials::token_from(&req, QUEUE_COOKIE);
    if let Some(t) = &token {
        session::check_bound(&s, &req, t)?;
    }
    let last_id = req
        .headers()
        .get("Last-Event-ID")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    sse::open(s.into_inner(), id, client, token.as_deref(), last_id).await
}

pub async fn checkout(
    s: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let _timer = metrics::time(Route::Checkout);
    let id = SaleId::parse(&id)?;
    let body: CheckoutBody = super::optional_json(body)?;
    let quantity = body.quantity.unwrap_or(1);
    let variant = body.variant.as_deref().map(VariantId::parse).transpose()?;
    if let Some(t) = credentials::bearer(&req) {
        session::check_bound(&s, &req, t)?;
    }
    let ticket = credentials::bearer(&req);
    let bought = checkout::checkout(&s, &id, ticket, quantity, variant.as_ref()).await?;
    let status = if bought.fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(HttpResponse::build(status).json(bought.order))
}

/// `POST /api/sales/{id}/payment`: a hand-off token for the order this shopper bought, to
/// post to the shop's payment page. The answer holds a token: never logged, never cached.
pub async fn payment(
    s: web::Data<AppState>,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    let bearer = credentials::bearer(&req);
    if let Some(t) = bearer {
        session::check_bound(&s, &req, t)?;
    }
    Ok(HttpResponse::Ok().json(handoff::hand_off(&s, &id, bearer).await?))
}
