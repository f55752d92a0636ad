//! The URL map: this file is the table of contents of the HTTP API. Handlers are thin: parse,
//! call one domain function, map the result.

mod admin;
mod console;
mod draw;
mod ops;
mod page;
mod shopper;
mod webhooks;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, Resource};

use crate::http::door::limits;
use crate::http::error::AppError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            // API answers are never cached by a browser or the CDN.
            .wrap(DefaultHeaders::new().add((header::CACHE_CONTROL, "no-store")))
            // The dashboard's sign-in, before the admin scope: it is how a session starts.
            .service(
                writes("/admin/session")
                    .route(web::post().to(console::sign_in))
                    .route(web::get().to(console::session_info))
                    .route(web::delete().to(console::sign_out)),
            )
            .service(
                web::scope("/admin")
                    .wrap(from_fn(admin::require_admin))
                    .route("/events", web::get().to(console::events))
                    .route("/sales", web::post().to(admin::create_sale))
                    .route("/sales/{id}", web::get().to(admin::sale_stats))
                    .route("/sales/{id}", web::patch().to(admin::change_sale))
                    .route("/sales/{id}/open", web::post().to(admin::open_sale))
                    .route("/sales/{id}/close", web::post().to(admin::close_sale))
                    .route(
                        "/sales/{id}/reconcile",
                        web::post().to(admin::reconcile_sale),
                    )
                    .route("/sales/{id}/events", web::get().to(admin::sale_events))
                    .route("/sales/{id}/report", web::get().to(admin::sale_report))
                    .route("/webhooks", web::post().to(webhooks::create))
                    .route("/webhooks", web::get().to(webhooks::list))
                    .route("/webhooks/{id}", web::get().to(webhooks::get))
                    .route("/webhooks/{id}", web::delete().to(webhooks::delete))
                    .route("/webhooks/{id}/rotate", web::post().to(webhooks::rotate))
                    .route("/webhooks/{id}/enable", web::post().to(webhooks::enable))
                    .route(
                        "/webhooks/{id}/deliveries",
                        web::get().to(webhooks::deliveries),
                    )
                    .route("/webhooks/{id}/replay", web::post().to(webhooks::replay))
                    .default_service(web::to(ops::not_found)),
            )
            // Shopper routes spend a per-client budget (`door::limits`): writes or reads.
            .service(reads("/sales").route(web::get().to(shopper::list_sales)))
            .service(reads("/sales/{id}").route(web::get().to(shopper::get_sale)))
            .service(writes("/sales/{id}/queue").route(web::post().to(shopper::join)))
            .service(writes("/sales/{id}/challenge").route(web::get().to(shopper::challenge)))
            .service(reads("/sales/{id}/status").route(web::get().to(shopper::status)))
            .service(reads("/sales/{id}/draw").route(web::get().to(draw::published)))
            .service(reads("/sales/{id}/draw/entries").route(web::get().to(draw::entries)))
            .service(reads("/sales/{id}/events").route(web::get().to(shopper::events)))
            .service(writes("/sales/{id}/checkout").route(web::post().to(shopper::checkout)))
            .service(writes("/sales/{id}/payment").route(web::post().to(shopper::payment)))
            .service(
                // Providers' events can outgrow the 16 KiB every other body is held to.
                web::resource("/payments/webhook")
                    .app_data(web::PayloadConfig::new(256 * 1024))
                    .route(web::post().to(ops::payment_webhook)),
            )
            .route("/gate", web::get().to(ops::gate))
            .default_service(web::to(ops::not_found)),
    )
    .route("/.well-known/jwks.json", web::get().to(ops::jwks))
    .route("/healthz", web::get().to(ops::healthz))
    .route("/readyz", web::get().to(ops::readyz))
    .route("/metrics", web::get().to(ops::metrics))
    .route("/", web::get().to(page::index))
    .route("/s/{id}", web::get().to(page::index))
    .route("/admin", web::get().to(page::admin))
    .route("/static/{path:.*}", web::get().to(page::asset))
    // Any other path still answers in our JSON shape (a known path's other methods are
    // actix's empty 405, which carries the Allow header).
    .default_service(web::to(ops::not_found));
}

/// A resource whose requests spend the client's write budget.
fn writes(path: &str) -> Resource<impl Limited> {
    web::resource(path).wrap(from_fn(limits::writes))
}

/// A resource whose requests spend the client's read budget.
fn reads(path: &str) -> Resource<impl Limited> {
    web::resource(path).wrap(from_fn(limits::reads))
}

/// What a rate-limited resource is to actix: a service factory like any other (named once
/// so `writes` and `reads` can return one).
trait Limited:
    ServiceFactory<
    ServiceRequest,
    Config = (),
    Response = ServiceResponse<Self::Body>,
    Error = actix_web::Error,
    InitError = (),
>
{
    type Body: MessageBody;
}

impl<T, B: MessageBody> Limited for T
where
    T: ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<B>,
        Error = actix_web::Error,
        InitError = (),
    >,
{
    type Body = B;
}

/// An optional JSON body: empty means all defaults; anything else must parse, so a
/// malformed field is a 400 rather than silently ignored.
fn optional_json<T: serde::de::DeserializeOwned + Default>(
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<T, AppError> {
    let body = body_bytes(body)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| AppError::bad_request("invalid_json", e.to_string()))
}

/// The raw body, or a JSON error saying why it could not be read.
fn body_bytes(body: Result<web::Bytes, actix_web::Error>) -> Result<web::Bytes, AppError> {
    body.map_err(|e| match e.as_response_error().status_code() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        ),
        _ => AppError::bad_request("unreadable_body", e.to_string()),
    })
}
