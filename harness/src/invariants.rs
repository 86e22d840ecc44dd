//! The invariants, each a named check. [`check`] runs those over the book's own tables
//! (SPEC §3); [`reconcile`] holds the tables against the venue, the truth (SPEC §3.1). A
//! violation names its invariant and the rows that break it; a [`Tally`] counts how often
//! each invariant had something to check, for the coverage report.
//!
//! Two table invariants only restate a schema constraint (`one_order_per_client_order_id`,
//! `one_entry_per_window_and_strategy`): they stay as a second line, and [`RESTATES_SCHEMA`]
//! keeps them out of the coverage that counts.

use std::collections::{BTreeMap, BTreeSet};

use book::clock::DAY_MS;
use book::store::Value;

use crate::case::Failure;
use crate::dump::{Dump, TableDump};
use crate::venue::TruthOrder;

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

/// The failure of a list of violations (every invariant named), or `None` if empty.
pub fn failure(violations: &[Violation]) -> Option<Failure> {
    let first = violations.first()?;
    let mut checks: Vec<&'static str> = violations
        .iter()
        .map(|violation| violation.invariant)
        .collect();
    checks.dedup();
    let lines: Vec<String> = violations.iter().map(ToString::to_string).collect();
    Some(Failure {
        checks,
        message: if lines.len() == 1 {
            first.to_string()
        } else {
            lines.join("\n")
        },
    })
}

/// When the dump was taken: some invariants only hold once recovery has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between steps of a live run: an intent may be `executing` (a crash can leave one).
    Running,
    /// After `recover`: nothing may be left `executing`.
    Recovered,
}

/// How often each invariant was evaluated with something to check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub nonvacuous: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn count(&mut self, invariant: &'static str, checked: usize) {
        let entry = self.nonvacuous.entry(invariant).or_default();
        if checked > 0 {
            *entry += 1;
        }
    }
}

/// Invariants that only restate a schema constraint: a second line, not coverage.
pub const RESTATES_SCHEMA: &[&str] = &[
    "one_order_per_client_order_id",
    "one_entry_per_window_and_strategy",
];

/// An invariant over the tables: adds its violations, returns how many things it checked.
type TableInvariant = fn(&Dump, &mut Vec<Violation>) -> usize;

/// The invariants that hold between any two steps.
const ALWAYS: &[(&str, TableInvariant)] = &[
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
    (
        "order_only_for_completed_intent",
        order_only_for_completed_intent,
    ),
    ("order_status_matches_fills", order_status_matches_fills),
    (
        "entry_held_only_by_live_intent",
        entry_held_only_by_live_intent,
    ),
    ("daily_trades_match_orders", daily_trades_match_orders),
    ("daily_pnl_matches_closes", daily_pnl_matches_closes),
    ("breaker_matches_audit", breaker_matches_audit),
];

/// The invariants that hold once recovery has run.
const AFTER_RECOVERY: &[(&str, TableInvariant)] =
    &[("no_intent_left_executing", no_intent_left_executing)];

/// Every table invariant for `phase`, in a fixed order. Returns all violations.
pub fn check(dump: &Dump, phase: Phase, tally: &mut Tally) -> Vec<Violation> {
    let recovered: &[(&str, TableInvariant)] = match phase {
        Phase::Running => &[],
        Phase::Recovered => AFTER_RECOVERY,
    };
    let mut violations = Vec::new();
    for (name, invariant) in ALWAYS.iter().chain(recovered) {
        let checked = invariant(dump, &mut violations);
        tally.count(name, checked);
    }
    violations
}

/// Every invariant name [`check`] and [`reconcile`] can report.
pub fn names() -> Vec<&'static str> {
    ALWAYS
        .iter()
        .chain(AFTER_RECOVERY)
        .map(|(name, _)| *name)
        .chain(VENUE.iter().map(|(name, _)| *name))
        .collect()
}

/// What the venue holds, for [`reconcile`].
#[derive(Debug, Clone)]
pub struct VenueView<'venue> {
    pub orders: &'venue [TruthOrder],
    /// Client order ids the book placed again while the venue held them and had shown them.
    pub duplicates: &'venue [String],
    /// The book has just synced its fills: what it holds of each order must equal what the
    /// venue shows.
    pub synced: bool,
    pub phase: Phase,
}

type VenueInvariant = fn(&Dump, &VenueView<'_>, &mut Vec<Violation>) -> usize;

const VENUE: &[(&str, VenueInvariant)] = &[
    (
        "one_venue_order_per_client_order_id",
        one_venue_order_per_client_order_id,
    ),
    (
        "venue_orders_belong_to_completed_intents",
        venue_orders_belong_to_completed_intents,
    ),
    ("book_orders_are_at_the_venue", book_orders_are_at_the_venue),
    ("fills_are_the_venues", fills_are_the_venues),
    ("order_fills_match_venue", order_fills_match_venue),
    ("positions_match_venue_fills", positions_match_venue_fills),
    (
        "closed_positions_exited_at_the_venue",
        closed_positions_exited_at_the_venue,
    ),
    ("exits_belong_to_positions", exits_belong_to_positions),
];

/// Every venue invariant: the book against the venue's truth.
pub fn reconcile(dump: &Dump, venue: &VenueView<'_>, tally: &mut Tally) -> Vec<Violation> {
    let mut violations = Vec::new();
    for (name, invariant) in VENUE {
        let checked = invariant(dump, venue, &mut violations);
        tally.count(name, checked);
    }
    violations
}

fn int(value: &Value) -> i64 {
    value.as_int().unwrap_or_default()
}

fn text(value: &Value) -> &str {
    value.as_text().unwrap_or_default()
}

fn violation(violations: &mut Vec<Violation>, invariant: &'static str, detail: String) {
    violations.push(Violation { invariant, detail });
}

/// The rows of `table`, keyed by `key`.
fn by<'dump>(table: &'dump TableDump, key: &str) -> BTreeMap<&'dump str, &'dump [Value]> {
    table
        .rows
        .iter()
        .map(|row| (text(table.get(row, key)), row.as_slice()))
        .collect()
}

/// Each order's fills: (filled quantity, signed cost by the intent's side).
fn filled_by_order(dump: &Dump) -> BTreeMap<&str, (i64, i64)> {
    let fills = dump.table("fills");
    let mut filled: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for row in &fills.rows {
        let entry = filled.entry(text(fills.get(row, "order_id"))).or_default();
        entry.0 += int(fills.get(row, "qty"));
        entry.1 += int(fills.get(row, "qty")) * int(fills.get(row, "price"));
    }
    filled
}

fn one_order_per_client_order_id(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
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
    for (client_order_id, count) in seen.iter().filter(|(_, count)| **count > 1) {
        let detail = format!("client order id {client_order_id} has {count} orders");
        violation(violations, "one_order_per_client_order_id", detail);
    }
    for (intent_id, count) in per_intent.iter().filter(|(_, count)| **count > 1) {
        let detail = format!("intent {intent_id} has {count} orders");
        violation(violations, "one_order_per_client_order_id", detail);
    }
    orders.rows.len()
}

fn position_equals_its_fills(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    let (intents, orders, positions) = (
        by(dump.table("intents"), "intent_id"),
        dump.table("orders"),
        dump.table("positions"),
    );
    let intents_table = dump.table("intents");
    let filled = filled_by_order(dump);
    let mut expected: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for row in &orders.rows {
        let intent_id = text(orders.get(row, "intent_id"));
        let sell = intents
            .get(intent_id)
            .is_some_and(|intent| text(intents_table.get(intent, "side")) == "sell");
        let (qty, cost) = filled
            .get(text(orders.get(row, "order_id")))
            .copied()
            .unwrap_or_default();
        let sign = if sell { -1 } else { 1 };
        expected.insert(intent_id, (sign * qty, sign * cost));
    }
    for row in &positions.rows {
        let intent_id = text(positions.get(row, "intent_id"));
        let actual = (
            int(positions.get(row, "qty")),
            int(positions.get(row, "cost")),
        );
        let wanted = expected.remove(intent_id).unwrap_or_default();
        if actual != wanted {
            let detail = format!(
                "position {intent_id}: qty {} cost {}, but its fills sum to qty {} cost {}",
                actual.0, actual.1, wanted.0, wanted.1
            );
            violation(violations, "position_equals_its_fills", detail);
        }
    }
    for (intent_id, (qty, _)) in expected.into_iter().filter(|(_, (qty, _))| *qty != 0) {
        let detail = format!("intent {intent_id} has fills (qty {qty}) but no position");
        violation(violations, "position_equals_its_fills", detail);
    }
    positions.rows.len()
}

fn counters_match_open_positions(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
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
        violation(
            violations,
            "counters_match_open_positions",
            "position_counters has no row".to_owned(),
        );
        return 1;
    };
    let (stored_count, stored_exposure) = (
        int(counters.get(row, "open_count")),
        int(counters.get(row, "exposure")),
    );
    if stored_count != open_count {
        let detail =
            format!("open_count is {stored_count} but {open_count} intents are executing or open");
        violation(violations, "counters_match_open_positions", detail);
    }
    if stored_exposure != exposure {
        let detail =
            format!("exposure is {stored_exposure} but executing and open intents hold {exposure}");
        violation(violations, "counters_match_open_positions", detail);
    }
    usize::try_from(open_count).unwrap_or(0)
}

fn one_entry_per_window_and_strategy(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    let entries = dump.table("window_entries");
    let mut seen = BTreeSet::new();
    for row in &entries.rows {
        let key = (
            text(entries.get(row, "window_id")),
            text(entries.get(row, "strategy_id")),
        );
        if !seen.insert(key) {
            let detail = format!(
                "window {} has more than one entry for strategy {}",
                key.0, key.1
            );
            violation(violations, "one_entry_per_window_and_strategy", detail);
        }
    }
    entries.rows.len()
}

fn nothing_placed_while_breaker_open(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    // Events are sorted by (run_id, seq); the breaker is global, so walk each run in order.
    let events = dump.table("events");
    let (mut open, mut checked) = (false, 0);
    for row in &events.rows {
        match text(events.get(row, "type")) {
            "breaker.tripped" => open = true,
            "breaker.reset" => open = false,
            "intent.reserved" => {
                checked += usize::from(open);
                if open {
                    let detail = format!(
                        "event {} reserved an intent while the breaker was open: {}",
                        int(events.get(row, "seq")),
                        text(events.get(row, "payload"))
                    );
                    violation(violations, "nothing_placed_while_breaker_open", detail);
                }
            }
            _ => {}
        }
    }
    // Something to check: the breaker was open at some point of a run that reserved.
    checked + usize::from(open)
}

fn event_seq_contiguous(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    let (events, runs) = (dump.table("events"), dump.table("runs"));
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for row in &events.rows {
        let run_id = text(events.get(row, "run_id"));
        let seq = int(events.get(row, "seq"));
        let previous = last.insert(run_id, seq).unwrap_or(0);
        if seq != previous + 1 {
            violation(
                violations,
                "event_seq_contiguous",
                format!("run {run_id}: seq {seq} follows {previous}"),
            );
        }
    }
    for row in &runs.rows {
        let run_id = text(runs.get(row, "run_id"));
        let recorded = int(runs.get(row, "last_seq"));
        let actual = last.get(run_id).copied().unwrap_or(0);
        if recorded != actual {
            let detail =
                format!("run {run_id}: last_seq is {recorded} but the log ends at {actual}");
            violation(violations, "event_seq_contiguous", detail);
        }
    }
    events.rows.len()
}

fn completed_intent_has_order(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    let (intents, orders) = (dump.table("intents"), dump.table("orders"));
    let ordered: BTreeSet<&str> = orders
        .rows
        .iter()
        .map(|row| text(orders.get(row, "intent_id")))
        .collect();
    let mut checked = 0;
    for row in intents
        .rows
        .iter()
        .filter(|row| text(intents.get(row, "status")) == "completed")
    {
        checked += 1;
        let intent_id = text(intents.get(row, "intent_id"));
        if !ordered.contains(intent_id) {
            violation(
                violations,
                "completed_intent_has_order",
                format!("intent {intent_id} is completed but has no order"),
            );
        }
    }
    checked
}

fn order_only_for_completed_intent(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    let (intents, orders) = (dump.table("intents"), dump.table("orders"));
    let statuses: BTreeMap<&str, &str> = intents
        .rows
        .iter()
        .map(|row| {
            (
                text(intents.get(row, "intent_id")),
                text(intents.get(row, "status")),
            )
        })
        .collect();
    for row in &orders.rows {
        let intent_id = text(orders.get(row, "intent_id"));
        let status = statuses.get(intent_id).copied().unwrap_or("missing");
        if status != "completed" {
            let detail = format!(
                "order {} belongs to intent {intent_id}, which is {status}, not completed",
                text(orders.get(row, "order_id"))
            );
            violation(violations, "order_only_for_completed_intent", detail);
        }
    }
    orders.rows.len()
}

fn order_status_matches_fills(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    let (intents, orders) = (by(dump.table("intents"), "intent_id"), dump.table("orders"));
    let intents_table = dump.table("intents");
    let filled = filled_by_order(dump);
    for row in &orders.rows {
        let order_id = text(orders.get(row, "order_id"));
        let status = text(orders.get(row, "status"));
        let size = intents
            .get(text(orders.get(row, "intent_id")))
            .map_or(0, |intent| int(intents_table.get(intent, "size")));
        let qty = filled.get(order_id).map_or(0, |(qty, _)| *qty);
        let consistent = match status {
            "filled" => qty == size,
            "open" | "cancelled" => qty < size,
            _ => false,
        };
        if !consistent {
            let detail = format!("order {order_id} is {status} with {qty} of {size} filled");
            violation(violations, "order_status_matches_fills", detail);
        }
    }
    orders.rows.len()
}

fn entry_held_only_by_live_intent(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    let (intents, entries) = (dump.table("intents"), dump.table("window_entries"));
    let statuses: BTreeMap<&str, &str> = intents
        .rows
        .iter()
        .map(|row| {
            (
                text(intents.get(row, "intent_id")),
                text(intents.get(row, "status")),
            )
        })
        .collect();
    for row in &entries.rows {
        let intent_id = text(entries.get(row, "intent_id"));
        let status = statuses.get(intent_id).copied().unwrap_or("missing");
        if !matches!(status, "executing" | "completed") {
            let detail = format!(
                "window {} of strategy {} is held by intent {intent_id}, which is {status}",
                text(entries.get(row, "window_id")),
                text(entries.get(row, "strategy_id"))
            );
            violation(violations, "entry_held_only_by_live_intent", detail);
        }
    }
    entries.rows.len()
}

/// Each day's trade count is the number of orders the book recorded that day.
fn daily_trades_match_orders(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    let (orders, daily) = (dump.table("orders"), dump.table("daily_limits"));
    let mut per_day: BTreeMap<i64, i64> = BTreeMap::new();
    for row in &orders.rows {
        *per_day
            .entry(int(orders.get(row, "ts")).div_euclid(DAY_MS))
            .or_default() += 1;
    }
    compare_daily(
        daily,
        "trade_count",
        &per_day,
        "daily_trades_match_orders",
        "orders recorded",
        violations,
    )
}

/// Each day's pnl is the sum of the pnl realised by the positions closed that day.
fn daily_pnl_matches_closes(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    let (positions, daily) = (dump.table("positions"), dump.table("daily_limits"));
    let mut per_day: BTreeMap<i64, i64> = BTreeMap::new();
    for row in positions
        .rows
        .iter()
        .filter(|row| text(positions.get(row, "status")) == "closed")
    {
        let day = int(positions.get(row, "updated_ts")).div_euclid(DAY_MS);
        *per_day.entry(day).or_default() += int(positions.get(row, "realized_pnl"));
    }
    compare_daily(
        daily,
        "pnl",
        &per_day,
        "daily_pnl_matches_closes",
        "closes realised",
        violations,
    )
}

fn compare_daily(
    daily: &TableDump,
    column: &str,
    expected: &BTreeMap<i64, i64>,
    invariant: &'static str,
    what: &str,
    violations: &mut Vec<Violation>,
) -> usize {
    let stored: BTreeMap<i64, i64> = daily
        .rows
        .iter()
        .map(|row| (int(daily.get(row, "day")), int(daily.get(row, column))))
        .collect();
    let days: BTreeSet<i64> = stored.keys().chain(expected.keys()).copied().collect();
    for day in &days {
        let (recorded, wanted) = (
            stored.get(day).copied().unwrap_or(0),
            expected.get(day).copied().unwrap_or(0),
        );
        if recorded != wanted {
            let detail = format!("day {day}: daily_limits.{column} is {recorded}, but the {what} that day add up to {wanted}");
            violation(violations, invariant, detail);
        }
    }
    expected.len()
}

/// The breaker's state is its last audited transition; its failure count, the number of
/// audited trips.
fn breaker_matches_audit(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    let (breaker, audit) = (dump.table("circuit_breaker"), dump.table("breaker_audit"));
    let Some(row) = breaker.rows.first() else {
        violation(
            violations,
            "breaker_matches_audit",
            "circuit_breaker has no row".to_owned(),
        );
        return 1;
    };
    let state = text(breaker.get(row, "state"));
    let last = audit
        .rows
        .last()
        .map_or("CLOSED", |row| text(audit.get(row, "to_state")));
    if state != last {
        violation(
            violations,
            "breaker_matches_audit",
            format!("the breaker is {state} but its last audited transition went to {last}"),
        );
    }
    let trips = audit
        .rows
        .iter()
        .filter(|row| text(audit.get(row, "to_state")) == "OPEN")
        .count();
    let failures = int(breaker.get(row, "failure_count"));
    if usize::try_from(failures).ok() != Some(trips) {
        let detail = format!("failure_count is {failures} but the audit holds {trips} trip(s)");
        violation(violations, "breaker_matches_audit", detail);
    }
    audit.rows.len()
}

fn no_intent_left_executing(dump: &Dump, violations: &mut Vec<Violation>) -> usize {
    let intents = dump.table("intents");
    for row in intents
        .rows
        .iter()
        .filter(|row| text(intents.get(row, "status")) == "executing")
    {
        let detail = format!(
            "intent {} is still executing after recovery",
            text(intents.get(row, "intent_id"))
        );
        violation(violations, "no_intent_left_executing", detail);
    }
    intents.rows.len()
}

fn one_venue_order_per_client_order_id(
    _: &Dump,
    venue: &VenueView<'_>,
    violations: &mut Vec<Violation>,
) -> usize {
    if !venue.duplicates.is_empty() {
        let detail = format!(
            "the book placed orders the venue held and had shown it, without asking: {:?}",
            venue.duplicates
        );
        violation(violations, "one_venue_order_per_client_order_id", detail);
    }
    venue.orders.len()
}

/// Every order the venue accepted belongs to a completed intent of the book with an order
/// row. While the book runs, an intent may still be `executing` (a placement or a recovery
/// in flight); an intent may be `pending` only if the venue hid the order from the book
/// (answered "not found" while holding it). A rejection the venue never made is a lie.
fn venue_orders_belong_to_completed_intents(
    dump: &Dump,
    venue: &VenueView<'_>,
    violations: &mut Vec<Violation>,
) -> usize {
    let (intents, orders) = (dump.table("intents"), dump.table("orders"));
    let ordered: BTreeSet<&str> = orders
        .rows
        .iter()
        .map(|row| text(orders.get(row, "client_order_id")))
        .collect();
    let statuses: BTreeMap<&str, &str> = intents
        .rows
        .iter()
        .map(|row| {
            (
                text(intents.get(row, "intent_id")),
                text(intents.get(row, "status")),
            )
        })
        .collect();
    let accepted: Vec<&TruthOrder> = venue
        .orders
        .iter()
        .filter(|truth| truth.order.rejection.is_none() && !truth.reduce_only && !truth.foreign)
        .collect();
    for truth in &accepted {
        let client_order_id = truth.order.client_order_id.as_str();
        if ordered.contains(client_order_id) {
            continue;
        }
        let status = statuses.get(client_order_id).copied().unwrap_or("missing");
        let excused = match status {
            "executing" => venue.phase == Phase::Running,
            "pending" => truth.invisible || truth.hid_from_book,
            _ => false,
        };
        if !excused {
            let detail = format!("the venue holds order {client_order_id} but the book has no order for it (its intent is {status})");
            violation(
                violations,
                "venue_orders_belong_to_completed_intents",
                detail,
            );
        }
    }
    accepted.len()
}

fn book_orders_are_at_the_venue(
    dump: &Dump,
    venue: &VenueView<'_>,
    violations: &mut Vec<Violation>,
) -> usize {
    let orders = dump.table("orders");
    let held: BTreeMap<&str, &TruthOrder> = venue
        .orders
        .iter()
        .map(|truth| (truth.order.client_order_id.as_str(), truth))
        .collect();
    for row in &orders.rows {
        let client_order_id = text(orders.get(row, "client_order_id"));
        let order_id = text(orders.get(row, "order_id"));
        match held.get(client_order_id) {
            Some(truth)
                if truth.order.venue_order_id == order_id && truth.order.rejection.is_none() => {}
            Some(truth) => {
                let detail = format!("the book's order {order_id} ({client_order_id}) is the venue's {} (rejected: {:?})", truth.order.venue_order_id, truth.order.rejection);
                violation(violations, "book_orders_are_at_the_venue", detail);
            }
            None => violation(
                violations,
                "book_orders_are_at_the_venue",
                format!("the book's order {order_id} ({client_order_id}) is not at the venue"),
            ),
        }
    }
    orders.rows.len()
}

/// Every fill the book recorded is one the venue made, with the same quantity and price.
fn fills_are_the_venues(
    dump: &Dump,
    venue: &VenueView<'_>,
    violations: &mut Vec<Violation>,
) -> usize {
    let fills = dump.table("fills");
    let made: BTreeMap<&str, (&str, i64, i64)> = venue
        .orders
        .iter()
        .flat_map(|truth| {
            truth.order.fills.iter().map(move |fill| {
                (
                    fill.trade_id.as_str(),
                    (truth.order.venue_order_id.as_str(), fill.qty, fill.price),
                )
            })
        })
        .collect();
    for row in &fills.rows {
        let trade_id = text(fills.get(row, "fill_id"));
        let recorded = (
            text(fills.get(row, "order_id")),
            int(fills.get(row, "qty")),
            int(fills.get(row, "price")),
        );
        if made.get(trade_id) != Some(&recorded) {
            let detail = format!(
                "fill {trade_id} is recorded as {recorded:?}, the venue made {:?}",
                made.get(trade_id)
            );
            violation(violations, "fills_are_the_venues", detail);
        }
    }
    fills.rows.len()
}

/// Right after the book synced, each of its orders holds what the venue shows of it: the
/// filled quantity, and `cancelled` exactly when the venue cancelled the rest.
fn order_fills_match_venue(
    dump: &Dump,
    venue: &VenueView<'_>,
    violations: &mut Vec<Violation>,
) -> usize {
    if !venue.synced {
        return 0;
    }
    let orders = dump.table("orders");
    let filled = filled_by_order(dump);
    let held: BTreeMap<&str, &TruthOrder> = venue
        .orders
        .iter()
        .map(|truth| (truth.order.client_order_id.as_str(), truth))
        .collect();
    for row in &orders.rows {
        let Some(truth) = held.get(text(orders.get(row, "client_order_id"))) else {
            continue;
        };
        let order_id = text(orders.get(row, "order_id"));
        let book_qty = filled.get(order_id).map_or(0, |(qty, _)| *qty);
        let venue_qty = protocol::filled_qty(&truth.visible_fills);
        let book_cancelled = text(orders.get(row, "status")) == "cancelled";
        let venue_cancelled = truth.order.cancelled && venue_qty < truth.order.size;
        if book_qty != venue_qty || book_cancelled != venue_cancelled {
            let detail = format!(
                "after the sync, order {order_id} holds {book_qty} filled (cancelled: {book_cancelled}); the venue shows {venue_qty} (cancelled: {venue_cancelled})"
            );
            violation(violations, "order_fills_match_venue", detail);
        }
    }
    orders.rows.len()
}

/// Right after the book synced, each position is what the venue filled for its order.
fn positions_match_venue_fills(
    dump: &Dump,
    venue: &VenueView<'_>,
    violations: &mut Vec<Violation>,
) -> usize {
    if !venue.synced {
        return 0;
    }
    let (positions, orders) = (
        dump.table("positions"),
        by(dump.table("orders"), "intent_id"),
    );
    let orders_table = dump.table("orders");
    let held: BTreeMap<&str, &TruthOrder> = venue
        .orders
        .iter()
        .map(|truth| (truth.order.client_order_id.as_str(), truth))
        .collect();
    for row in &positions.rows {
        let intent_id = text(positions.get(row, "intent_id"));
        let Some(truth) = orders
            .get(intent_id)
            .and_then(|order| held.get(text(orders_table.get(order, "client_order_id"))))
        else {
            continue;
        };
        let qty = truth
            .order
            .side
            .signed(protocol::filled_qty(&truth.visible_fills));
        let book_qty = int(positions.get(row, "qty"));
        if book_qty != qty {
            let detail = format!("after the sync, position {intent_id} holds {book_qty}; the venue filled {qty} for its order");
            violation(violations, "positions_match_venue_fills", detail);
        }
    }
    positions.rows.len()
}

/// Every closed position that had filled was taken off the venue by its exit: a
/// reduce-only order of the book's, on the other side, for what filled, filled completely,
/// and the pnl the book realised is what the exit's fills brought in less the entry's cost.
/// A position closed with nothing filled has no exit.
fn closed_positions_exited_at_the_venue(
    dump: &Dump,
    venue: &VenueView<'_>,
    violations: &mut Vec<Violation>,
) -> usize {
    let positions = dump.table("positions");
    let by_venue_id: BTreeMap<&str, &TruthOrder> = venue
        .orders
        .iter()
        .map(|truth| (truth.order.venue_order_id.as_str(), truth))
        .collect();
    let sides = side_by_intent(dump);
    let mut checked = 0;
    for row in positions
        .rows
        .iter()
        .filter(|row| text(positions.get(row, "status")) == "closed")
    {
        checked += 1;
        let intent_id = text(positions.get(row, "intent_id"));
        let (qty, cost) = (
            int(positions.get(row, "qty")),
            int(positions.get(row, "cost")),
        );
        let exit_id = positions.get(row, "exit_order_id").as_text();
        let problem = match (qty, exit_id) {
            (0, None) => None,
            (0, Some(exit_id)) => Some(format!("nothing filled, yet it names exit {exit_id}")),
            (_, None) => Some(format!("{qty} filled and no exit took it off the venue")),
            (_, Some(exit_id)) => match by_venue_id.get(exit_id) {
                None => Some(format!("its exit {exit_id} is not at the venue")),
                Some(exit) => exit_problem(
                    exit,
                    qty,
                    cost,
                    sides.get(intent_id).copied(),
                    int(positions.get(row, "realized_pnl")),
                ),
            },
        };
        if let Some(problem) = problem {
            violation(
                violations,
                "closed_positions_exited_at_the_venue",
                format!("closed position {intent_id}: {problem}"),
            );
        }
    }
    checked
}

fn side_by_intent(dump: &Dump) -> BTreeMap<&str, protocol::Side> {
    let intents = dump.table("intents");
    intents
        .rows
        .iter()
        .filter_map(|row| {
            let side = protocol::Side::parse(text(intents.get(row, "side")))?;
            Some((text(intents.get(row, "intent_id")), side))
        })
        .collect()
}

/// What is wrong with `exit` as the exit of a position of `qty` (signed) that cost `cost`
/// and realised `pnl`.
fn exit_problem(
    exit: &TruthOrder,
    qty: i64,
    cost: i64,
    side: Option<protocol::Side>,
    pnl: i64,
) -> Option<String> {
    let order = &exit.order;
    let filled = protocol::filled_qty(&order.fills);
    if !exit.reduce_only || exit.foreign || order.rejection.is_some() {
        return Some(format!(
            "its exit {} is not a reduce-only order of the book's the venue accepted",
            order.venue_order_id
        ));
    }
    if Some(order.side) == side || filled != qty.abs() || order.size != qty.abs() {
        return Some(format!(
            "its exit {} is a {} of {} with {filled} filled; the position holds {qty}",
            order.venue_order_id,
            order.side.as_str(),
            order.size
        ));
    }
    let mut trades = BTreeSet::new();
    let proceeds: i64 = order
        .fills
        .iter()
        .filter(|fill| trades.insert(fill.trade_id.as_str()))
        .map(|fill| fill.qty * fill.price)
        .sum();
    let made = qty.signum() * proceeds - cost;
    (made != pnl).then(|| format!("it realised {pnl}; its exit's fills make {made}"))
}

/// Every exit of the book's the venue holds is some closed position's exit, or the exit
/// of an open position whose close has not been recorded yet (the book crashed, or the
/// answer was lost, between placing it and recording the close; the next close finds it):
/// an open position on that symbol, of the other side, holding what the exit sold.
fn exits_belong_to_positions(
    dump: &Dump,
    venue: &VenueView<'_>,
    violations: &mut Vec<Violation>,
) -> usize {
    let positions = dump.table("positions");
    let sides = side_by_intent(dump);
    let named: BTreeSet<&str> = positions
        .rows
        .iter()
        .filter_map(|row| positions.get(row, "exit_order_id").as_text())
        .collect();
    let exits: Vec<&TruthOrder> = venue
        .orders
        .iter()
        .filter(|truth| truth.reduce_only && !truth.foreign && truth.order.rejection.is_none())
        .collect();
    for exit in &exits {
        let order = &exit.order;
        if named.contains(order.venue_order_id.as_str()) {
            continue;
        }
        let in_flight = positions.rows.iter().any(|row| {
            text(positions.get(row, "status")) == "open"
                && text(positions.get(row, "symbol")) == order.symbol
                && int(positions.get(row, "qty")).abs() == order.size
                && sides.get(text(positions.get(row, "intent_id"))) != Some(&order.side)
        });
        if !in_flight {
            let detail = format!(
                "the venue holds exit {} ({} {} {}) that no position of the book's accounts for",
                order.client_order_id,
                order.side.as_str(),
                order.size,
                order.symbol
            );
            violation(violations, "exits_belong_to_positions", detail);
        }
    }
    exits.len()
}
