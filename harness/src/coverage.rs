//! Coverage you can read: how often each invariant had something to check, each crash
//! point was crashed at, each venue fault took effect, and each answer was given. Every run
//! counts; each case writes its counts to its record and `cargo xtask verify` prints the
//! sum. A row that stays at zero in the default run is a gap in the generator.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::invariants::{self, Tally};
use crate::venue::Fault;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// `kind:name` -> count, for example `invariant:order_fills_match_venue`,
    /// `crash:confirm.before_commit`, `fault:order_appears_late`, `answer:limit_reached`.
    pub counts: BTreeMap<String, u64>,
}

impl Coverage {
    pub fn add(&mut self, kind: &str, name: &str, count: u64) {
        *self.counts.entry(format!("{kind}:{name}")).or_default() += count;
    }

    pub fn merge(&mut self, other: &Coverage) {
        for (key, count) in &other.counts {
            *self.counts.entry(key.clone()).or_default() += count;
        }
    }

    pub fn add_tally(&mut self, tally: &Tally) {
        for (name, count) in &tally.nonvacuous {
            self.add("invariant", name, *count);
        }
    }

    pub fn add_faults(&mut self, happened: &BTreeMap<&'static str, u64>) {
        for (name, count) in happened {
            self.add("fault", name, *count);
        }
    }

    /// The rows every default run must fill: every invariant that is not a schema
    /// restatement and every venue fault. (Crash points and answers are listed as they
    /// occur: their universe is the book's.)
    pub fn expected_rows() -> Vec<String> {
        invariants::names()
            .into_iter()
            .filter(|name| !invariants::RESTATES_SCHEMA.contains(name))
            .map(|name| format!("invariant:{name}"))
            .chain(Fault::NAMES.iter().map(|name| format!("fault:{name}")))
            .collect()
    }
}
