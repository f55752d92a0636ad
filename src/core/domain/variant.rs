//! Variants: the sizes of a sale, each with stock of its own (issue 21). A sale declares them
//! once at creation; a PATCH may only grow a variant's units (and rename it).

use serde::{Deserialize, Serialize};

use super::{plain_text, slug, InvalidInput};

/// At most this many variants per sale: the page's picker and one progress frame per tick
/// stay small.
pub const MAX_VARIANTS: usize = 100;

/// Each variant's units left, as Redis counts them (`vstock`) and the page shows them.
pub type VariantsLeft = std::collections::BTreeMap<VariantId, i64>;

/// One variant as declared: `units` is its stock, the sale's `units` their sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub id: VariantId,
    pub name: String,
    pub units: i32,
}

/// `[a-z0-9-]{1,32}` (`slug`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct VariantId(String);

impl VariantId {
    pub fn parse(s: &str) -> Result<Self, InvalidInput> {
        if slug(s, 32) {
            Ok(Self(s.to_string()))
        } else {
            Err(InvalidInput::new(
                "invalid_variant",
                "a variant id is 1 to 32 characters of a-z, 0-9 and -",
            ))
        }
    }
}

text_newtype!(VariantId);

/// One variant as an operator reads it: declared, left (Redis) and sold (the ledger), where
/// the reader has them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantStock {
    pub id: VariantId,
    pub name: String,
    pub units: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sold: Option<i64>,
}

/// The declared variants, in declaration order, with what is known of each.
pub fn by_variant(
    declared: &[Variant],
    left: Option<&VariantsLeft>,
    sold: Option<&VariantsLeft>,
) -> Vec<VariantStock> {
    declared
        .iter()
        .map(|v| VariantStock {
            id: v.id.clone(),
            name: v.name.clone(),
            units: v.units,
            left: left.and_then(|l| l.get(&v.id).copied()),
            sold: sold.and_then(|s| s.get(&v.id).copied()),
        })
        .collect()
}

fn invalid(message: String) -> InvalidInput {
    InvalidInput::new("invalid_sale", message)
}

/// Checks a declaration (names trimmed) and returns the units it adds up to.
pub fn checked(variants: &mut [Variant], max_units: i32) -> Result<i32, InvalidInput> {
    if variants.len() > MAX_VARIANTS {
        return Err(invalid(format!("at most {MAX_VARIANTS} variants")));
    }
    let mut sum: i64 = 0;
    let mut seen = std::collections::HashSet::new();
    for v in variants.iter_mut() {
        v.name = v.name.trim().to_string();
        if !plain_text(&v.name, 100) {
            return Err(invalid(format!(
                "variant {}: name must be 1 to 100 characters, none of them control characters",
                v.id
            )));
        }
        if !(0..=max_units).contains(&v.units) {
            return Err(invalid(format!(
                "variant {}: units must be between 0 and {max_units}",
                v.id
            )));
        }
        if !seen.insert(v.id.clone()) {
            return Err(invalid(format!("variant {} is declared twice", v.id)));
        }
        sum += i64::from(v.units);
    }
    i32::try_from(sum)
        .ok()
        .filter(|s| *s <= max_units)
        .ok_or_else(|| {
            invalid(format!(
                "the variants' units add up to more than {max_units}"
            ))
        })
}

/// A PATCH may restock (grow) and rename variants, never add, drop, reorder or shrink them:
/// shoppers were told what each size has left.
pub fn change_refused(old: &[Variant], new: &[Variant]) -> Result<(), VariantChange> {
    let same_ids = old.len() == new.len() && old.iter().zip(new).all(|(a, b)| a.id == b.id);
    if !same_ids {
        return Err(VariantChange::NotTheSame);
    }
    match old.iter().zip(new).find(|(a, b)| b.units < a.units) {
        Some((a, _)) => Err(VariantChange::Shrinks(a.id.clone(), a.units)),
        None => Ok(()),
    }
}

/// Why a PATCH of `variants` is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum VariantChange {
    /// Other ids, or in another order, than the sale was created with.
    NotTheSame,
    /// This variant has these units; they may only grow.
    Shrinks(VariantId, i32),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, units: i32) -> Variant {
        Variant {
            id: VariantId::parse(id).unwrap(),
            name: format!(" Size {id} "),
            units,
        }
    }

    #[test]
    fn a_declaration_adds_up_and_refuses_what_cannot_be() {
        let mut ok = vec![v("38", 5), v("39", 7)];
        assert_eq!(checked(&mut ok, 100).unwrap(), 12);
        assert_eq!(ok[0].name, "Size 38");
        assert!(checked(&mut [v("38", 1), v("38", 1)], 100).is_err());
        assert!(checked(&mut [v("38", 60), v("39", 60)], 100).is_err());
        assert!(checked(&mut [v("38", -1)], 100).is_err());
        let many: Vec<Variant> = (0..=MAX_VARIANTS).map(|i| v(&i.to_string(), 1)).collect();
        assert!(checked(&mut many.clone(), 1000).is_err());
        for bad in ["", "Size", "a b", &"x".repeat(33)] {
            assert!(VariantId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_change_only_grows_the_same_variants() {
        let old = [v("38", 5), v("39", 7)];
        assert_eq!(change_refused(&old, &[v("38", 6), v("39", 7)]), Ok(()));
        assert_eq!(
            change_refused(&old, &[v("38", 4), v("39", 7)]),
            Err(VariantChange::Shrinks(VariantId::parse("38").unwrap(), 5))
        );
        for other in [vec![v("38", 5)], vec![v("39", 7), v("38", 5)]] {
            assert_eq!(change_refused(&old, &other), Err(VariantChange::NotTheSame));
        }
    }
}
