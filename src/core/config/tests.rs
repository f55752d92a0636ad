use super::*;
use std::collections::HashMap;

fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| m.get(k).cloned())
}

#[test]
fn defaults_are_valid() {
    let c = from(&[]).unwrap();
    assert_eq!(c.loops.tick, Duration::from_millis(200));
    assert_eq!(c.http.bind.to_string(), "127.0.0.1:8080");
}

#[test]
fn bad_values_name_the_variable() {
    assert_eq!(
        from(&[("WAITROOM_TICK_MS", "abc")]).unwrap_err().var,
        "WAITROOM_TICK_MS"
    );
    assert_eq!(
        from(&[("WAITROOM_TICK_MS", "0")]).unwrap_err().var,
        "WAITROOM_TICK_MS"
    );
    assert_eq!(
        from(&[("WAITROOM_BIND", "nope")]).unwrap_err().var,
        "WAITROOM_BIND"
    );
    assert_eq!(
        from(&[("WAITROOM_REDIS_URL", "http://x")]).unwrap_err().var,
        "WAITROOM_REDIS_URL"
    );
    assert_eq!(
        from(&[("WAITROOM_REDIS_CLUSTER_NODES", "127.0.0.1:7000")])
            .unwrap_err()
            .var,
        "WAITROOM_REDIS_CLUSTER_NODES"
    );
    assert_eq!(
        from(&[("WAITROOM_SIGNING_KEYS", "/no/such.pem")])
            .unwrap_err()
            .var,
        "WAITROOM_SIGNING_KEYS"
    );
    assert_eq!(
        from(&[("WAITROOM_ADMIN_TOKEN", "short")]).unwrap_err().var,
        "WAITROOM_ADMIN_TOKEN"
    );
    for (var, bad) in [
        ("WAITROOM_IP_RATE_PER_SEC", "-1"),
        ("WAITROOM_IP_RATE_PER_SEC", "NaN"),
        ("WAITROOM_IP_BURST", "0"),
        ("WAITROOM_IP_READ_RATE_PER_SEC", "fast"),
    ] {
        assert_eq!(from(&[(var, bad)]).unwrap_err().var, var);
    }
}

#[test]
fn rate_limits_parse_with_a_derived_read_burst() {
    let c = from(&[
        ("WAITROOM_IP_RATE_PER_SEC", "0.5"),
        ("WAITROOM_IP_BURST", "7"),
        ("WAITROOM_IP_READ_RATE_PER_SEC", "0"),
    ])
    .unwrap();
    assert_eq!(c.door.limits.write_per_sec, 0.5);
    assert_eq!(c.door.limits.write_burst, 7);
    assert_eq!(c.door.limits.read_per_sec, 0.0);
    assert_eq!(from(&[]).unwrap().door.limits, RateLimits::default());
}

#[test]
fn debug_output_shows_no_secret() {
    let c = from(&[
        ("WAITROOM_ADMIN_TOKEN", "admin-token-sekrit"),
        ("WAITROOM_PAYMENT_SECRET", "payment-sekrit"),
        ("WAITROOM_DATABASE_URL", "postgres://u:pw-sekrit@h/db"),
    ])
    .unwrap();
    assert_eq!(c.tokens.admin.expose_secret(), "admin-token-sekrit");
    let debug = format!("{c:?}");
    assert!(!debug.contains("sekrit"), "{debug}");
    assert!(debug.contains("REDACTED"), "{debug}");
}

#[test]
fn webhooks_parse_and_refuse_bad_values() {
    let c = from(&[]).unwrap();
    assert!(!c.webhooks.allow_private);
    assert_eq!(c.webhooks.timeout, Duration::from_secs(15));
    assert_eq!(c.webhooks.rotation_overlap, Duration::from_secs(86_400));
    let c = from(&[
        ("WAITROOM_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("WAITROOM_WEBHOOK_RETRY_SCALE", "0.001"),
        ("WAITROOM_WEBHOOK_TIMEOUT_MS", "2000"),
        ("WAITROOM_WEBHOOK_POLL_MS", "50"),
        ("WAITROOM_WEBHOOK_CONCURRENCY", "8"),
        ("WAITROOM_WEBHOOK_ROTATION_OVERLAP_SECS", "60"),
        ("WAITROOM_WEBHOOK_PG_POOL", "2"),
    ])
    .unwrap();
    let w = &c.webhooks;
    assert!(w.allow_private);
    assert_eq!(w.retry_scale, 0.001);
    assert_eq!(w.timeout, Duration::from_secs(2));
    assert_eq!(w.poll, Duration::from_millis(50));
    assert_eq!((w.concurrency, w.pool_size), (8, 2));
    assert_eq!(w.rotation_overlap, Duration::from_secs(60));
    for (var, bad) in [
        ("WAITROOM_WEBHOOK_ALLOW_PRIVATE", "maybe"),
        ("WAITROOM_WEBHOOK_RETRY_SCALE", "0"),
        ("WAITROOM_WEBHOOK_RETRY_SCALE", "NaN"),
        ("WAITROOM_WEBHOOK_RETRY_SCALE", "-1"),
        ("WAITROOM_WEBHOOK_TIMEOUT_MS", "5"),
        ("WAITROOM_WEBHOOK_POLL_MS", "0"),
        ("WAITROOM_WEBHOOK_CONCURRENCY", "0"),
        ("WAITROOM_WEBHOOK_PG_POOL", "0"),
    ] {
        assert_eq!(from(&[(var, bad)]).unwrap_err().var, var);
    }
}
