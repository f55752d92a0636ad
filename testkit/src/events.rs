//! A shopper's event stream, opened the way the page's EventSource opens it.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};

use crate::sessions::session_cookie;

pub type Events = Pin<Box<dyn Stream<Item = Event> + Send>>;

/// Opens a sale's `/events` at `url`: the token in the wr_queue cookie beside the session
/// cookie, and on a reconnect the `Last-Event-ID` header EventSource sends.
pub async fn open_events(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    last_id: Option<&str>,
) -> Events {
    let cookie = session_cookie(token).expect("a session for the token");
    let mut req = client
        .get(url)
        .header("cookie", format!("{cookie}; wr_queue={token}"))
        .timeout(Duration::from_secs(600));
    if let Some(id) = last_id {
        req = req.header("Last-Event-ID", id);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["cache-control"], "no-cache");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    Box::pin(
        res.bytes_stream()
            .eventsource()
            .filter_map(|e| async { e.ok() }),
    )
}
