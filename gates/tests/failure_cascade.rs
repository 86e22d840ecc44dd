//! # Gate: failure-cascade
//!
//! Given the venue accepted an order,
//! when recording it fails (the commit fails, its outcome is lost, a constraint refuses it,
//! the database stays unavailable),
//! then the outcome is `Unknown`, the breaker is OPEN with `PositionTrackingFailed`,
//! nothing more is placed, and the breaker is still OPEN after a restart; and when not even
//! the trip could be written, the restarted book places nothing before its recovery has
//! settled what it left executing. A breaker that cannot be read (its row missing, the read
//! timing out, the connection gone) fails closed. A reset needs an operator, is refused
//! while an order is open, is audited with operator and reason, and a day roll never
//! resets the breaker.
//!
//! The sweep injects every store fault that fits each operation of a tour (failed commit,
//! commit outcome unknown, connection lost, statement timeout, constraint error; on
//! PostgreSQL a real `pg_terminate_backend` of the book's connection before each commit),
//! restarts the book on a healthy database, and holds it against every oracle.
//!
//! Mutants: log-and-continue after a failed recording (caught by
//! `nothing_placed_after_unknown_outcome`), a missing breaker row read as CLOSED (caught by
//! `breaker_fails_closed`), a book that places before recovering (caught by
//! `nothing_placed_before_recovery`).

use harness::faults::{FaultCase, FaultSite, StoreFault, StoreFaultPlan, StoreOp};
use harness::protocol::{IntentStatus, Problem, ProblemKind, Side, Signal, TripReason};
use harness::runner::{self, Crashes};
use harness::scenario::{self, signal};
use harness::{check, ensure, Case, Check, Failure, Settings, Subject};

harness::gate_tests! {
    gate: "failure-cascade";
    checks: [
        recording_fails_after_the_venue_accepted,
        nothing_is_placed_before_recovery_after_a_restart,
        an_unreadable_breaker_fails_closed,
        reset_rules,
        every_store_fault_site,
    ];
    mutants: [
        log_and_continue_is_caught =>
            (LogAndContinue, recording_fails_after_the_venue_accepted, "nothing_placed_after_unknown_outcome"),
        missing_breaker_read_as_closed_is_caught =>
            (MissingBreakerReadAsClosed, an_unreadable_breaker_fails_closed, "breaker_fails_closed"),
        places_before_recovery_is_caught =>
            (PlacesBeforeRecovery, nothing_is_placed_before_recovery_after_a_restart, "nothing_placed_before_recovery"),
    ];
}

/// Store fault cases the sweep runs per backend unless `--fault-at` names one.
const FAULT_CASES_DEFAULT: usize = 48;
/// The confirm's first statement: its transaction is the recording.
const RECORDING: &str = "INSERT INTO orders (";

fn fault(text: &str) -> Result<FaultCase, Failure> {
    text.parse().map_err(Failure::harness)
}

/// Opens the book with `plan` on its store seam.
fn open_with(case: &Case, plan: &StoreFaultPlan) -> Result<Box<dyn Subject>, Failure> {
    Ok(case.open_with_faults(case.options(), Some(plan.clone()))?)
}

/// Submits `signal` and requires a refusal and no order at the venue.
fn refused(
    case: &Case,
    book: &mut dyn Subject,
    signal: &Signal,
    check: &'static str,
    when: &str,
) -> Result<Problem, Failure> {
    let placements = case.venue.placements().len();
    let answer = book.submit(signal);
    let sent = case.venue.placements().len() > placements;
    match answer {
        Err(problem) if !sent => Ok(problem),
        other => Err(Failure::new(
            check,
            format!("{when}, the book took a new signal: {other:?} (sent to the venue: {sent})"),
        )),
    }
}

fn breaker(book: &mut dyn Subject) -> Result<harness::protocol::BreakerState, Failure> {
    Ok(book.breaker()?)
}

/// Every way recording can fail after the venue accepted: Unknown, tripped, halted, and
/// still tripped after a restart; recovery then confirms the venue's order, and only a
/// reset lets the book place again.
fn recording_fails_after_the_venue_accepted(case: &Case) -> Check {
    for text in [
        format!("failed_commit@commit_of:{RECORDING}"),
        format!("outcome_unknown@commit_of:{RECORDING}"),
        format!("constraint_error@sql:{RECORDING}"),
        format!("unavailable_4@sql:{RECORDING}"),
    ] {
        let fresh = case.fresh(case.seed)?;
        one_failed_recording(&fresh, &fault(&text)?).map_err(|failure| failure.context(text))?;
    }
    Ok(())
}

/// A signal whose recording fails is answered `outcome_unknown`, and the next signal is
/// refused: nothing is placed after an unknown outcome.
fn unknown_then_refused(case: &Case, book: &mut dyn Subject) -> Check {
    let answer = book.submit(&signal("w-1", Side::Buy, 2));
    ensure!(
        "outcome_unknown",
        matches!(
            &answer,
            Err(Problem {
                kind: ProblemKind::OutcomeUnknown,
                ..
            })
        ),
        "the recording failed but the book answered {answer:?}"
    );
    refused(
        case,
        book,
        &signal("w-2", Side::Buy, 1),
        "nothing_placed_after_unknown_outcome",
        "after an unknown outcome",
    )
    .map(drop)
}

fn one_failed_recording(case: &Case, fault: &FaultCase) -> Check {
    let plan = StoreFaultPlan::armed(fault.clone(), None);
    let mut book = open_with(case, &plan)?;
    unknown_then_refused(case, book.as_mut())?;
    let tripped = breaker(book.as_mut())?;
    ensure!(
        "breaker_tripped",
        tripped.open && tripped.reason == Some(TripReason::PositionTrackingFailed),
        "after an unknown outcome the breaker is {tripped:?}"
    );
    drop(book);
    let mut book = case.open()?;
    let state = breaker(book.as_mut())?;
    ensure!(
        "breaker_survives_restart",
        state.open && state.reason == Some(TripReason::PositionTrackingFailed),
        "after the restart the breaker is {state:?}"
    );
    refused(
        case,
        book.as_mut(),
        &signal("w-3", Side::Buy, 1),
        "nothing_placed_after_unknown_outcome",
        "after the restart",
    )?;
    let report = book.recover()?;
    let book_state = book.state()?;
    ensure!(
        "recovered_from_the_venue",
        book_state
            .intents
            .iter()
            .all(|intent| intent.status != IntentStatus::Executing)
            && book_state.orders.len() == case.venue.placements().len(),
        "recovery ({report:?}) did not settle the intent from the venue's order: {book_state:?}"
    );
    refused(
        case,
        book.as_mut(),
        &signal("w-4", Side::Buy, 1),
        "nothing_placed_after_unknown_outcome",
        "before the operator's reset",
    )?;
    if book
        .state()?
        .orders
        .iter()
        .any(|order| order.status == harness::protocol::OrderStatus::Open)
    {
        // A reset waits for open orders: the market fills the rest first.
        case.venue.fill_open_orders();
        book.sync_fills()?;
    }
    book.reset_breaker("operator-1", "recording checked by hand", None)?;
    let placed = book.submit(&signal("w-4", Side::Buy, 1))?;
    ensure!(
        "placing_resumes_after_reset",
        matches!(placed, harness::protocol::Outcome::Placed { .. }),
        "after the reset the book answered {placed:?}"
    );
    case.check_invariants(harness::Phase::Recovered)
}

/// The database stays unavailable: neither the order nor the trip can be written, so the
/// halt lives only in memory. After a restart the breaker reads CLOSED; the book must
/// still place nothing before recovery has settled the intent it left executing.
fn nothing_is_placed_before_recovery_after_a_restart(case: &Case) -> Check {
    let plan = StoreFaultPlan::armed(fault(&format!("unavailable_200@sql:{RECORDING}"))?, None);
    let mut book = open_with(case, &plan)?;
    unknown_then_refused(case, book.as_mut())?;
    drop(book);
    plan.disarm();
    let mut book = case.open()?;
    let state = breaker(book.as_mut())?;
    ensure!(
        check::HARNESS,
        !state.open,
        "the trip was written after all ({state:?}): this check proves nothing"
    );
    let problem = refused(
        case,
        book.as_mut(),
        &signal("w-3", Side::Buy, 1),
        "nothing_placed_before_recovery",
        "after a restart with an intent still executing",
    )?;
    ensure!(
        "nothing_placed_before_recovery",
        problem.kind == ProblemKind::RecoveryRequired,
        "the refusal does not say recovery must run first: {problem}"
    );
    book.recover()?;
    let placed = book.submit(&signal("w-3", Side::Buy, 1))?;
    ensure!(
        "placing_resumes_after_recovery",
        matches!(placed, harness::protocol::Outcome::Placed { .. }),
        "after recovery the book answered {placed:?}"
    );
    case.check_invariants(harness::Phase::Recovered)
}

/// The breaker row missing, its read timing out, the connection gone: placement is
/// refused every time, and nothing reaches the venue.
fn an_unreadable_breaker_fails_closed(case: &Case) -> Check {
    for text in [
        "timeout@sql:FROM circuit_breaker WHERE",
        "unavailable_50@sql:FROM circuit_breaker WHERE",
    ] {
        let fresh = case.fresh(case.seed)?;
        let plan = StoreFaultPlan::armed(fault(text)?, None);
        let mut book = open_with(&fresh, &plan)?;
        refused(
            &fresh,
            book.as_mut(),
            &signal("w-1", Side::Buy, 1),
            "breaker_fails_closed",
            &format!("with {text}"),
        )?;
    }
    let fresh = case.fresh(case.seed)?;
    drop(fresh.open()?);
    let mut store = fresh.connect()?;
    let mut transaction = store.transaction(book::store::Isolation::Write)?;
    transaction.execute("DELETE FROM circuit_breaker", &[])?;
    transaction.commit()?;
    drop(store);
    let mut book = fresh.open()?;
    let problem = refused(
        &fresh,
        book.as_mut(),
        &signal("w-1", Side::Buy, 1),
        "breaker_fails_closed",
        "with the breaker row missing",
    )?;
    ensure!(
        "breaker_fails_closed",
        problem.kind == ProblemKind::BreakerUnreadable,
        "the refusal is not BreakerUnreadable: {problem}"
    );
    Ok(())
}

/// A reset needs an operator, waits for open orders, is audited, and a day roll leaves the
/// breaker alone.
fn reset_rules(case: &Case) -> Check {
    let mut book = case.open()?;
    case.venue.arm(harness::venue::Fault::PartialFill);
    book.submit(&signal("w-1", Side::Buy, 4))?;
    book.trip_breaker(TripReason::ManualTrip, "operator-1", None)?;
    let nobody = book.reset_breaker("  ", "no one", None);
    ensure!(
        "reset_rules",
        matches!(
            &nobody,
            Err(Problem {
                kind: ProblemKind::OperatorRequired,
                ..
            })
        ),
        "a reset without an operator answered {nobody:?}"
    );
    let open = book.reset_breaker("operator-1", "too early", None);
    ensure!(
        "reset_rules",
        matches!(
            &open,
            Err(Problem {
                kind: ProblemKind::OpenOrders,
                ..
            })
        ),
        "a reset with an order open answered {open:?}"
    );
    case.clock.advance(book::clock::DAY_MS);
    book.roll_day()?;
    ensure!(
        "reset_rules",
        breaker(book.as_mut())?.open,
        "the day roll reset the breaker"
    );
    case.venue.fill_open_orders();
    book.sync_fills()?;
    book.reset_breaker("operator-7", "fills synced, checked", None)?;
    let audit = case.dump()?.table("breaker_audit").clone();
    let last = audit
        .rows
        .last()
        .ok_or_else(|| Failure::new("reset_rules", "no audit row"))?;
    let (operator, reason) = (
        audit.get(last, "operator").as_text(),
        audit.get(last, "reason").as_text(),
    );
    ensure!(
        "reset_rules",
        operator == Some("operator-7") && reason == Some("fills synced, checked"),
        "the reset was audited as {operator:?}, {reason:?}"
    );
    ensure!(
        "reset_rules",
        !breaker(book.as_mut())?.open,
        "the valid reset left the breaker open"
    );
    Ok(())
}

/// Every fault that fits each store operation of the tour (thinned evenly to
/// `FAULT_CASES_DEFAULT`), each followed by a restart on a healthy database, every oracle
/// holding throughout.
fn every_store_fault_site(case: &Case) -> Check {
    let tour = scenario::tour();
    let cases = match &Settings::get().fault_at {
        Some(fault) => vec![fault.clone()],
        None => fault_cases(case, &tour)?,
    };
    ensure!(
        check::HARNESS,
        !cases.is_empty(),
        "the tour passes no store operation"
    );
    for fault in &cases {
        let fresh = case.fresh(case.seed)?;
        let terminator = fresh.database.terminator();
        let plan = StoreFaultPlan::armed(fault.clone(), terminator);
        let crashes = Crashes {
            store_faults: Some(plan.clone()),
            ..Crashes::default()
        };
        let repro = case.repro().with_fault_at(fault);
        let run = runner::run_with(&fresh, &tour, &crashes).map_err(|failure| {
            failure
                .context(format!("fault {fault}"))
                .append(format!("reproduce: {repro}"))
        })?;
        if Settings::get().fault_at.is_some() {
            ensure!(
                check::UNKNOWN_SITE,
                plan.fired().is_some(),
                "store fault {fault} never fired: the tour never reaches its site (a site is OP#HIT, sql:TEXT or commit_of:TEXT the tour passes; a failing run prints the one to use)"
            );
            println!("fault {fault}, trace:\n{}", run.trace.join("\n"));
        }
    }
    println!(
        "{} store fault cases on {}, each restarted and held against every oracle",
        cases.len(),
        case.backend()
    );
    Ok(())
}

/// The operations of the reference book's uninterrupted tour, each with every fault that
/// fits it, thinned evenly.
fn fault_cases(case: &Case, tour: &scenario::Scenario) -> Result<Vec<FaultCase>, Failure> {
    let reference = case.fresh(case.seed)?;
    let recording = StoreFaultPlan::recording();
    let crashes = Crashes {
        store_faults: Some(recording.clone()),
        ..Crashes::default()
    };
    runner::run_with(&reference, tour, &crashes)?;
    let (commits, statements): (Vec<FaultCase>, Vec<FaultCase>) = recording
        .passed()
        .into_iter()
        .flat_map(|site| {
            let op = match &site {
                FaultSite::Op { op, .. } => *op,
                _ => StoreOp::Execute,
            };
            StoreFault::fitting(op, case.backend())
                .into_iter()
                .map(move |fault| FaultCase {
                    fault,
                    site: site.clone(),
                })
        })
        .partition(|fault| {
            matches!(
                fault.site,
                FaultSite::Op {
                    op: StoreOp::Commit,
                    ..
                }
            )
        });
    // Half the budget on commits (where an outcome can become unknown), half on the rest.
    let half = FAULT_CASES_DEFAULT / 2;
    Ok(harness::crash::thinned(commits, half)
        .into_iter()
        .chain(harness::crash::thinned(statements, half))
        .collect())
}
