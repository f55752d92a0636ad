//! `/api/admin/webhooks`: the shop's endpoints and their deliveries (`flows::webhooks`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use crate::flows::webhooks::endpoints::{self, NewBody, ReplayBody, MAX_DELIVERIES};
use crate::http::error::AppError;
use crate::http::state::AppState;

pub async fn create(
    s: web::Data<AppState>,
    body: web::Json<NewBody>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Created().json(endpoints::create(&s, body.into_inner()).await?))
}

pub async fn list(s: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(endpoints::list(&s).await?))
}

pub async fn get(s: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, AppError> {
    let id = endpoints::endpoint_id(&id)?;
    Ok(HttpResponse::Ok().json(endpoints::get(&s, id).await?))
}

pub async fn delete(
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    endpoints::delete(&s, endpoints::endpoint_id(&id)?).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn rotate(
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = endpoints::endpoint_id(&id)?;
    Ok(HttpResponse::Ok().json(endpoints::rotate(&s, id).await?))
}

pub async fn enable(
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = endpoints::endpoint_id(&id)?;
    Ok(HttpResponse::Ok().json(endpoints::enable(&s, id).await?))
}

#[derive(Deserialize)]
pub struct DeliveriesQuery {
    limit: Option<i64>,
    event_id: Option<Uuid>,
}

pub async fn deliveries(
    s: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, AppError> {
    let id = endpoints::endpoint_id(&id)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_DELIVERIES).contains(&limit) {
        let why = format!("limit must be between 1 and {MAX_DELIVERIES}");
        return Err(AppError::bad_request("invalid_limit", why));
    }
    let rows = endpoints::deliveries(&s, id, q.event_id, limit).await?;
    Ok(HttpResponse::Ok().json(rows))
}

pub async fn replay(
    s: web::Data<AppState>,
    id: web::Path<String>,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let id = endpoints::endpoint_id(&id)?;
    let body: ReplayBody = super::optional_json(body)?;
    Ok(HttpResponse::Ok().json(endpoints::replay(&s, id, body).await?))
}
