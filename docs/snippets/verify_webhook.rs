use standardwebhooks::Webhook;

/// One delivery from waitroom, checked: `secret` is the endpoint's `whsec_…` (shown once, at
/// creation or rotation), `headers` and `body` the request exactly as it arrived.
pub fn verify_delivery(
    secret: &str,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    // `webhook-signature` (any of its signatures) over "{id}.{timestamp}.{body}", and
    // `webhook-timestamp` within 5 minutes of now.
    Webhook::new(secret)?.verify(body, headers)?;
    // {"type": "order.paid", "timestamp": "…", "data": {"order_id": …, "status": …, …}}.
    // At least once: skip a `webhook-id` you have handled already.
    Ok(serde_json::from_slice(body)?)
}
