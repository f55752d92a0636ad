//! `/api/admin`: sales for the people running them, behind a bearer admin token.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use crate::console::session;
use crate::domain::{NewSaleRequest, SaleId};
use crate::error::AppError;
use crate::sales;
use crate::state::AppState;

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
    body: web::Json<NewSaleRequest>,
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
