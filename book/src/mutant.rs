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
}

impl Mutant {
    pub const ALL: [Mutant; 2] = [Mutant::IntentIdWithOpenCounter, Mutant::NonIdempotentCreate];

    pub fn name(self) -> &'static str {
        match self {
            Mutant::IntentIdWithOpenCounter => "intent-id-with-open-counter",
            Mutant::NonIdempotentCreate => "non-idempotent-create",
        }
    }
}

/// Bumped by every `Book::open` under [`Mutant::IntentIdWithOpenCounter`].
pub(crate) static OPEN_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn next_open_count() -> u64 {
    OPEN_COUNTER.fetch_add(1, Ordering::SeqCst) + 1
}
