//! A lean HTTP/1.1 client: one hyper connection per worker, kept alive, no pool and no
//! redirects, so the bench's load generator takes as little as possible of the two cores it
//! shares with the server, Redis and Postgres. `Req` is also what `TestApp` sends.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::{header, Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A request, cheap to clone so one template can be replayed by every worker.
#[derive(Clone, Debug)]
pub struct Req {
    method: Method,
    path: String,
    bearer: Option<String>,
    json: Option<Bytes>,
}

impl Req {
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }

    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }

    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            bearer: None,
            json: None,
        }
    }

    pub fn bearer(mut self, token: &str) -> Self {
        self.bearer = Some(format!("Bearer {token}"));
        self
    }

    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.json = Some(Bytes::from(body.to_string()));
        self
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The bearer token, if the request carries one.
    pub fn token(&self) -> Option<&str> {
        self.bearer.as_deref()?.strip_prefix("Bearer ")
    }

    /// The JSON body, if any.
    pub fn body(&self) -> Option<&Bytes> {
        self.json.as_ref()
    }
}

pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "HTTP {}: body is not JSON: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Short description for error messages.
    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(200).collect();
        format!("HTTP {} {body}", self.status)
    }
}

/// One keep-alive connection to one address; reconnects lazily after a failure.
pub struct Conn {
    addr: SocketAddr,
    host: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            sender: None,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let tcp = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connect {}", self.addr))?;
            tcp.set_nodelay(true)?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just connected"))
    }

    pub async fn send(&mut self, req: &Req) -> Result<Reply> {
        let mut b = Request::builder()
            .method(req.method.clone())
            .uri(req.path.as_str())
            .header(header::HOST, self.host.as_str());
        if let Some(auth) = &req.bearer {
            b = b.header(header::AUTHORIZATION, auth.as_str());
        }
        let body = match &req.json {
            Some(json) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Full::new(json.clone())
            }
            None => Full::new(Bytes::new()),
        };
        let request = b.body(body)?;
        let sender = self.sender().await?;
        let result = async {
            sender.ready().await?;
            let res = sender.send_request(request).await?;
            let status = res.status().as_u16();
            let body = res.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>(Reply { status, body })
        }
        .await;
        if result.is_err() {
            // The connection is in an unknown state: the next request opens a fresh one.
            self.sender = None;
        }
        Ok(result?)
    }
}
