//! A real webhook receiver on its own port, in the test process: a small HTTP/1.1 server on
//! tokio that verifies every request with the `standardwebhooks` crate against the secrets
//! it trusts (401 if none verifies), records each request in arrival order, and answers as
//! the test tells it: 200, any status, 429 + `Retry-After`, a redirect, garbage, a 10 MB
//! body, slowly; it can be stopped and started again on the same port. Hand-written rather
//! than a framework so it can misbehave in ways a framework would not let it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::wait::{eventually, WAIT};

/// What the receiver answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Ok,
    Status(u16),
    /// A status (429, 503) with `Retry-After: <secs>`.
    RetryAfter(u16, u64),
    /// 302 to another path on this receiver (which would answer 200 if followed).
    Redirect,
    /// Bytes that are not HTTP, then the connection closes.
    Garbage,
    /// 200 with a 10 MB body.
    Huge,
    /// 200 after this long.
    Slow(Duration),
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub webhook_id: String,
    pub timestamp: String,
    pub signature: String,
    pub body: Vec<u8>,
    /// The payload's `type` and `data` (empty and null if the body is not JSON).
    pub event_type: String,
    pub data: Value,
    /// Whether one of the trusted secrets verifies it.
    pub verified: bool,
    /// What it was answered (0 for garbage).
    pub answered: u16,
}

impl Received {
    /// Verifies this request with `secret` alone, as a receiver holding only it would.
    pub fn verifies_with(&self, secret: &str) -> bool {
        verify(
            secret,
            &self.webhook_id,
            &self.timestamp,
            &self.signature,
            &self.body,
        )
    }

    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.answered)
    }
}

/// The `webhook-id`s answered 2xx at least once, sorted, each once: what a receiver that
/// dedups by id has handled.
pub fn accepted_ids(received: &[Received]) -> Vec<&str> {
    let mut ids: Vec<&str> = received
        .iter()
        .filter(|r| r.accepted())
        .map(|r| r.webhook_id.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Decides the answer from the request and how many requests with its `webhook-id` came
/// before it.
pub type Policy = Arc<dyn Fn(&Received, usize) -> Answer + Send + Sync>;

#[derive(Default)]
struct State {
    secrets: Vec<String>,
    policy: Option<Policy>,
    received: Vec<Received>,
    per_id: HashMap<String, usize>,
}

pub struct Receiver {
    pub port: u16,
    state: Arc<Mutex<State>>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Receiver {
    /// A receiver on a free port of 127.0.0.1, answering 200 to what verifies.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Self {
            port: listener.local_addr().unwrap().port(),
            state: Default::default(),
            server: Mutex::new(None),
        };
        r.serve(listener);
        r
    }

    /// The URL to register: `/hook` on this receiver.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Requests verified by `secret` (as well as by those trusted before) are answered.
    pub fn trust(&self, secret: &str) {
        self.state.lock().unwrap().secrets.push(secret.to_string());
    }

    /// From now on every request is answered `a`.
    pub fn answer(&self, a: Answer) {
        self.policy(move |_, _| a.clone());
    }

    /// From now on `f` decides each answer.
    pub fn policy(&self, f: impl Fn(&Received, usize) -> Answer + Send + Sync + 'static) {
        self.state.lock().unwrap().policy = Some(Arc::new(f));
    }

    /// Stops listening and drops every open connection: the port refuses connections.
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some(s) = server {
            s.abort();
            let _ = s.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        let listener = eventually(WAIT, || async {
            TcpListener::bind(("127.0.0.1", self.port)).await.ok()
        })
        .await
        .expect("the receiver's port binds again");
        self.serve(listener);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Waits until `done` holds of the requests so far (or panics after `WAIT`, naming `what`).
    pub async fn wait_until(
        &self,
        what: &str,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        eventually(WAIT, || async {
            let r = self.received();
            done(&r).then_some(r)
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "receiver: {what} within {WAIT:?}; got {:#?}",
                self.summary()
            )
        })
    }

    /// Waits until every id of `ids` was answered 2xx at least once.
    pub async fn wait_accepted(&self, ids: &[String]) -> Vec<Received> {
        self.wait_until("every event accepted", |r| {
            ids.iter()
                .all(|id| r.iter().any(|x| x.accepted() && &x.webhook_id == id))
        })
        .await
    }

    fn summary(&self) -> Vec<(String, String, u16)> {
        self.received()
            .into_iter()
            .map(|r| (r.webhook_id, r.event_type, r.answered))
            .collect()
    }

    fn serve(&self, listener: TcpListener) {
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            // Dropped with the task on `stop`, which aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((socket, _)) = accepted {
                            connections.spawn(handle(socket, state.clone()));
                        }
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        *self.server.lock().unwrap() = Some(task);
    }
}

/// The headers and body of one request, or None if the client sent no complete request.
async fn read_request(
    socket: &mut TcpStream,
) -> Option<(String, HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let mut chunk = vec![0u8; len - body.len()];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((path, headers, body))
}

async fn handle(mut socket: TcpStream, state: Arc<Mutex<State>>) {
    let Some((path, headers, body)) = read_request(&mut socket).await else {
        return;
    };
    let header = |n: &str| headers.get(n).cloned().unwrap_or_default();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut r = Received {
        path,
        webhook_id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        event_type: json["type"].as_str().unwrap_or_default().to_string(),
        data: json["data"].clone(),
        body,
        verified: false,
        answered: 0,
    };
    let answer = {
        let mut s = state.lock().unwrap();
        r.verified = s.secrets.iter().any(|k| r.verifies_with(k));
        let before = s.per_id.entry(r.webhook_id.clone()).or_default();
        let earlier = *before;
        *before += 1;
        let answer = if !r.verified {
            Answer::Status(401)
        } else {
            s.policy.as_ref().map_or(Answer::Ok, |p| p(&r, earlier))
        };
        r.answered = match answer {
            Answer::Ok | Answer::Huge | Answer::Slow(_) => 200,
            Answer::Status(c) | Answer::RetryAfter(c, _) => c,
            Answer::Redirect => 302,
            Answer::Garbage => 0,
        };
        s.received.push(r.clone());
        answer
    };
    let simple = |code: u16, extra: &str| {
        format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n{extra}\r\nok")
    };
    let reply = match answer {
        Answer::Ok => simple(200, ""),
        Answer::Status(c) => simple(c, ""),
        Answer::RetryAfter(c, secs) => simple(c, &format!("retry-after: {secs}\r\n")),
        Answer::Redirect => simple(302, "location: /elsewhere\r\n"),
        Answer::Garbage => "\u{1}\u{2}this is not HTTP at all\r\n\r\n\u{0}".to_string(),
        Answer::Slow(d) => {
            tokio::time::sleep(d).await;
            simple(200, "")
        }
        Answer::Huge => {
            let size = 10 * 1024 * 1024;
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n");
            if socket.write_all(head.as_bytes()).await.is_ok() {
                let chunk = vec![b'x'; 64 * 1024];
                for _ in 0..size / chunk.len() {
                    if socket.write_all(&chunk).await.is_err() {
                        break; // the client gave up reading: as it should
                    }
                }
            }
            return;
        }
    };
    let _ = socket.write_all(reply.as_bytes()).await;
    let _ = socket.shutdown().await;
}

fn verify(secret: &str, id: &str, timestamp: &str, signature: &str, body: &[u8]) -> bool {
    standardwebhooks::Webhook::new(secret)
        .is_ok_and(|h| waitroom::core::webhooks::verify(&h, id, timestamp, signature, body))
}
