//! What the fuzzer throws: a request to one of the app's routes, with a path segment, tokens,
//! cookies, headers and a body drawn from garbage, near-misses and real values from a join, so
//! some cases get past the parsing into the flows behind it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use reqwest::Method;
use serde_json::{json, Value};

use super::body::json_value;

/// Real values from the fixture's sales, joins and checkout.
#[derive(Debug, Clone)]
pub struct Known {
    pub sales: Vec<String>,
    /// Each real token with the sale it was issued for.
    pub pairs: Vec<(String, String)>,
    /// Queue tokens and tickets, of several sales.
    pub tokens: Vec<String>,
    /// The session id the tokens are bound to.
    pub sid: String,
    pub order: String,
    /// The decoded header and claims of every token in `tokens`.
    pub headers: Vec<Value>,
    pub claims: Vec<Value>,
}

/// The body a route expects, so a shaped body reaches past its parser.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Any,
    Join,
    Checkout,
    Sale,
    Event,
}

#[derive(Clone)]
pub struct Req {
    pub method: Method,
    /// Path and query, already percent-encoded where it has to be.
    pub path: String,
    pub headers: Vec<(&'static str, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Sign the body as the payment provider would.
    pub signed: bool,
}

impl std::fmt::Debug for Req {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lossy = |b: &[u8]| {
            let s = String::from_utf8_lossy(b);
            match s.chars().count() > 300 {
                true => format!(
                    "{}… ({} bytes)",
                    s.chars().take(300).collect::<String>(),
                    b.len()
                ),
                false => s.into_owned(),
            }
        };
        let headers: Vec<_> = self.headers.iter().map(|(n, v)| (n, lossy(v))).collect();
        f.debug_struct("Req")
            .field("method", &self.method)
            .field("path", &lossy(self.path.as_bytes()))
            .field("headers", &headers)
            .field("body", &lossy(&self.body))
            .field("signed", &self.signed)
            .finish()
    }
}

/// Every byte outside the unreserved set as `%XX`: any bytes become one valid path segment.
pub fn encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn b64(v: &[u8]) -> String {
    B64.encode(v)
}

/// A path segment naming a sale: real ones, valid-looking ones and garbage.
pub fn sale(k: &Known) -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(k.sales.clone()),
        2 => "[a-z0-9-]{1,64}",
        1 => "[a-z0-9-]{65,100}",
        1 => Just("x".repeat(3000)),
        2 => any::<String>().prop_map(|s| encode(s.as_bytes())),
        2 => vec(any::<u8>(), 1..30).prop_map(|b| encode(&b)),
        // Raw, with stray and broken percent escapes.
        2 => "([A-Za-z0-9_.~!$&'()*+,;=:@-]|%[0-9a-fA-F]{0,2}){1,30}",
    ]
    .boxed()
}

/// A real token with one character changed, or segments of two real tokens spliced.
fn tampered(k: &Known) -> BoxedStrategy<String> {
    let t = select(k.tokens.clone());
    (t.clone(), t, any::<usize>(), any::<u8>(), any::<bool>())
        .prop_map(|(a, b, at, c, splice)| {
            if splice {
                let (a, b): (Vec<_>, Vec<_>) = (a.split('.').collect(), b.split('.').collect());
                return format!("{}.{}.{}", a[0], b[1], a[2]);
            }
            let mut chars: Vec<char> = a.chars().collect();
            let i = at % chars.len();
            chars[i] = (b'A' + c % 26) as char;
            chars.into_iter().collect()
        })
        .boxed()
}

/// A JWT-shaped token: a header naming some algorithm and key, real claims with some
/// changed, and a real or random signature.
fn jwt(k: &Known) -> BoxedStrategy<String> {
    let alg = prop_oneof![
        select(vec![
            "none", "HS256", "EdDSA", "RS256", "ES256", "HS512", ""
        ])
        .prop_map(Value::from),
        json_value(),
    ];
    let kid = prop_oneof![
        select(k.headers.clone()).prop_map(|h| h["kid"].clone()),
        json_value(),
    ];
    let header = (select(k.headers.clone()), alg, proptest::option::of(kid)).prop_map(
        |(mut h, alg, kid)| {
            h["alg"] = alg;
            match kid {
                Some(kid) => h["kid"] = kid,
                None => drop(h.as_object_mut().map(|o| o.remove("kid"))),
            }
            serde_json::to_vec(&h).unwrap()
        },
    );
    let field = select(vec![
        "iss", "aud", "typ", "sub", "exp", "iat", "t", "seq", "sid", "jti",
    ]);
    let claim = prop_oneof![
        select(k.sales.clone()).prop_map(Value::from),
        select(vec!["queue", "ticket", "waitroom"]).prop_map(Value::from),
        Just(json!(4102444800i64)),
        json_value(),
    ];
    let claims = (
        select(k.claims.clone()),
        vec((field, proptest::option::of(claim)), 0..4),
    )
        .prop_map(|(mut c, edits)| {
            for (f, v) in edits {
                match v {
                    Some(v) => c[f] = v,
                    None => drop(c.as_object_mut().map(|o| o.remove(f))),
                }
            }
            serde_json::to_vec(&c).unwrap()
        });
    let payload = prop_oneof![4 => claims, 1 => vec(any::<u8>(), 0..40)];
    let real_sig = select(k.tokens.clone()).prop_map(|t| t.rsplit('.').next().unwrap().into());
    let sig = prop_oneof![real_sig, "[A-Za-z0-9_-]{0,90}", "[ -~]{0,20}"];
    (header, payload, sig)
        .prop_map(|(h, p, s): (Vec<u8>, Vec<u8>, String)| format!("{}.{}.{s}", b64(&h), b64(&p)))
        .boxed()
}

pub fn token(k: &Known) -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(k.tokens.clone()),
        2 => tampered(k),
        3 => jwt(k),
        1 => vec("[A-Za-z0-9_-]{0,40}", 1..6).prop_map(|v| v.join(".")),
        1 => "[ -~]{0,200}",
        1 => Just(String::new()),
    ]
    .boxed()
}

/// A header value: printable ASCII and obs-text bytes (which are not UTF-8).
fn garbage_header() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        "[ -~]{0,100}".prop_map(String::into_bytes),
        vec(
            prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')],
            0..100
        ),
    ]
    .boxed()
}

/// An Authorization header; the admin's token mostly when `admin`, so most admin cases get
/// past the check to the handler.
fn authorization(k: &Known, admin: bool) -> BoxedStrategy<Option<Vec<u8>>> {
    let key = waitroom_testkit::ADMIN_TOKEN;
    let key_weight = if admin { 12 } else { 1 };
    prop_oneof![
        2 => Just(None),
        5 => token(k).prop_map(|t| Some(format!("Bearer {t}").into_bytes())),
        key_weight => Just(Some(format!("Bearer {key}").into_bytes())),
        1 => select(vec![
            format!("Bearer  {key} "), format!("bearer {key}"), format!("Bearer {key}x"),
            "Bearer".into(), "Bearer ".into(), "Bearer    ".into(), "Basic dXNlcjpwYXNz".into(),
        ]).prop_map(|v| Some(v.into_bytes())),
        1 => token(k).prop_map(|t| Some(t.into_bytes())),
        1 => garbage_header().prop_map(Some),
    ]
    .boxed()
}

fn cookie(k: &Known) -> BoxedStrategy<Option<Vec<u8>>> {
    let sid = prop_oneof![
        3 => Just(k.sid.clone()),
        1 => "[A-Za-z0-9_-]{22}",
        1 => "[ -~]{0,40}",
    ];
    let pair = prop_oneof![
        3 => sid.clone().prop_map(|s| format!("wr_sid={s}")),
        1 => sid.prop_map(|s| format!("__Host-wr_sid={s}")),
        2 => token(k).prop_map(|t| format!("wr_queue={t}")),
        2 => token(k).prop_map(|t| format!("wr_ticket={t}")),
        1 => "[ -~]{0,30}",
    ];
    prop_oneof![
        1 => Just(None),
        3 => vec(pair, 1..4).prop_map(|p| Some(p.join("; ").into_bytes())),
        1 => garbage_header().prop_map(Some),
    ]
    .boxed()
}

pub fn extra_header(k: &Known) -> BoxedStrategy<(&'static str, Vec<u8>)> {
    let ip = prop_oneof![
        "[0-9]{1,3}(\\.[0-9]{1,3}){3}",
        "[0-9a-f:]{2,40}",
        Just("::ffff:1.2.3.4".to_string()),
        "[ -~]{0,20}",
    ];
    let forwarded = vec(ip, 0..6).prop_map(|v| v.join(", ").into_bytes());
    let content_type = select(vec![
        "application/json",
        "application/json; charset=utf-16",
        "text/plain",
        "",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=",
        "*/*",
        "application/json; charset=\u{7f}",
    ])
    .prop_map(|v| v.as_bytes().to_vec());
    let signature = prop_oneof!["sha256=[0-9a-f]{0,70}", "sha256=[ -~]{0,70}", "[ -~]{0,70}",];
    prop_oneof![
        2 => forwarded.clone().prop_map(|v| ("x-forwarded-for", v)),
        1 => forwarded.prop_map(|v| ("cf-connecting-ip", v)),
        1 => select(vec!["https", "http", "HTTPS", "gopher", "https, http"])
            .prop_map(|v| ("x-forwarded-proto", v.as_bytes().to_vec())),
        2 => prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[0-9]{20,40}",
            "[ -~]{0,30}",
        ].prop_map(|v| ("last-event-id", v.into_bytes())),
        1 => sale(k).prop_map(|v| ("x-waitroom-sale", v.into_bytes())),
        2 => content_type.prop_map(|v| ("content-type", v)),
        2 => signature.prop_map(|v| ("x-waitroom-signature", v.into_bytes())),
        1 => (1000usize..8000).prop_map(|n| ("x-pad", vec![b'a'; n])),
        1 => garbage_header().prop_map(|v| ("x-garbage", v)),
    ]
    .boxed()
}

/// Headers of a request; a JSON content type first, most of the time, so most bodies are read.
pub fn headers(k: &Known, admin: bool) -> BoxedStrategy<Vec<(&'static str, Vec<u8>)>> {
    let json = proptest::bool::weighted(0.7);
    (
        json,
        authorization(k, admin),
        cookie(k),
        vec(extra_header(k), 0..4),
    )
        .prop_map(|(json, auth, cookie, extra)| {
            let mut headers = Vec::new();
            if json {
                headers.push(("content-type", b"application/json".to_vec()));
            }
            headers.extend(extra);
            headers.extend(auth.map(|v| ("authorization", v)));
            headers.extend(cookie.map(|v| ("cookie", v)));
            headers
        })
        .boxed()
}
