//! What a sale's streams share: its progress (one frame per change, serialised once) and the
//! rare sale events a flip of it announces.

use bytestring::ByteString;
use serde::Serialize;

use crate::core::domain::{VariantId, VariantsLeft};

/// What every waiting shopper of a sale sees each tick. The page derives its own place from
/// `admitted_total` and the position it was given, so this is the same for every shopper.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Progress {
    pub admitted_total: i64,
    pub queue_len: i64,
    pub remaining: i64,
    pub rate_per_sec: i64,
    pub open: bool,
    /// No units left now. With units `held` for payment the line is a waitlist (some may
    /// come back); sold out for good once none are held.
    pub sold_out: bool,
    pub held: i64,
    /// Each variant's units left, in a sale with variants: still one frame per tick.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variants_left: Option<VariantsLeft>,
}

impl Progress {
    /// Nothing left and nothing that could come back.
    pub fn sold_out_for_good(&self) -> bool {
        self.sold_out && self.held <= 0
    }
}

/// Progress with its JSON made once per change, not once per stream: with 50,000 streams a
/// tick's fan-out then costs a reference-count bump per stream instead of a serialisation.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub progress: Progress,
    pub json: ByteString,
}

impl Frame {
    pub(super) fn new(progress: Progress) -> Self {
        let json = serde_json::to_string(&progress)
            .expect("progress serializes")
            .into();
        Self { progress, json }
    }
}

impl std::ops::Deref for Frame {
    type Target = Progress;
    fn deref(&self) -> &Progress {
        &self.progress
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaleEvent {
    Opened,
    Closed,
    /// The last unit is held for payment: who waits is on the waitlist.
    Waitlisted,
    SoldOut,
    Restocked,
    /// This variant has no units left (others have).
    VariantSoldOut(VariantId),
}

impl SaleEvent {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Opened => "opened",
            Self::Closed => "closed",
            Self::Waitlisted => "waitlisted",
            Self::SoldOut => "sold_out",
            Self::Restocked => "restocked",
            Self::VariantSoldOut(_) => "variant_sold_out",
        }
    }

    /// The variant it is about, if any.
    pub fn variant(&self) -> Option<&VariantId> {
        match self {
            Self::VariantSoldOut(v) => Some(v),
            _ => None,
        }
    }
}

/// The variants that had units before and have none now.
pub(super) fn variants_gone(
    before: &Option<VariantsLeft>,
    now: &Option<VariantsLeft>,
) -> impl Iterator<Item = SaleEvent> {
    let gone: Vec<SaleEvent> = match (before, now) {
        (Some(before), Some(now)) => now
            .iter()
            .filter(|(v, left)| **left <= 0 && before.get(*v).is_some_and(|b| *b > 0))
            .map(|(v, _)| SaleEvent::VariantSoldOut(v.clone()))
            .collect(),
        _ => Vec::new(),
    };
    gone.into_iter()
}
