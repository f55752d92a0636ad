//! `/api/admin`: sales for the people running them, behind a bearer admin token.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use serde_json::{Map, Value};

use crate::core::domain::SaleId;
use crate::flows::{audit, report, sales};
use crate::http::console::session;
use crate::http::error::AppError;
use crate::http::state::AppState;

/// Middleware on the admin scope: every admin route needs the admin bearer token (compared
/// in constant time) or the dashboard's session cookie (`console::session`), checked before
/// the body or path is even parsed.
pub async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let s = req.app_data::<web::Data<AppState>>().cloned();
    let s = s.ok_or_else(|| AppError::unavailable("starting"))?;
    let admin = session::authorize(&s, req.request())?;
    let mut res = next.call(req).await?;
    if let session::Admin::Session {
        renewal: Some(c), ..
    } = admin
    {
        res.response_mut().add_cookie(&c)?;
    }
    Ok(res)
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

#[derive(serde::Deserialize)]
pub struct TrailQuery {
    after: Option<i64>,
    limit: Option<i64>,
}

/// Most rows one page of the trail returns.
const MAX_TRAIL_PAGE: i64 = 1000;

pub async fn sale_events(
    s: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<TrailQuery>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    let after = q.after.unwrap_or(0);
    if after < 0 {
        return Err(AppError::bad_request("invalid_after", "after must be >= 0"));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_TRAIL_PAGE).contains(&limit) {
        let why = format!("limit must be between 1 and {MAX_TRAIL_PAGE}");
        return Err(AppError::bad_request("invalid_limit", why));
    }
    let page = audit::page(&s.ledger, &id, after, limit).await?;
    Ok(HttpResponse::Ok().json(page.ok_or_else(AppError::unknown_sale)?))
}

pub async fn sale_report(
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    let report = report::report(&s, &id).await?;
    Ok(HttpResponse::Ok().json(report.ok_or_else(AppError::unknown_sale)?))
}
