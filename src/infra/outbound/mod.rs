//! Outbound HTTP for webhooks: one POST per attempt over hyper and rustls (ring, Mozilla's
//! roots), no redirects followed, a deadline over the whole attempt, and the answer's body
//! read up to `BODY_CAP` and then dropped, so a receiver that answers slowly, endlessly or
//! with garbage costs one failed attempt and bounded memory. Unless private destinations are
//! allowed, a URL whose host is a private address is refused before connecting, and names
//! are resolved through `resolve::Guarded`, which drops private addresses at connect time
//! (DNS rebinding).

mod get;
mod resolve;

pub use resolve::{check_host, HostCheck};

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::core::webhooks::is_private;

/// The most of a receiver's answer that is read; a longer one fails the attempt.
pub const BODY_CAP: usize = 64 * 1024;

/// One signed webhook message, ready to send.
pub struct Message<'a> {
    pub url: &'a str,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    pub id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
    pub body: Bytes,
}

/// What the receiver answered, its body read within the cap.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
}

/// An attempt that got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answer of {status} longer than {BODY_CAP} bytes")]
    TooLarge { status: u16 },
    #[error("{0}")]
    Failed(String),
}

impl SendError {
    /// The HTTP status, when one came back.
    pub fn status(&self) -> Option<u16> {
        match self {
            SendError::TooLarge { status } => Some(*status),
            _ => None,
        }
    }
}

/// The relay's HTTP client: pooled connections, shared by every attempt of the instance.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpsConnector<HttpConnector<resolve::Guarded>>, Full<Bytes>>,
    timeout: Duration,
    allow_private: bool,
}

impl Sender {
    // rustls deprecates ring's provider for lacking post-quantum key exchange; aws-lc-rs
    // has it, at the cost of a long C build. Webhook bodies are signed besides.
    #[allow(deprecated)]
    pub fn new(timeout: Duration, allow_private: bool) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new_with_resolver(resolve::Guarded { allow_private });
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(8)
            .build(https);
        Ok(Self {
            client,
            timeout,
            allow_private,
        })
    }

    /// POSTs `m` and reads the answer, all within the timeout.
    pub async fn post(&self, m: Message<'_>) -> Result<Answer, SendError> {
        let uri: hyper::Uri = m
            .url
            .parse()
            .map_err(|e| SendError::Failed(format!("not a URL: {e}")))?;
        // An address literal is connected to without a lookup: checked here instead.
        let host = uri.host().unwrap_or_default();
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse();
        if let Ok(ip) = literal {
            if !self.allow_private && is_private(ip) {
                return Err(SendError::Failed("the host is a private address".into()));
            }
        }
        let request = hyper::Request::post(uri)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("waitroom-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", m.id)
            .header("webhook-timestamp", m.timestamp.to_string())
            .header("webhook-signature", m.signature)
            .body(Full::new(m.body))
            .map_err(|e| SendError::Failed(format!("cannot build the request: {e}")))?;
        let (parts, _) = self.round_trip(request, BODY_CAP).await?;
        let retry_after = parts
            .headers
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Answer {
            status: parts.status.as_u16(),
            retry_after,
        })
    }

    /// Sends `request` and reads the answer's body to the end within `cap` bytes (so the
    /// connection can be reused; a longer body fails and the connection is dropped with it),
    /// all within the timeout.
    async fn round_trip(
        &self,
        request: hyper::Request<Full<Bytes>>,
        cap: usize,
    ) -> Result<(http::response::Parts, Bytes), SendError> {
        let exchange = async {
            let res = self.client.request(request).await.map_err(failed)?;
            let (parts, body) = res.into_parts();
            match Limited::new(body, cap).collect().await {
                Ok(body) => Ok((parts, body.to_bytes())),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(SendError::TooLarge {
                    status: parts.status.as_u16(),
                }),
                Err(e) => Err(SendError::Failed(format!("reading the answer: {e}"))),
            }
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or(Err(SendError::Timeout(self.timeout)))
    }
}

/// The error and its causes in one line ("client error (Connect): dns error: …"), which
/// names no secret: the request's headers and body never appear in them.
fn failed(e: impl std::error::Error) -> SendError {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    SendError::Failed(text)
}
