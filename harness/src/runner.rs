//! Drives a subject through a scenario step by step, checks every invariant after every
//! step, and writes a trace a person can read.

use book::{BookError, Outcome, Signal, TripReason};

use crate::case::{Case, Failure};
use crate::dump::Dump;
use crate::invariants::{self, Phase};
use crate::provider::Database;
use crate::scenario::Step;
use crate::seed::Seed;
use crate::venue::SimVenue;

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Run {
    /// One line per step: what happened.
    pub trace: Vec<String>,
    /// The book at the end, after a final recovery.
    pub dump: Dump,
    /// Invariant checks evaluated (invariants x dumps).
    pub invariant_checks: usize,
}

/// A new case like `template` (gate, backend, mutant) on a fresh database, for `seed`, with
/// a venue whose partial fills come from that seed.
pub fn fresh_case(template: &Case, seed: Seed) -> Result<Case, Failure> {
    let database =
        Database::create(template.backend()).map_err(|unavailable| Failure(unavailable.reason))?;
    let mut case = Case::with_database(
        template.gate,
        &template.test,
        seed,
        database,
        template.mutant,
    );
    case.venue = SimVenue::with_partial_fills(seed);
    Ok(case)
}

/// Runs `steps` for `seed` on a fresh database.
pub fn run_seed(template: &Case, seed: Seed, steps: &[Step]) -> Result<Run, Failure> {
    run_scenario(&fresh_case(template, seed)?, steps)
}

pub fn run_scenario(case: &Case, steps: &[Step]) -> Result<Run, Failure> {
    let mut subject = case.open()?;
    let mut trace = Vec::with_capacity(steps.len() + 1);
    let mut signals: Vec<Signal> = Vec::new();
    let mut invariant_checks = 0;
    for (index, step) in steps.iter().enumerate() {
        let number = index + 1;
        let result = apply(case, subject.as_mut(), step, &mut signals)
            .map_err(|error| Failure(format!("step {number} ({step}) failed: {error}")))?;
        trace.push(format!("{number:>3}. {step} -> {result}"));
        let dump = case.dump()?;
        let violations = invariants::check(&dump, Phase::Running);
        invariant_checks += invariants::names(Phase::Running).len();
        if let Some(violation) = violations.first() {
            return Err(Failure(format!(
                "after step {number} ({step}): {violation}\ntrace:\n{}",
                trace.join("\n")
            )));
        }
    }
    let report = subject.recover()?;
    trace.push(format!(
        "end: recover -> confirmed {:?}, released {:?}",
        report.confirmed, report.released
    ));
    let dump = case.dump()?;
    invariant_checks += invariants::names(Phase::Recovered).len();
    if let Some(violation) = invariants::check(&dump, Phase::Recovered).first() {
        return Err(Failure(format!(
            "after the final recovery: {violation}\ntrace:\n{}",
            trace.join("\n")
        )));
    }
    Ok(Run {
        trace,
        dump,
        invariant_checks,
    })
}

/// Applies one step; refusals the book is meant to give are results, not failures.
fn apply(
    case: &Case,
    subject: &mut dyn crate::Subject,
    step: &Step,
    signals: &mut Vec<Signal>,
) -> Result<String, BookError> {
    let outcome = match step {
        Step::Tick { advance_ms } => {
            case.clock.advance(*advance_ms);
            Ok(format!("now {} ms", case.clock_now()))
        }
        Step::Signal(signal) => {
            signals.push(signal.clone());
            submit(subject, signal)
        }
        Step::Repeat { back } => match signals.len().checked_sub(*back) {
            Some(index) => {
                let signal = signals[index].clone();
                submit(subject, &signal)
            }
            None => Ok("nothing to repeat".to_owned()),
        },
        Step::Fault(fault) => {
            case.venue.arm(*fault);
            Ok("armed".to_owned())
        }
        Step::SyncFills => {
            case.venue.fill_open_orders();
            subject
                .sync_fills()
                .map(|fills| format!("{fills} new fill(s)"))
        }
        Step::Close { pick, offset } => close(case, subject, *pick, *offset),
        Step::RollDay => {
            case.clock.advance(book::clock::DAY_MS);
            subject.roll_day().map(|()| "new day".to_owned())
        }
        Step::Trip => subject
            .trip_breaker(TripReason::ManualTrip, "operator-1")
            .map(|()| "open".to_owned()),
        Step::Reset => subject
            .reset_breaker("operator-1", "checked")
            .map(|()| "closed".to_owned()),
        Step::Checkpoint => {
            let value = format!("bar-at-{}", case.clock_now());
            subject.checkpoint("last_bar", &value).map(|()| value)
        }
    };
    match outcome {
        Ok(text) => Ok(text),
        Err(
            refusal @ (BookError::AlreadyEntered { .. }
            | BookError::LimitReached
            | BookError::DailyLossLimit { .. }
            | BookError::BreakerOpen { .. }
            | BookError::VenueUnavailable { .. }
            | BookError::OpenOrders { .. }
            | BookError::NoOpenPosition { .. }),
        ) => Ok(format!("refused: {refusal}")),
        Err(BookError::VenueUncertain { intent_id, source }) => {
            // The engine's next tick: ask the venue, settle the intent.
            let report = subject.recover()?;
            Ok(format!(
                "uncertain ({source}) for {intent_id}; recover -> confirmed {:?}, released {:?}",
                report.confirmed, report.released
            ))
        }
        Err(other) => Err(other),
    }
}

fn submit(subject: &mut dyn crate::Subject, signal: &Signal) -> Result<String, BookError> {
    subject.submit(signal).map(|outcome| match outcome {
        Outcome::Placed {
            intent_id,
            order_id,
        } => format!("placed {intent_id} as {order_id}"),
        Outcome::Existing { intent_id, status } => {
            format!("existing {intent_id} ({})", status.as_str())
        }
        Outcome::Rejected { intent_id, reason } => format!("rejected {intent_id}: {reason}"),
    })
}

fn close(
    case: &Case,
    subject: &mut dyn crate::Subject,
    pick: usize,
    offset: i64,
) -> Result<String, BookError> {
    let dump = case.dump()?;
    let (positions, intents) = (dump.table("positions"), dump.table("intents"));
    let open: Vec<&str> = positions
        .rows
        .iter()
        .filter(|row| positions.get(row, "status").as_text() == Some("open"))
        .filter_map(|row| positions.get(row, "intent_id").as_text())
        .collect();
    if open.is_empty() {
        return Ok("no open position".to_owned());
    }
    let intent_id = open[pick % open.len()];
    let entry = intents
        .rows
        .iter()
        .find(|row| intents.get(row, "intent_id").as_text() == Some(intent_id))
        .and_then(|row| intents.get(row, "price").as_int())
        .unwrap_or(1);
    let exit_price = (entry + entry * offset / 1_000_000).max(1);
    subject
        .close_position(intent_id, exit_price)
        .map(|pnl| format!("closed {intent_id} at {exit_price}, pnl {pnl}"))
}

/// A progress bar for sweeps, on stderr (shown when the test's output is not captured,
/// as with `cargo xtask verify --seeds N`).
pub fn progress(length: u64, prefix: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(length);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len}, {per_sec}, eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_prefix(prefix.to_owned());
    bar
}
