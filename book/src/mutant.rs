//! Deliberately broken variants of the book, one known bug each.
//!
//! A gate that cannot catch a broken book proves nothing, so every gate has a test that
//! runs it against a mutant and asserts that it fails. With no mutant selected
//! (`BookOptions::mutant == None`) no code path below changes behaviour.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// The intent id mixes in a per-process counter bumped on every open, so the same
    /// signal after a restart gets a new id and is placed a second time.
    IntentIdWithOpenCounter,
    /// Creating an intent skips the "does it already exist" lookup and writes a fresh,
    /// suffixed intent for a signal it has already placed (an insert that is not idempotent).
    NonIdempotentCreate,
    /// A new intent's `created_ts` comes from the wall clock instead of the book's Clock.
    WallClockTimestamp,
    /// The `intent.reserved` payload is serialised from a HashMap, so its key order
    /// follows the map's random iteration order.
    HashMapPayloadOrder,
    /// The `intent.reserved` payload carries the price formatted through a float (in
    /// major units), not the fixed-point integer.
    FloatPrice,
    /// Recovery re-places every executing intent at the venue without asking whether the
    /// venue already has it.
    BlindReplaceOnRecovery,
    /// Today's trade count is kept in the process and written as an absolute value, so a
    /// restart resets it to zero.
    DailyCounterInMemory,
    /// The confirm commits the order row in a transaction of its own before the rest
    /// (fills, position, intent `completed`): a crash between leaves half a confirm.
    ConfirmSplitInTwo,
    /// The day roll writes its checkpoint in a transaction of its own before the work it
    /// covers: a crash between makes the restarted book believe the day was rolled.
    CheckpointBeforeWork,
}

impl Mutant {
    pub const ALL: [Mutant; 9] = [
        Mutant::IntentIdWithOpenCounter,
        Mutant::NonIdempotentCreate,
        Mutant::WallClockTimestamp,
        Mutant::HashMapPayloadOrder,
        Mutant::FloatPrice,
        Mutant::BlindReplaceOnRecovery,
        Mutant::DailyCounterInMemory,
        Mutant::ConfirmSplitInTwo,
        Mutant::CheckpointBeforeWork,
    ];

    /// The mutant with this [`Mutant::name`].
    pub fn parse(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|mutant| mutant.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Mutant::IntentIdWithOpenCounter => "intent-id-with-open-counter",
            Mutant::NonIdempotentCreate => "non-idempotent-create",
            Mutant::WallClockTimestamp => "wall-clock-timestamp",
            Mutant::HashMapPayloadOrder => "hash-map-payload-order",
            Mutant::FloatPrice => "float-price",
            Mutant::BlindReplaceOnRecovery => "blind-replace-on-recovery",
            Mutant::DailyCounterInMemory => "daily-counter-in-memory",
            Mutant::ConfirmSplitInTwo => "confirm-split-in-two",
            Mutant::CheckpointBeforeWork => "checkpoint-before-work",
        }
    }
}

/// Bumped by every `Book::open` under [`Mutant::IntentIdWithOpenCounter`].
pub(crate) static OPEN_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn next_open_count() -> u64 {
    OPEN_COUNTER.fetch_add(1, Ordering::SeqCst) + 1
}

/// The wall clock, in nanoseconds since the Unix epoch: exactly what the book must never
/// persist. Lives here, and only here, so that the deliberate bug is easy to find.
pub(crate) fn wall_clock_nanos() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
}

/// `payload` rendered in a HashMap's iteration order (random per map) instead of sorted.
pub(crate) fn hash_map_order(payload: &serde_json::Value) -> String {
    let map: std::collections::HashMap<&String, &serde_json::Value> = payload
        .as_object()
        .map(|object| object.iter().collect())
        .unwrap_or_default();
    let fields: Vec<String> = map
        .iter()
        .map(|(key, value)| format!("{}:{value}", serde_json::Value::String((*key).clone())))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// `payload` with its integer `price` (minor units) replaced by a float in major units.
pub(crate) fn float_price(mut payload: serde_json::Value) -> serde_json::Value {
    if let Some(price) = payload.get("price").and_then(serde_json::Value::as_i64) {
        let major = price as f64 / 100.0;
        payload["price"] = serde_json::json!(major);
    }
    payload
}
