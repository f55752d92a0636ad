//! The operator's dashboard: its sign-in (`/api/admin/session`) and its live stream
//! (`/api/admin/events`, behind `admin::require_admin` like every admin route).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::http::console::{session, stream};
use crate::http::error::AppError;
use crate::http::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

/// `POST /api/admin/session`: the admin token for a session cookie (204).
pub async fn sign_in(
    s: web::Data<AppState>,
    req: HttpRequest,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let body = super::body_bytes(body)?;
    let SignIn { token } = serde_json::from_slice(&body).map_err(|_| {
        AppError::bad_request("invalid_json", "send {\"token\": \"<admin token>\"}")
    })?;
    let cookie = session::sign_in(&s, &req, &token)?;
    Ok(HttpResponse::NoContent().cookie(cookie).finish())
}

/// `GET /api/admin/session`: 200 while signed in (renewing the cookie past half its life).
pub async fn session_info(
    s: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let mut res = HttpResponse::Ok();
    if let session::Admin::Session {
        renewal: Some(c), ..
    } = session::authorize(&s, &req)?
    {
        res.cookie(c);
    }
    Ok(res.json(serde_json::json!({ "signed_in": true })))
}

/// `DELETE /api/admin/session`: the browser forgets the cookie (204).
pub async fn sign_out(s: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    HttpResponse::NoContent()
        .cookie(session::sign_out(&s, &req))
        .finish()
}

/// `GET /api/admin/events`: `history`, then a `sample` each second. A stream opened with the
/// session cookie ends when that session does (the page's reconnect then meets a 401).
pub async fn events(s: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, AppError> {
    let until = match session::authorize(&s, &req)? {
        session::Admin::Session { exp, .. } => Some(exp),
        session::Admin::Bearer => None,
    };
    Ok(stream::open(s.into_inner(), until))
}
