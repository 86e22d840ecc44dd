//! Drives a subject through a scenario step by step, checks every invariant after every
//! step, and writes a trace a person can read. With a crash plan, a step that crashes the
//! book is followed by a restart on the same database (the venue's state intact), a
//! recovery, and the re-delivery of the step where a real engine would re-deliver it.

use book::CrashPlan;
use protocol::{CrashSite, Moment, Outcome, Problem, ProblemKind, Signal, TripReason};

use crate::case::{Case, Failure};
use crate::dump::Dump;
use crate::invariants::{self, Phase, Violation};
use crate::scenario::Step;
use crate::seed::Seed;
use crate::subject::Subject;

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Run {
    /// One line per step: what happened.
    pub trace: Vec<String>,
    /// The book at the end, after a final recovery.
    pub dump: Dump,
    /// Invariant checks evaluated (invariants x dumps).
    pub invariant_checks: usize,
    /// Where the book crashed, if a plan made it.
    pub crashed_at: Option<CrashSite>,
}

/// Runs `steps` for `seed` on a fresh database.
pub fn run_seed(template: &Case, seed: Seed, steps: &[Step]) -> Result<Run, Failure> {
    run_scenario(&template.fresh(seed)?, steps)
}

pub fn run_scenario(case: &Case, steps: &[Step]) -> Result<Run, Failure> {
    run_with_plan(case, steps, None)
}

/// Opens the subject; a crash while opening is followed by one more open (the plan has
/// fired and is inert by then).
fn open(
    case: &Case,
    plan: Option<&CrashPlan>,
    trace: &mut Vec<String>,
) -> Result<Box<dyn Subject>, Failure> {
    let mut options = case.options();
    options.crash_plan = plan.cloned();
    match case.open_with(options.clone()) {
        Err(crashed) if crashed.kind == ProblemKind::Crashed => {
            trace.push(format!("  0. open -> {}", crash_text(&crashed)));
            Ok(case.open_with(options)?)
        }
        other => Ok(other?),
    }
}

pub fn run_with_plan(
    case: &Case,
    steps: &[Step],
    plan: Option<&CrashPlan>,
) -> Result<Run, Failure> {
    let mut trace = Vec::with_capacity(steps.len() + 3);
    let mut subject = open(case, plan, &mut trace)?;
    let mut signals: Vec<Signal> = Vec::new();
    let mut invariant_checks = 0;
    for (index, step) in steps.iter().enumerate() {
        let number = index + 1;
        let failed = |error: Problem, trace: &[String]| {
            Failure(format!(
                "step {number} ({step}) failed: {error}\ntrace:\n{}",
                trace.join("\n")
            ))
        };
        world(case, step);
        match operate(case, subject.as_mut(), step, &mut signals) {
            Ok(result) => trace.push(format!("{number:>3}. {step} -> {result}")),
            Err(crashed) if crashed.kind == ProblemKind::Crashed => {
                trace.push(format!("{number:>3}. {step} -> {}", crash_text(&crashed)));
                // The process is gone: connections close, open transactions roll back.
                drop(subject);
                let mut options = case.options();
                options.crash_plan = plan.cloned();
                subject = case.open_with(options)?;
                let report = subject.recover().map_err(|error| failed(error, &trace))?;
                trace.push(format!(
                    "     restart: recover -> confirmed {:?}, released {:?}",
                    report.confirmed, report.released
                ));
                invariant_checks += check(
                    case,
                    Phase::Recovered,
                    &trace,
                    &format!("the restart after step {number}"),
                )?;
                if crashed
                    .crash_site
                    .as_ref()
                    .is_some_and(|site| redelivered(step, site))
                {
                    if matches!(step, Step::Signal(_)) {
                        signals.pop();
                    }
                    let result = operate(case, subject.as_mut(), step, &mut signals)
                        .map_err(|error| failed(error, &trace))?;
                    trace.push(format!("     re-delivered: {step} -> {result}"));
                }
            }
            Err(error) => return Err(failed(error, &trace)),
        }
        invariant_checks += check(
            case,
            Phase::Running,
            &trace,
            &format!("step {number} ({step})"),
        )?;
    }
    let report = subject.recover()?;
    trace.push(format!(
        "end: recover -> confirmed {:?}, released {:?}",
        report.confirmed, report.released
    ));
    invariant_checks += check(case, Phase::Recovered, &trace, "the final recovery")?;
    Ok(Run {
        trace,
        dump: case.dump()?,
        invariant_checks,
        crashed_at: plan.and_then(CrashPlan::fired),
    })
}

/// Every invariant of `phase` on the book, and at most one placement per client order id
/// at the venue. Returns how many checks ran.
fn check(case: &Case, phase: Phase, trace: &[String], after: &str) -> Result<usize, Failure> {
    let dump = case.dump()?;
    let mut violations = invariants::check(&dump, phase);
    let duplicates = case.venue.duplicates();
    if !duplicates.is_empty() {
        violations.push(Violation {
            invariant: "one_venue_order_per_client_order_id",
            detail: format!("the venue was asked to place existing orders again: {duplicates:?}"),
        });
    }
    match violations.first() {
        None => Ok(invariants::names(phase).len() + 1),
        Some(violation) => Err(Failure(format!(
            "after {after}: {violation}\ntrace:\n{}",
            trace.join("\n")
        ))),
    }
}

/// Whether a real engine would deliver `step` again after a crash at `site`. Signals,
/// fill syncs and day rolls are idempotent by design, so they are always re-delivered
/// (the strategy recomputes the signal from the bar). An operator's command (close, trip,
/// reset, checkpoint) is one transaction: re-delivered only if it did not commit.
pub fn redelivered(step: &Step, site: &CrashSite) -> bool {
    match step {
        Step::Signal(_) | Step::Repeat { .. } | Step::SyncFills | Step::RollDay => true,
        Step::Close { .. } | Step::Trip | Step::Reset | Step::Checkpoint => {
            site.point.moment() == Some(Moment::BeforeCommit)
        }
        Step::Tick { .. } | Step::Fault(_) => false,
    }
}

/// What a step does to the world outside the book (time, the venue). Done once, even when
/// the book's part of the step is re-delivered after a crash.
fn world(case: &Case, step: &Step) {
    match step {
        Step::Tick { advance_ms } => case.clock.advance(*advance_ms),
        Step::Fault(fault) => case.venue.arm(*fault),
        Step::SyncFills => case.venue.fill_open_orders(),
        Step::RollDay => case.clock.advance(book::clock::DAY_MS),
        Step::Signal(_)
        | Step::Repeat { .. }
        | Step::Close { .. }
        | Step::Trip
        | Step::Reset
        | Step::Checkpoint => {}
    }
}

/// The book's part of a step; refusals the book is meant to give are results, not failures.
fn operate(
    case: &Case,
    subject: &mut dyn Subject,
    step: &Step,
    signals: &mut Vec<Signal>,
) -> Result<String, Problem> {
    let outcome = match step {
        Step::Tick { .. } => Ok(format!("now {} ms", case.clock_now())),
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
        Step::Fault(_) => Ok("armed".to_owned()),
        Step::SyncFills => subject
            .sync_fills()
            .map(|fills| format!("{fills} new fill(s)")),
        Step::Close { pick, offset } => close(case, subject, *pick, *offset),
        Step::RollDay => subject.roll_day().map(|()| "new day".to_owned()),
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
        Err(refusal) if SCENARIO_REFUSALS.contains(&refusal.kind) => {
            Ok(format!("refused: {refusal}"))
        }
        Err(uncertain) if uncertain.kind == ProblemKind::VenueUncertain => {
            // The engine's next tick: ask the venue, settle the intent.
            let report = subject.recover()?;
            let source = uncertain
                .venue_error
                .as_ref()
                .map_or_else(|| uncertain.message.clone(), ToString::to_string);
            Ok(format!(
                "uncertain ({source}) for {}; recover -> confirmed {:?}, released {:?}",
                uncertain.intent_id.as_deref().unwrap_or("?"),
                report.confirmed,
                report.released
            ))
        }
        Err(other) => Err(other),
    }
}

/// The refusals a scenario expects the book to give: results, not failures.
const SCENARIO_REFUSALS: &[ProblemKind] = &[
    ProblemKind::AlreadyEntered,
    ProblemKind::LimitReached,
    ProblemKind::DailyLossLimit,
    ProblemKind::BreakerOpen,
    ProblemKind::VenueUnavailable,
    ProblemKind::OpenOrders,
    ProblemKind::NoOpenPosition,
];

fn crash_text(crashed: &Problem) -> String {
    match &crashed.crash_site {
        Some(site) => format!("CRASH at {site}"),
        None => format!("CRASH ({crashed})"),
    }
}

fn submit(subject: &mut dyn Subject, signal: &Signal) -> Result<String, Problem> {
    subject.submit(signal).map(|outcome| match outcome {
        Outcome::Placed {
            intent_id,
            order_id,
            ..
        } => format!("placed {intent_id} as {order_id}"),
        Outcome::Existing { intent_id, status } => {
            format!("existing {intent_id} ({})", status.as_str())
        }
        Outcome::Rejected {
            intent_id, reason, ..
        } => format!("rejected {intent_id}: {reason}"),
    })
}

fn close(
    case: &Case,
    subject: &mut dyn Subject,
    pick: usize,
    offset: i64,
) -> Result<String, Problem> {
    let dump = case
        .dump()
        .map_err(|error| Problem::new(ProblemKind::Storage, error.to_string()))?;
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
