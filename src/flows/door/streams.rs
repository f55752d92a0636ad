//! Open event streams per client on one instance: a stream per token is capped by the hub
//! (`streams.per_token`); this caps them per client, whatever their tokens (`per_client`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::core::client::ClientKey;

/// Open streams per client on this instance: one address opening thousands of streams with
/// a thousand tokens (each within its own per-token limit) is refused at `per_client`.
#[derive(Default)]
pub struct ClientStreams(Mutex<HashMap<ClientKey, usize>>);

impl ClientStreams {
    /// A slot for one more stream of `client`, or None at the limit.
    pub fn take(self: &Arc<Self>, client: ClientKey, max: usize) -> Option<ClientSlot> {
        let mut open = self.0.lock().expect("client streams lock");
        let n = open.entry(client).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            streams: self.clone(),
            client,
        })
    }
}

/// One open stream of a client; gives its slot back when the stream ends.
pub struct ClientSlot {
    streams: Arc<ClientStreams>,
    client: ClientKey,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.streams.0.lock().expect("client streams lock");
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}
