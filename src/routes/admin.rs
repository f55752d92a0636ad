//! `/api/admin`: sales for the people running them, behind a bearer admin token.

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::domain::{NewSaleRequest, SaleId};
use crate::error::AppError;
use crate::sales;
use crate::state::AppState;

/// Proof that the request carries the admin token (compared in constant time).
pub struct Admin;

impl FromRequest for Admin {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let expected = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.config.admin_token.expose_secret().to_string())
            .unwrap_or_default();
        let given = super::bearer(req).unwrap_or("");
        let ok = !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()));
        std::future::ready(if ok {
            Ok(Admin)
        } else {
            Err(AppError::unauthorized(
                "invalid_admin_token",
                "a valid admin bearer token is required",
            ))
        })
    }
}

pub async fn create_sale(
    _: Admin,
    s: web::Data<AppState>,
    body: web::Json<NewSaleRequest>,
) -> Result<HttpResponse, AppError> {
    let sale = sales::create(&s, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(sale))
}

pub async fn sale_stats(
    _: Admin,
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    Ok(HttpResponse::Ok().json(sales::stats(&s, &id).await?))
}

pub async fn open_sale(
    _: Admin,
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    Ok(HttpResponse::Ok().json(sales::set_open(&s, &id, true).await?))
}

pub async fn close_sale(
    _: Admin,
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    Ok(HttpResponse::Ok().json(sales::set_open(&s, &id, false).await?))
}

pub async fn reconcile_sale(
    _: Admin,
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    sales::reconcile(&s, &id).await?;
    Ok(HttpResponse::Ok().json(sales::stats(&s, &id).await?))
}
