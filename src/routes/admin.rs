//! `/api/admin`: sales for the people running them, behind a bearer admin token.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use serde_json::{Map, Value};

use crate::domain::SaleId;
use crate::error::AppError;
use crate::sales;
use crate::state::AppState;

/// Middleware on the admin scope: every admin route needs the admin bearer token (compared
/// in constant time), checked before the body or path is even parsed.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let expected = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.config.admin_token.expose_secret().to_string())
        .unwrap_or_default();
    let given = super::bearer(req.request()).unwrap_or("");
    let ok = !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()));
    if !ok {
        return Err(AppError::unauthorized(
            "invalid_admin_token",
            "a valid admin bearer token is required",
        )
        .into());
    }
    next.call(req).await
}

pub async fn create_sale(
    s: web::Data<AppState>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, AppError> {
    let sale = sales::create(&s, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(sale))
}

pub async fn sale_stats(
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    Ok(HttpResponse::Ok().json(sales::stats(&s, &id).await?))
}

pub async fn change_sale(
    s: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    Ok(HttpResponse::Ok().json(sales::change(&s, &id, body.into_inner()).await?))
}

pub async fn open_sale(
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    Ok(HttpResponse::Ok().json(sales::set_open(&s, &id, true).await?))
}

pub async fn close_sale(
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    Ok(HttpResponse::Ok().json(sales::set_open(&s, &id, false).await?))
}

pub async fn reconcile_sale(
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    sales::reconcile(&s, &id).await?;
    Ok(HttpResponse::Ok().json(sales::stats(&s, &id).await?))
}
