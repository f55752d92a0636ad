//! `/api/sales/{id}/draw`: a draw sale's commitment and, after the opening, its proof.
//! Public: nothing here names a token, a session or a queue id.

use actix_web::{web, HttpResponse};

use crate::core::domain::SaleId;
use crate::flows::draw;
use crate::http::error::AppError;
use crate::http::state::AppState;

pub async fn published(
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    Ok(HttpResponse::Ok().json(draw::published(&s, &id).await?))
}

/// The entries' public ids in rank order; 409 `draw_pending` before the opening.
pub async fn entries(
    s: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = SaleId::parse(&id)?;
    Ok(HttpResponse::Ok().json(draw::entries(&s, &id).await?))
}
