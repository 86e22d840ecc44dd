//! # Gate: verify-before-act
//!
//! Given a live book and a venue that holds the account,
//! when its stop-losses and take-profits are evaluated,
//! then the venue's positions are verified first (SPEC §2.8): a venue that holds positions
//! the book lacks trips the breaker (StopLossBlind or TakeProfitBlind) and nothing is
//! evaluated, even when the book holds nothing at all; a book that holds more than the
//! venue is reported and nothing halts; a venue answering 429 or 503 is covered by a
//! verification under 30 s old (logical time), with a warning, and trips the breaker
//! (VerificationRateLimited) once the last one is older; its Retry-After is honoured; a
//! 500 or a timeout is an error, never "no positions"; paper mode does not ask the venue,
//! says so, and still evaluates. And the full flow: signal -> order -> position -> the
//! price falls -> the stop-loss closes it at the venue, with every oracle holding after
//! every step (exits join the determinism and crash scenarios too).
//!
//! Mutants: stop-losses that read the positions loaded when the process opened (caught by
//! `stop_loss_reads_the_database`), a verifier that reads a 500 as "no positions" (caught
//! by `venue_error_is_not_no_positions`).

use harness::book::{Limits, Mode};
use harness::protocol::{
    ExitReason, ExitReport, Mark, Problem, ProblemKind, Side, TripReason, VenueCall, Verification,
};
use harness::runner;
use harness::scenario::{signal, Scenario, Step};
use harness::venue::{Fault, LookupError};
use harness::{ensure, Case, Check, Failure, Subject};

harness::gate_tests! {
    gate: "verify-before-act";
    checks: [
                a_venue_holding_what_the_book_lacks_trips_the_breaker,
        what_the_book_may_hold_is_not_blindness,
        a_book_holding_more_than_the_venue_is_reported_and_nothing_halts,
        a_rate_limited_venue_is_covered_only_by_a_fresh_verification,
        a_venue_error_is_never_no_positions,
        paper_mode_skips_the_venue_and_still_evaluates,
        a_position_opened_after_the_book_opened_is_stopped_out,
        signal_to_stop_loss_with_every_oracle,
    ];
    mutants: [
        stop_loss_reads_memory_is_caught =>
            (StopLossReadsMemory, a_position_opened_after_the_book_opened_is_stopped_out, "stop_loss_reads_the_database"),
        verifier_reads_error_as_empty_is_caught =>
            (VerifierReadsErrorAsEmpty, a_venue_error_is_never_no_positions, "venue_error_is_not_no_positions"),
    ];
}

/// The price `scenario::signal` enters BTC-USD at.
const ENTRY: i64 = 4_200_000;
/// BTC-USD 3 % down: past the default 2 % stop-loss of a long, at the default 3 %
/// take-profit of a short.
const FALLEN: i64 = ENTRY - ENTRY * 3 / 100;

fn btc_at(price: i64) -> Vec<Mark> {
    vec![Mark {
        symbol: "BTC-USD".to_owned(),
        price,
    }]
}

/// Position reads the book made since the last call (drains the venue's journal).
fn position_reads(case: &Case) -> usize {
    case.venue
        .drain_journal()
        .iter()
        .filter(|exchange| exchange.call == VenueCall::Positions)
        .count()
}

/// Opens the book and enters a BTC-USD long of 2 in window `w-1`: its intent id.
fn holding_a_long(case: &Case) -> Result<(Box<dyn Subject>, String), Failure> {
    let mut book = case.open()?;
    let placed = book.submit(&signal("w-1", Side::Buy, 2))?;
    Ok((book, placed.intent_id().to_owned()))
}

fn is_open(book: &mut dyn Subject, intent_id: &str) -> Result<bool, Failure> {
    Ok(book
        .state()?
        .positions
        .iter()
        .any(|position| position.intent_id == intent_id && position.open))
}

fn refused_with(answer: &Result<ExitReport, Problem>, kind: ProblemKind) -> bool {
    matches!(answer, Err(problem) if problem.kind == kind)
}

/// Someone trades the account: with the book holding nothing, and with a position due to
/// be stopped out, the evaluation trips the breaker with the reason of what was asked for
/// and closes nothing.
fn a_venue_holding_what_the_book_lacks_trips_the_breaker(case: &Case) -> Check {
    for (stop_loss, reason) in [
        (true, TripReason::StopLossBlind),
        (false, TripReason::TakeProfitBlind),
    ] {
        let fresh = case.fresh(case.seed)?;
        let mut book = fresh.open()?;
        fresh.venue.arm(Fault::ForeignPosition);
        let answer = book.evaluate_exits(&btc_at(ENTRY), stop_loss, true);
        ensure!(
            "blindness_trips",
            refused_with(&answer, ProblemKind::Blind),
            "the venue holds a position and the book none; evaluate_exits (stop-loss: {stop_loss}) answered {answer:?}"
        );
        let breaker = book.breaker()?;
        ensure!(
            "blindness_trips",
            breaker.open && breaker.reason == Some(reason),
            "after blindness (stop-loss: {stop_loss}) the breaker is {breaker:?}; expected OPEN with {reason:?}"
        );
    }
    let fresh = case.fresh(case.seed)?;
    let (mut book, intent_id) = holding_a_long(&fresh)?;
    fresh.venue.arm(Fault::ForeignPosition);
    let placements = fresh.venue.placements().len();
    let answer = book.evaluate_exits(&btc_at(FALLEN), true, true);
    let placed_exit = fresh.venue.placements().len() > placements;
    ensure!(
        "nothing_evaluated_blind",
        refused_with(&answer, ProblemKind::Blind) && !placed_exit && is_open(book.as_mut(), &intent_id)?,
        "blind, with {intent_id} past its stop-loss: answered {answer:?}, an exit placed: {placed_exit}"
    );
    Ok(())
}

/// The venue holds more than the book recorded, but only what the book knows it may hold:
/// fills of an open order it has not synced yet, an order whose placement answer was lost.
/// Verified, nothing tripped.
fn what_the_book_may_hold_is_not_blindness(case: &Case) -> Check {
    let fresh = case.fresh(case.seed)?;
    let mut book = fresh.open()?;
    fresh.venue.arm(Fault::PartialFill);
    book.submit(&signal("w-1", Side::Buy, 4))?;
    fresh.venue.fill_open_orders();
    fresh.venue.arm(Fault::TimeoutAfterAccept);
    let uncertain = book.submit(&signal("w-2", Side::Buy, 1));
    let report = book.evaluate_exits(&btc_at(ENTRY), true, true);
    let breaker = book.breaker()?;
    ensure!(
        "what_the_book_may_hold_is_not_blindness",
        matches!(&report, Ok(report) if report.verification == Verification::Verified)
            && !breaker.open,
        "unsynced fills and an order in doubt ({uncertain:?}): evaluate_exits answered {report:?}, breaker {breaker:?}"
    );
    Ok(())
}

/// The venue liquidates the book's position: reported as an orphan with a warning; the
/// breaker stays CLOSED and the book still places.
fn a_book_holding_more_than_the_venue_is_reported_and_nothing_halts(case: &Case) -> Check {
    let fresh = case.fresh(case.seed)?;
    let (mut book, _) = holding_a_long(&fresh)?;
    fresh.venue.arm(Fault::Liquidation);
    let report = book.evaluate_exits(&btc_at(ENTRY), true, true)?;
    ensure!(
        "orphans_reported",
        report.verification == Verification::Verified
            && report.orphans == ["BTC-USD"]
            && !report.warnings.is_empty(),
        "the venue liquidated the book's BTC-USD; the report is {report:?}"
    );
    let breaker = book.breaker()?;
    let next = book.submit(&signal("w-2", Side::Buy, 1));
    ensure!(
        "orphans_do_not_halt",
        !breaker.open && next.is_ok(),
        "after an orphan the breaker is {breaker:?} and a new signal was answered {next:?}"
    );
    Ok(())
}

/// 429 and 503 alike: a verification 10 s old covers (with a warning), the venue is not
/// asked again before its Retry-After has passed, and at 30 s the breaker trips.
fn a_rate_limited_venue_is_covered_only_by_a_fresh_verification(case: &Case) -> Check {
    for (error, retry_after_ms) in [
        (LookupError::RateLimited, 1_000),
        (LookupError::Unavailable, 5_000),
    ] {
        let fresh = case.fresh(case.seed)?;
        rate_limited(&fresh, error, retry_after_ms)
            .map_err(|failure| failure.context(format!("{error:?}")))?;
    }
    Ok(())
}

fn rate_limited(case: &Case, error: LookupError, retry_after_ms: i64) -> Check {
    let (mut book, _) = holding_a_long(case)?;
    let at_zero = book.evaluate_exits(&btc_at(ENTRY), true, true)?;
    ensure!(
        "fresh_verification_covers",
        at_zero.verification == Verification::Verified,
        "the first verification: {at_zero:?}"
    );
    case.clock.set(10_000);
    case.venue.arm(Fault::PositionsFail {
        error,
        for_ms: 60_000,
    });
    position_reads(case);
    let mut evaluate_at = |now: i64| -> Result<(Result<ExitReport, Problem>, usize), Failure> {
        case.clock.set(now);
        let answer = book.evaluate_exits(&btc_at(ENTRY), true, true);
        Ok((answer, position_reads(case)))
    };
    let (cached, reads) = evaluate_at(10_000)?;
    ensure!(
        "fresh_verification_covers",
        matches!(&cached, Ok(report) if report.verification == (Verification::Cached { age_ms: 10_000 }) && !report.warnings.is_empty())
            && reads == 1,
        "rate limited with a verification 10 s old: {cached:?} ({reads} position read(s))"
    );
    let (waiting, reads_waiting) = evaluate_at(10_000 + retry_after_ms - 1)?;
    let (after, reads_after) = evaluate_at(10_000 + retry_after_ms)?;
    ensure!(
        "retry_after_honoured",
        waiting.is_ok() && reads_waiting == 0 && after.is_ok() && reads_after == 1,
        "Retry-After {retry_after_ms} ms: 1 ms before it the book read {reads_waiting} time(s) ({waiting:?}); at it {reads_after} ({after:?})"
    );
    let (last, _) = evaluate_at(29_999)?;
    let (stale, _) = evaluate_at(30_000)?;
    let breaker = book.breaker()?;
    ensure!(
        "stale_verification_trips",
        last.is_ok()
            && refused_with(&stale, ProblemKind::VerificationRateLimited)
            && breaker.open
            && breaker.reason == Some(TripReason::VerificationRateLimited),
        "at 29.999 s: {last:?}; at 30 s: {stale:?} with the breaker {breaker:?}"
    );
    Ok(())
}

/// The venue holds more than the book and its position read fails (500, timeout): an
/// error, nothing evaluated, nothing tripped. Read as "no positions", the blindness would
/// hide and a due stop-loss would act on a picture the venue never gave.
fn a_venue_error_is_never_no_positions(case: &Case) -> Check {
    for error in [LookupError::Internal, LookupError::Timeout] {
        let fresh = case.fresh(case.seed)?;
        let (mut book, intent_id) = holding_a_long(&fresh)?;
        fresh.venue.arm(Fault::ForeignPosition);
        fresh.venue.arm(Fault::PositionsFail { error, for_ms: 0 });
        let placements = fresh.venue.placements().len();
        let answer = book.evaluate_exits(&btc_at(FALLEN), true, true);
        let placed_exit = fresh.venue.placements().len() > placements;
        let breaker = book.breaker()?;
        ensure!(
            "venue_error_is_not_no_positions",
            refused_with(&answer, ProblemKind::VerificationFailed)
                && !placed_exit
                && !breaker.open
                && is_open(book.as_mut(), &intent_id)?,
            "the position read failed ({error:?}): answered {answer:?}, an exit placed: {placed_exit}, breaker {breaker:?}"
        );
    }
    Ok(())
}

/// Paper mode: no position read, a warning, and the stop-loss still closes the position.
fn paper_mode_skips_the_venue_and_still_evaluates(case: &Case) -> Check {
    let fresh = case.fresh(case.seed)?;
    let mut options = fresh.options();
    options.run.mode = Mode::Paper;
    let mut book = fresh.open_with(options)?;
    let placed = book.submit(&signal("w-1", Side::Buy, 2))?;
    position_reads(&fresh);
    let report = book.evaluate_exits(&btc_at(FALLEN), true, true)?;
    let reads = position_reads(&fresh);
    ensure!(
        "paper_skips_the_venue",
        report.verification == Verification::Skipped && !report.warnings.is_empty() && reads == 0,
        "paper mode read the venue's positions {reads} time(s); the report is {report:?}"
    );
    ensure!(
        "paper_still_evaluates",
        matches!(report.exits.as_slice(), [exit] if exit.intent_id == placed.intent_id() && exit.reason == ExitReason::StopLoss && exit.realized_pnl.is_some()),
        "paper mode, BTC-USD 3 % down: the exits were {:?}",
        report.exits
    );
    Ok(())
}

/// A position opened while the book runs is stopped out: the stop-loss reads the database,
/// not what the process loaded when it opened.
fn a_position_opened_after_the_book_opened_is_stopped_out(case: &Case) -> Check {
    let fresh = case.fresh(case.seed)?;
    let (mut book, intent_id) = holding_a_long(&fresh)?;
    let report = book.evaluate_exits(&btc_at(FALLEN), true, true)?;
    let closed = !is_open(book.as_mut(), &intent_id)?;
    ensure!(
        "stop_loss_reads_the_database",
        closed
            && report
                .exits
                .iter()
                .any(|exit| exit.intent_id == intent_id && exit.reason == ExitReason::StopLoss),
        "BTC-USD 3 % down with {intent_id} long: the exits were {:?}; closed: {closed}",
        report.exits
    );
    Ok(())
}

/// Signal -> order -> position -> the price falls -> the stop-loss closes the long and the
/// take-profit the short, through the runner (every invariant, the venue's truth and the
/// model after every step); then each was closed by a filled exit at the venue, the pnl is
/// what filled times the move, and the venue holds no BTC-USD.
fn signal_to_stop_loss_with_every_oracle(case: &Case) -> Check {
    let scenario = Scenario {
        limits: Limits::default(),
        steps: vec![
            Step::Signal(signal("w-1", Side::Buy, 2)),
            Step::Signal(signal("w-2", Side::Sell, 1)),
            // 1 % down: nothing due.
            Step::Exits {
                moves: [-10_000, 0],
            },
            // 3 % down: the long's stop-loss and the short's take-profit.
            Step::Exits {
                moves: [-30_000, 0],
            },
        ],
    };
    let fresh = case.fresh(case.seed)?;
    let run = runner::run_scenario(&fresh, &scenario)?;
    let state = harness::state::from_dump(&run.dump);
    for position in &state.positions {
        let expected = position.qty * (FALLEN - ENTRY);
        ensure!(
            "exit_closes_at_the_venue",
            !position.open
                && position.exit_order_id.is_some()
                && position.realized_pnl == Some(expected),
            "after BTC-USD fell 3 %: {position:?}; expected closed by an exit with pnl {expected}\n{}",
            run.trace.join("\n")
        );
    }
    let truth = fresh.venue.truth();
    let venue = harness::protocol::net_positions(truth.iter().map(|truth| &truth.order));
    ensure!(
        "exit_closes_at_the_venue",
        state.positions.len() == 2 && venue.is_empty(),
        "{} position(s); the venue still holds {venue:?}",
        state.positions.len()
    );
    Ok(())
}
