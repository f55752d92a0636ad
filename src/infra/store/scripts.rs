//! Every Lua script, with the keys it touches declared once, here.
//!
//! A script names its keys as `K.<name>`: the prelude `local K = {name = KEYS[i], ...}` is
//! built from the declaration below and prepended at load time, so the keys a call sends and
//! the names the script reads cannot drift apart. All keys are one sale's (`{<sale>}`), so
//! each script touches a single Redis Cluster slot. `lua/prelude.lua` follows the keys table in
//! every script: the helpers several scripts share.
//!
//! Scripts go by SHA (`EVALSHA`). Redis answering `NOSCRIPT` means it restarted, failed over
//! or was flushed, and may have lost its last writes: before loading the scripts again, the
//! store marks every sale `unsettled` (see `Store::scripts_lost`), so no checkout sells from
//! a stock that went back in time. Hence not the redis crate's `invoke_async`, which reloads
//! without telling.

use std::fmt::Write;
use std::sync::OnceLock;

use redis::{Cmd, FromRedisValue, Script, ToRedisArgs};

use super::{key, Store};
use crate::core::domain::SaleId;
use crate::core::fault::Fault;

/// What several scripts share (Redis TIME in ms and µs, the held recount), after `K`.
const PRELUDE: &str = include_str!("../../../lua/prelude.lua");

pub struct Lua {
    body: &'static str,
    keys: &'static [&'static str],
    script: OnceLock<Script>,
}

impl Lua {
    const fn new(body: &'static str, keys: &'static [&'static str]) -> Self {
        Self {
            body,
            keys,
            script: OnceLock::new(),
        }
    }

    fn script(&'static self) -> &'static Script {
        self.script.get_or_init(|| {
            let mut src = String::from("local K = {");
            for (i, k) in self.keys.iter().enumerate() {
                let _ = write!(src, "{k} = KEYS[{}], ", i + 1);
            }
            src.push_str("}\n");
            src.push_str(PRELUDE);
            src.push_str(self.body);
            Script::new(&src)
        })
    }

    /// A call of this script on one sale, its keys already in place: add the ARGV.
    pub fn on(&'static self, sale: &SaleId) -> Call {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.hash()).arg(self.keys.len());
        for k in self.keys {
            cmd.arg(key(sale, k));
        }
        Call(cmd)
    }

    /// The SHA1 Redis knows it by.
    pub fn hash(&'static self) -> &'static str {
        self.script().get_hash()
    }

    /// The script, to `SCRIPT LOAD` it.
    pub fn source(&'static self) -> &'static Script {
        self.script()
    }
}

/// One `EVALSHA` being built.
pub struct Call(Cmd);

impl Call {
    pub fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.0.arg(arg);
        self
    }

    /// Runs the script; on `NOSCRIPT` lets the store react to the restart, then once more.
    pub async fn run<T: FromRedisValue>(&self, store: &Store) -> Result<T, Fault> {
        match self.0.query_async(&mut store.conn()).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                store.scripts_lost().await?;
                Ok(self.0.query_async(&mut store.conn()).await?)
            }
            reply => Ok(reply?),
        }
    }
}

pub static ENQUEUE: Lua = Lua::new(
    include_str!("../../../lua/enqueue.lua"),
    &[
        "cfg", "queue", "admitted", "expired", "used", "stock", "seq", "open", "places", "held",
    ],
);
pub static ADMIT: Lua = Lua::new(
    include_str!("../../../lua/admit.lua"),
    &[
        "open", "cfg", "stock", "queue", "admitted", "bucket", "expired", "events", "admits",
        "places", "held", "vstock",
    ],
);
pub static CHECKOUT: Lua = Lua::new(
    include_str!("../../../lua/checkout.lua"),
    &[
        "admitted",
        "used",
        "stock",
        "expired",
        "pending",
        "events",
        "cfg",
        "unsettled",
        "queue",
        "held",
        "places",
        "vstock",
    ],
);
pub static RELEASE: Lua = Lua::new(
    include_str!("../../../lua/release.lua"),
    &[
        "cfg",
        "stock",
        "events",
        "used",
        "expired",
        "released",
        "unsettled",
        "held",
        "failed",
        "vstock",
    ],
);
pub static PAID: Lua = Lua::new(
    include_str!("../../../lua/paid.lua"),
    &["paid", "held", "cfg", "stock", "events"],
);
pub static REFUND: Lua = Lua::new(
    include_str!("../../../lua/refund.lua"),
    &["refunds", "events"],
);
pub static REBUILD: Lua = Lua::new(
    include_str!("../../../lua/rebuild.lua"),
    &[
        "cfg",
        "stock",
        "used",
        "expired",
        "released",
        "unsettled",
        "open",
        "events",
        "paid",
        "held",
        "failed",
        "refunds",
        "admitted",
        "vstock",
        "vunits",
    ],
);
pub static SETTLE: Lua = Lua::new(
    include_str!("../../../lua/settle.lua"),
    &[
        "stock",
        "pending",
        "used",
        "events",
        "expired",
        "released",
        "unsettled",
        "admitted",
        "open",
        "paid",
        "held",
        "failed",
        "refunds",
        "vstock",
        "vunits",
    ],
);
pub static SETTLE_ORDER: Lua = Lua::new(
    include_str!("../../../lua/settle_order.lua"),
    &["stock", "events", "used", "expired", "pending", "vstock"],
);

pub static CHANGE: Lua = Lua::new(
    include_str!("../../../lua/change.lua"),
    &[
        "cfg",
        "stock",
        "unsettled",
        "events",
        "queue",
        "places",
        "vstock",
        "vunits",
    ],
);
pub static SCHEDULE: Lua = Lua::new(
    include_str!("../../../lua/schedule.lua"),
    &["cfg", "open", "events"],
);

pub static DRAW: Lua = Lua::new(
    include_str!("../../../lua/draw.lua"),
    &["cfg", "open", "queue", "seq"],
);

pub static ALL: [&Lua; 12] = [
    &DRAW,
    &PAID,
    &REFUND,
    &ENQUEUE,
    &ADMIT,
    &CHECKOUT,
    &RELEASE,
    &REBUILD,
    &SETTLE,
    &SETTLE_ORDER,
    &CHANGE,
    &SCHEDULE,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished sale's expiry covers every key a script may write.
    #[test]
    fn sale_keys_cover_every_script_key() {
        for lua in ALL {
            for k in lua.keys {
                assert!(
                    *k == "events" || super::super::SALE_KEYS.contains(k),
                    "{k} is not in SALE_KEYS"
                );
            }
        }
    }

    /// Each script uses exactly the keys it declares, and only through `K`.
    #[test]
    fn scripts_use_their_declared_keys() {
        // Which keys each prelude function names (lua/prelude.lua), checked against it.
        let prelude_keys: [(&str, &[&str]); 7] = [
            ("recount_held", &["used", "paid", "held"]),
            ("variants_left", &["vstock"]),
            ("count_variants", &["vstock", "vunits"]),
            ("places_cap", &["cfg"]),
            ("count_place", &["places"]),
            ("free_place", &["places"]),
            ("recount_places", &["places", "queue"]),
        ];
        for (f, keys) in prelude_keys {
            let at = PRELUDE
                .find(&format!("local function {f}("))
                .unwrap_or_else(|| panic!("the prelude defines {f}"));
            let body = &PRELUDE[at..];
            let body = &body[..body.find("\nend\n").unwrap_or(body.len())];
            for k in keys {
                let named = body.contains(&format!("K.{k}"))
                    || prelude_keys
                        .iter()
                        .any(|(g, ks)| body.contains(&format!("{g}(")) && ks.contains(k));
                assert!(named, "the prelude's {f} names K.{k}");
            }
        }
        for lua in ALL {
            assert!(
                !lua.body.contains("KEYS["),
                "a script indexes KEYS directly"
            );
            let mut used: Vec<&str> = lua
                .body
                .match_indices("K.")
                .filter(|(i, _)| *i == 0 || !lua.body.as_bytes()[i - 1].is_ascii_alphanumeric())
                .map(|(i, _)| {
                    let rest = &lua.body[i + 2..];
                    let end = rest
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(rest.len());
                    &rest[..end]
                })
                .collect();
            // The prelude's functions use keys too: a script calling one declares them.
            for (f, keys) in prelude_keys {
                if lua.body.contains(&format!("{f}(")) {
                    used.extend(keys);
                }
            }
            used.sort_unstable();
            used.dedup();
            let mut declared = lua.keys.to_vec();
            declared.sort_unstable();
            assert_eq!(used, declared, "keys used vs declared in:\n{}", lua.body);
        }
    }
}
