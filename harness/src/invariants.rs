//! The invariants of SPEC §3, each a named check over a canonical dump. Gates run them
//! after every step; a violation names the invariant and the rows that break it.

use std::collections::{BTreeMap, BTreeSet};

use book::store::Value;

use crate::dump::Dump;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "invariant {} violated: {}",
            self.invariant, self.detail
        )
    }
}

/// When the dump was taken: some invariants only hold once recovery has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between steps of a live run: an intent may be `executing` (a crash can leave one).
    Running,
    /// After `recover`: nothing may be left `executing`.
    Recovered,
}

type InvariantFn = fn(&Dump, &mut Vec<Violation>);

/// The invariants that hold between any two steps.
const ALWAYS: &[(&str, InvariantFn)] = &[
    (
        "one_order_per_client_order_id",
        one_order_per_client_order_id,
    ),
    ("position_equals_its_fills", position_equals_its_fills),
    (
        "counters_match_open_positions",
        counters_match_open_positions,
    ),
    (
        "one_entry_per_window_and_strategy",
        one_entry_per_window_and_strategy,
    ),
    (
        "nothing_placed_while_breaker_open",
        nothing_placed_while_breaker_open,
    ),
    ("event_seq_contiguous", event_seq_contiguous),
    ("completed_intent_has_order", completed_intent_has_order),
];

/// The invariants that hold once recovery has run.
const AFTER_RECOVERY: &[(&str, InvariantFn)] =
    &[("no_intent_left_executing", no_intent_left_executing)];

fn invariants(phase: Phase) -> impl Iterator<Item = &'static (&'static str, InvariantFn)> {
    let recovered: &[(&str, InvariantFn)] = match phase {
        Phase::Running => &[],
        Phase::Recovered => AFTER_RECOVERY,
    };
    ALWAYS.iter().chain(recovered)
}

/// Every invariant for `phase`, in a fixed order. Returns all violations, not just the
/// first.
pub fn check(dump: &Dump, phase: Phase) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (_, invariant) in invariants(phase) {
        invariant(dump, &mut violations);
    }
    violations
}

/// The names of the invariants [`check`] evaluates in `phase`.
pub fn names(phase: Phase) -> Vec<&'static str> {
    invariants(phase).map(|(name, _)| *name).collect()
}

fn int(value: &Value) -> i64 {
    value.as_int().unwrap_or_default()
}

fn text(value: &Value) -> &str {
    value.as_text().unwrap_or_default()
}

fn one_order_per_client_order_id(dump: &Dump, violations: &mut Vec<Violation>) {
    let orders = dump.table("orders");
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut per_intent: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &orders.rows {
        *seen
            .entry(text(orders.get(row, "client_order_id")))
            .or_default() += 1;
        *per_intent
            .entry(text(orders.get(row, "intent_id")))
            .or_default() += 1;
    }
    for (client_order_id, count) in seen.into_iter().filter(|(_, count)| *count > 1) {
        violations.push(Violation {
            invariant: "one_order_per_client_order_id",
            detail: format!("client order id {client_order_id} has {count} orders"),
        });
    }
    for (intent_id, count) in per_intent.into_iter().filter(|(_, count)| *count > 1) {
        violations.push(Violation {
            invariant: "one_order_per_client_order_id",
            detail: format!("intent {intent_id} has {count} orders"),
        });
    }
}

fn position_equals_its_fills(dump: &Dump, violations: &mut Vec<Violation>) {
    let (intents, orders, fills, positions) = (
        dump.table("intents"),
        dump.table("orders"),
        dump.table("fills"),
        dump.table("positions"),
    );
    let side_of: BTreeMap<&str, &str> = intents
        .rows
        .iter()
        .map(|row| {
            (
                text(intents.get(row, "intent_id")),
                text(intents.get(row, "side")),
            )
        })
        .collect();
    let intent_of_order: BTreeMap<&str, &str> = orders
        .rows
        .iter()
        .map(|row| {
            (
                text(orders.get(row, "order_id")),
                text(orders.get(row, "intent_id")),
            )
        })
        .collect();
    let mut expected: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for row in &fills.rows {
        let order_id = text(fills.get(row, "order_id"));
        let Some(intent_id) = intent_of_order.get(order_id) else {
            violations.push(Violation {
                invariant: "position_equals_its_fills",
                detail: format!(
                    "fill {} belongs to no order",
                    text(fills.get(row, "fill_id"))
                ),
            });
            continue;
        };
        let sign = if side_of.get(intent_id) == Some(&"sell") {
            -1
        } else {
            1
        };
        let qty = sign * int(fills.get(row, "qty"));
        let entry = expected.entry(intent_id).or_default();
        entry.0 += qty;
        entry.1 += qty * int(fills.get(row, "price"));
    }
    for row in &positions.rows {
        let intent_id = text(positions.get(row, "intent_id"));
        let actual = (
            int(positions.get(row, "qty")),
            int(positions.get(row, "cost")),
        );
        let wanted = expected.remove(intent_id).unwrap_or_default();
        if actual != wanted {
            violations.push(Violation {
                invariant: "position_equals_its_fills",
                detail: format!(
                    "position {intent_id}: qty {} cost {}, but its fills sum to qty {} cost {}",
                    actual.0, actual.1, wanted.0, wanted.1
                ),
            });
        }
    }
    for (intent_id, (qty, _)) in expected {
        violations.push(Violation {
            invariant: "position_equals_its_fills",
            detail: format!("intent {intent_id} has fills (qty {qty}) but no position"),
        });
    }
}

fn counters_match_open_positions(dump: &Dump, violations: &mut Vec<Violation>) {
    let (intents, positions, counters) = (
        dump.table("intents"),
        dump.table("positions"),
        dump.table("position_counters"),
    );
    let open_positions: BTreeSet<&str> = positions
        .rows
        .iter()
        .filter(|row| text(positions.get(row, "status")) == "open")
        .map(|row| text(positions.get(row, "intent_id")))
        .collect();
    let (mut open_count, mut exposure) = (0_i64, 0_i64);
    for row in &intents.rows {
        let intent_id = text(intents.get(row, "intent_id"));
        if text(intents.get(row, "status")) == "executing" || open_positions.contains(intent_id) {
            open_count += 1;
            exposure += int(intents.get(row, "size")) * int(intents.get(row, "price"));
        }
    }
    let Some(row) = counters.rows.first() else {
        violations.push(Violation {
            invariant: "counters_match_open_positions",
            detail: "position_counters has no row".to_owned(),
        });
        return;
    };
    let (stored_count, stored_exposure) = (
        int(counters.get(row, "open_count")),
        int(counters.get(row, "exposure")),
    );
    if stored_count != open_count {
        violations.push(Violation {
            invariant: "counters_match_open_positions",
            detail: format!(
                "open_count is {stored_count} but {open_count} intents are executing or open"
            ),
        });
    }
    if stored_exposure != exposure {
        violations.push(Violation {
            invariant: "counters_match_open_positions",
            detail: format!(
                "exposure is {stored_exposure} but executing and open intents hold {exposure}"
            ),
        });
    }
}

fn one_entry_per_window_and_strategy(dump: &Dump, violations: &mut Vec<Violation>) {
    let entries = dump.table("window_entries");
    let mut seen = BTreeSet::new();
    for row in &entries.rows {
        let key = (
            text(entries.get(row, "window_id")),
            text(entries.get(row, "strategy_id")),
        );
        if !seen.insert(key) {
            violations.push(Violation {
                invariant: "one_entry_per_window_and_strategy",
                detail: format!(
                    "window {} has more than one entry for strategy {}",
                    key.0, key.1
                ),
            });
        }
    }
}

fn nothing_placed_while_breaker_open(dump: &Dump, violations: &mut Vec<Violation>) {
    // Events are sorted by (run_id, seq); the breaker is global, so walk each run in order.
    let events = dump.table("events");
    let mut open = false;
    for row in &events.rows {
        match text(events.get(row, "type")) {
            "breaker.tripped" => open = true,
            "breaker.reset" => open = false,
            "intent.reserved" if open => violations.push(Violation {
                invariant: "nothing_placed_while_breaker_open",
                detail: format!(
                    "event {} reserved an intent while the breaker was open: {}",
                    int(events.get(row, "seq")),
                    text(events.get(row, "payload"))
                ),
            }),
            _ => {}
        }
    }
}

fn event_seq_contiguous(dump: &Dump, violations: &mut Vec<Violation>) {
    let (events, runs) = (dump.table("events"), dump.table("runs"));
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for row in &events.rows {
        let run_id = text(events.get(row, "run_id"));
        let seq = int(events.get(row, "seq"));
        let previous = last.insert(run_id, seq).unwrap_or(0);
        if seq != previous + 1 {
            violations.push(Violation {
                invariant: "event_seq_contiguous",
                detail: format!("run {run_id}: seq {seq} follows {previous}"),
            });
        }
    }
    for row in &runs.rows {
        let run_id = text(runs.get(row, "run_id"));
        let recorded = int(runs.get(row, "last_seq"));
        let actual = last.get(run_id).copied().unwrap_or(0);
        if recorded != actual {
            violations.push(Violation {
                invariant: "event_seq_contiguous",
                detail: format!(
                    "run {run_id}: last_seq is {recorded} but the log ends at {actual}"
                ),
            });
        }
    }
}

fn completed_intent_has_order(dump: &Dump, violations: &mut Vec<Violation>) {
    let (intents, orders) = (dump.table("intents"), dump.table("orders"));
    let ordered: BTreeSet<&str> = orders
        .rows
        .iter()
        .map(|row| text(orders.get(row, "intent_id")))
        .collect();
    for row in &intents.rows {
        let intent_id = text(intents.get(row, "intent_id"));
        if text(intents.get(row, "status")) == "completed" && !ordered.contains(intent_id) {
            violations.push(Violation {
                invariant: "completed_intent_has_order",
                detail: format!("intent {intent_id} is completed but has no order"),
            });
        }
    }
}

fn no_intent_left_executing(dump: &Dump, violations: &mut Vec<Violation>) {
    let intents = dump.table("intents");
    for row in &intents.rows {
        if text(intents.get(row, "status")) == "executing" {
            violations.push(Violation {
                invariant: "no_intent_left_executing",
                detail: format!(
                    "intent {} is still executing after recovery",
                    text(intents.get(row, "intent_id"))
                ),
            });
        }
    }
}
