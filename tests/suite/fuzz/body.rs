//! The bodies the fuzzer sends: JSON of any shape, the shape a route wants with a field or two
//! wrong, and bytes that are not JSON at all.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Map, Value};

use super::gen::{token, Known, Shape};

/// Text with what a database or a parser may choke on: NULs, control characters, any
/// unicode, a long run.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "[a-z]{0,8}\\x00[a-z]{0,8}",
        1 => "[\\x00-\\x1f\\x7f]{1,8}",
        1 => "[a-z0-9-]{1,64}",
        1 => (1usize..5000).prop_map(|n| "é".repeat(n)),
    ]
    .boxed()
}

fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (-3i64..8).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => select(vec![i32::MAX as i64 + 1, i32::MIN as i64 - 1, i64::MAX, i64::MIN])
            .prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
        1 => Just(json!("2")),
        1 => Just(Value::Null),
    ]
    .boxed()
}

pub fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            vec(("[a-z_]{0,10}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// `base` with up to three fields replaced by other values or removed, and now and then a
/// field nobody asked for: mostly-valid bodies, so one bad field at a time reaches the flow.
fn edited(
    base: BoxedStrategy<Value>,
    fields: Vec<(&'static str, BoxedStrategy<Value>)>,
) -> BoxedStrategy<Value> {
    let names: Vec<&'static str> = fields.iter().map(|(n, _)| *n).collect();
    let edit = fields
        .into_iter()
        .map(|(name, v)| proptest::option::weighted(0.8, v).prop_map(move |v| (name, v)))
        .collect::<Vec<_>>();
    let pick = vec(select(names), 0..3);
    (
        base,
        edit,
        pick,
        proptest::option::weighted(0.1, json_value()),
    )
        .prop_map(|(mut o, edit, pick, extra)| {
            for name in pick {
                let (_, v) = edit.iter().find(|(n, _)| *n == name).unwrap();
                match v {
                    Some(v) => o[name] = v.clone(),
                    None => drop(o.as_object_mut().unwrap().remove(name)),
                }
            }
            if let Some(v) = extra {
                o["unexpected"] = v;
            }
            o
        })
        .boxed()
}

fn shaped(k: &Known, shape: Shape) -> BoxedStrategy<Value> {
    let s = |v: BoxedStrategy<String>| v.prop_map(Value::from).boxed();
    let any_or = |a: BoxedStrategy<Value>| prop_oneof![3 => a, 1 => json_value()].boxed();
    match shape {
        Shape::Any => json_value(),
        Shape::Join => {
            let base = prop_oneof![
                Just(json!({})),
                select(k.tokens.clone()).prop_map(|t| json!({ "token": t })),
            ];
            edited(
                base.boxed(),
                vec![
                    ("token", any_or(s(token(k)))),
                    ("challenge", any_or(s(text()))),
                    ("nonce", any_or(s(text()))),
                ],
            )
        }
        Shape::Checkout => edited(Just(json!({})).boxed(), vec![("quantity", number())]),
        Shape::Sale => {
            // A fresh id and a fuzzed name: the rest valid unless edited.
            let base = ("fz-[a-z0-9]{10}", text()).prop_map(
                |(id, name)| json!({"id": id, "name": name, "units": 5, "price_cents": 100}),
            );
            let id = prop_oneof![select(k.sales.clone()), text()];
            let mut fields = vec![("id", any_or(s(id.boxed()))), ("name", any_or(s(text())))];
            for f in [
                "units",
                "price_cents",
                "rate_per_sec",
                "ticket_ttl_secs",
                "max_per_order",
                "max_active",
                "hold_secs",
                "max_places_per_client",
                "pow_difficulty",
            ] {
                fields.push((f, number()));
            }
            edited(base.boxed(), fields)
        }
        Shape::Event => {
            let outcome = || select(vec!["succeeded", "failed", "refunded", ""]);
            let base = (text(), outcome()).prop_map({
                let order = k.order.clone();
                move |(id, outcome)| json!({"order_id": order, "event_id": id, "outcome": outcome})
            });
            let order = prop_oneof![Just(uuid::Uuid::nil().to_string()), "[0-9a-f-]{0,40}"];
            edited(
                base.boxed(),
                vec![
                    ("order_id", any_or(s(order.boxed()))),
                    ("event_id", any_or(s(text()))),
                    (
                        "outcome",
                        any_or(s(outcome().prop_map(String::from).boxed())),
                    ),
                ],
            )
        }
    }
}

pub fn body(k: &Known, shape: Shape) -> BoxedStrategy<Vec<u8>> {
    let raw = select(vec![
        r#"{"quantity":1e400}"#,
        r#"{"quantity":-0}"#,
        "99999999999999999999999999",
        "1e-400",
        r#"{"token":"\ud800"}"#,
        r#"{"a":1,"a":2}"#,
        "\u{feff}{}",
        "null",
        "[]",
        "{",
    ]);
    prop_oneof![
        6 => shaped(k, shape).prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => Just(Vec::new()),
        1 => Just(b"  \r\n\t".to_vec()),
        2 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => vec(any::<u8>(), 0..200),
        1 => (1usize..3000).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes()),
        1 => (1usize..3000).prop_map(|d| r#"{"a":"#.repeat(d).into_bytes()),
        1 => raw.prop_map(|r| r.as_bytes().to_vec()),
        1 => (16_000usize..20_000).prop_map(|n| vec![b' '; n]),
    ]
    .boxed()
}
