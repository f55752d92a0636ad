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
