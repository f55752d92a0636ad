//! The door's rate limits as middleware: each shopper route spends its client's budget
//! (`flows::door::limits`) before the handler runs; over it, 429 `rate_limited`.

use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use super::client_of;
use crate::flows::door::limits::Class;
use crate::http::error::AppError;
use crate::http::state::AppState;
use crate::infra::metrics::METRICS;

/// The refusal: 429 `rate_limited`, `Retry-After` in whole seconds, rounded up.
pub fn rate_limited(wait: Duration) -> AppError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    AppError {
        retry_after: Some(secs.clamp(1, u64::from(u32::MAX)) as u32),
        ..AppError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests from your network; retry after the time given",
        )
    }
}

async fn limit<B: MessageBody>(
    class: Class,
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let refused = req.app_data::<web::Data<AppState>>().and_then(|s| {
        s.limits
            .check(class, &client_of(req.request()))
            .err()
            .map(|wait| {
                METRICS.limiter_rejections(class).inc();
                rate_limited(wait)
            })
    });
    match refused {
        Some(e) => Ok(req.into_response(e.error_response()).map_into_right_body()),
        None => Ok(next.call(req).await?.map_into_left_body()),
    }
}

/// Middleware for write routes (`from_fn(limits::writes)`).
pub async fn writes<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    limit(Class::Write, req, next).await
}

/// Middleware for read routes (`from_fn(limits::reads)`).
pub async fn reads<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    limit(Class::Read, req, next).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(rate_limited(Duration::from_millis(1)).retry_after, Some(1));
        assert_eq!(rate_limited(Duration::ZERO).retry_after, Some(1));
        assert_eq!(
            rate_limited(Duration::from_millis(2001)).retry_after,
            Some(3)
        );
        assert_eq!(rate_limited(Duration::from_secs(2)).retry_after, Some(2));
    }
}
