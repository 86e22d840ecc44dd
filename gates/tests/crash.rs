//! # Gate: crash
//!
//! Given a seeded scenario (or one of the incidents below) and the simulated venue, whose
//! state survives the book,
//! when the book is crashed at every crash site the uninterrupted run passes (every
//! `before_commit` and `after_commit` of every write transaction, and right after each venue
//! call), restarted on the same database, recovered, and the scenario finished,
//! then every invariant holds after the restart and after every later step, the venue was
//! never asked to place an order it already had, and the final book equals the
//! uninterrupted run's, table by table, apart from `harness::crash::EXCLUDED_COLUMNS` and
//! recovery's own events.
//!
//! The last two checks do the same to a real `book` process: aborted at each crash point,
//! and SIGKILLed right after each venue reply without any cooperation from the book.
//!
//! Mutants: recovery that re-places without asking the venue (in process and in a `book`
//! process), a daily trade counter kept in memory, a confirm split into two transactions,
//! and a checkpoint written before the work it covers (the day roll).

use harness::crash::{self, CrashMode};
use harness::protocol::{Side, Signal};
use harness::scenario::{self, Step};
use harness::venue::Fault;
use harness::{Case, Check, Failure, Seed};

harness::gate_tests! {
    gate: "crash";
    checks: [
        every_crash_site_of_a_seeded_scenario,
        crash_after_the_venue_accepted_before_the_confirm,
        timeout_then_retry_with_the_same_client_order_id,
        venue_reject_then_crash,
        warm_restart_with_an_open_position,
        fills_replayed_by_the_venue_around_a_restart,
        breaker_still_open_after_restart,
        daily_loss_limit_still_in_force_after_restart,
        book_process_aborted_at_every_crash_site,
        book_process_killed_after_every_venue_reply,
    ];
    mutants: [
        blind_replace_on_recovery_is_caught =>
            (BlindReplaceOnRecovery, crash_after_the_venue_accepted_before_the_confirm, "one_venue_order_per_client_order_id"),
        daily_counter_in_memory_is_caught =>
            (DailyCounterInMemory, warm_restart_with_an_open_position, "daily_limits"),
        confirm_split_in_two_is_caught =>
            (ConfirmSplitInTwo, crash_after_the_venue_accepted_before_the_confirm, "is unknown"),
        checkpoint_before_work_is_caught =>
            (CheckpointBeforeWork, breaker_still_open_after_restart, "differs from the uninterrupted run"),
        blind_replace_in_a_book_process_is_caught =>
            (BlindReplaceOnRecovery, book_process_aborted_at_every_crash_site, "one_venue_order_per_client_order_id"),
    ];
}

/// Crash scenarios are shorter than the determinism gate's: every site is a full rerun.
const STEPS_DEFAULT: usize = 12;

/// Crashes `steps` in process at every crash site (or the selected ones) and compares each
/// recovered book with the uninterrupted one.
fn check_every_site(case: &Case, seed: Seed, steps: &[Step]) -> Check {
    check_sites(case, seed, steps, CrashMode::Unwind)
}

fn check_sites(case: &Case, seed: Seed, steps: &[Step], mode: CrashMode) -> Check {
    let uninterrupted = crash::uninterrupted(case, seed, steps)?;
    let sites = crash::selected(mode.sites(&uninterrupted));
    harness::ensure!(!sites.is_empty(), "the scenario passes no crash site");
    let mut template = case.fresh(seed)?;
    template.subject = mode.subject();
    for site in &sites {
        let repro = case.repro().with_seed(seed).with_crash_at(site);
        let run = crash::crashed_at(&template, seed, steps, site).map_err(|failure| {
            Failure(format!("crash at {site}: {failure}\nreproduce: {repro}"))
        })?;
        if harness::Settings::get().crash_at.is_some() {
            // A repro: show what happened around the crash.
            println!("crash at {site}, trace:\n{}", run.trace.join("\n"));
        }
        if let Some(difference) = crash::difference(&uninterrupted.run.dump, &run.dump) {
            return Err(Failure(format!(
                "crash at {site}: the recovered book differs from the uninterrupted run: {difference}\ntrace:\n{}\nreproduce: {repro}",
                run.trace.join("\n")
            )));
        }
    }
    println!(
        "{} crash sites ({}), each crashed, recovered and compared",
        sites.len(),
        mode.name()
    );
    Ok(())
}

fn signal(window_id: &str, side: Side, size: i64) -> Signal {
    Signal {
        strategy: "momentum".to_owned(),
        symbol: "BTC-USD".to_owned(),
        window_id: window_id.to_owned(),
        side,
        size,
        price: 4_200_000,
        bar_t: 60_000,
        params: "v1".to_owned(),
    }
}

fn every_crash_site_of_a_seeded_scenario(case: &Case) -> Check {
    let steps = scenario::generate(case.seed, scenario::steps_max(STEPS_DEFAULT));
    check_every_site(case, case.seed, &steps)
}

/// The classic duplicate-order bug: the venue filled the order, the process died before
/// recording it; on restart the book must find the order, not place another.
fn crash_after_the_venue_accepted_before_the_confirm(case: &Case) -> Check {
    check_every_site(
        case,
        case.seed,
        &[Step::Signal(signal("w-1", Side::Buy, 2))],
    )
}

/// The venue accepted, the call timed out, the strategy retries the same signal.
fn timeout_then_retry_with_the_same_client_order_id(case: &Case) -> Check {
    let steps = [
        Step::Fault(Fault::TimeoutAfterAccept),
        Step::Signal(signal("w-1", Side::Buy, 2)),
        Step::Repeat { back: 1 },
    ];
    check_every_site(case, case.seed, &steps)
}

/// A rejection is final, also when the book crashes before recording it.
fn venue_reject_then_crash(case: &Case) -> Check {
    let steps = [
        Step::Fault(Fault::Reject),
        Step::Signal(signal("w-1", Side::Sell, 1)),
        Step::Repeat { back: 1 },
    ];
    check_every_site(case, case.seed, &steps)
}

/// A restart with a position open: no synthetic opposite fill, no second entry, and the
/// next signal placed once.
fn warm_restart_with_an_open_position(case: &Case) -> Check {
    let steps = [
        Step::Signal(signal("w-1", Side::Buy, 3)),
        Step::Tick { advance_ms: 60_000 },
        Step::Signal(signal("w-2", Side::Sell, 1)),
        Step::Repeat { back: 2 },
    ];
    check_every_site(case, case.seed, &steps)
}

/// The venue reports a trade twice; fills are deduplicated by trade id across restarts.
fn fills_replayed_by_the_venue_around_a_restart(case: &Case) -> Check {
    let steps = [
        Step::Fault(Fault::ReplayFill),
        Step::Signal(signal("w-1", Side::Buy, 4)),
        Step::SyncFills,
        Step::SyncFills,
    ];
    check_every_site(case, case.seed, &steps)
}

/// A tripped breaker, its failure count and the day's limits survive a restart.
fn breaker_still_open_after_restart(case: &Case) -> Check {
    let steps = [
        Step::Signal(signal("w-1", Side::Buy, 1)),
        Step::Close {
            pick: 0,
            offset: -10_000,
        },
        Step::Trip,
        Step::Signal(signal("w-2", Side::Buy, 1)),
        Step::RollDay,
        Step::Signal(signal("w-3", Side::Buy, 1)),
        Step::Reset,
        Step::Signal(signal("w-4", Side::Buy, 1)),
    ];
    check_every_site(case, case.seed, &steps)
}

/// Six losing trades breach the daily loss limit (each loses 2% of 2 to 5 units at
/// 4_200_000, at least -168_000, against a limit of 1_000_000); the next signal is refused,
/// also after any crash and restart, until the day rolls.
fn daily_loss_limit_still_in_force_after_restart(case: &Case) -> Check {
    let mut steps = Vec::new();
    for window in ["w-1", "w-2", "w-3", "w-4", "w-5", "w-6"] {
        steps.push(Step::Signal(signal(window, Side::Buy, 5)));
        steps.push(Step::Close {
            pick: 0,
            offset: -20_000,
        });
    }
    steps.push(Step::Signal(signal("w-7", Side::Buy, 1)));
    steps.push(Step::RollDay);
    steps.push(Step::Signal(signal("w-8", Side::Buy, 1)));
    let reference = crash::uninterrupted(case, case.seed, &steps)?;
    let trace = reference.run.trace.join("\n");
    harness::ensure!(
        trace.contains("refused: daily loss limit reached"),
        "the scenario never reaches the daily loss limit, so it proves nothing:\n{trace}"
    );
    check_every_site(case, case.seed, &steps)
}

/// The same gate against a real process: the `book` binary aborts at each crash point
/// (no destructor, no rollback, no flush runs) and is restarted on the same files.
fn book_process_aborted_at_every_crash_site(case: &Case) -> Check {
    let steps = scenario::generate(case.seed, STEPS_DEFAULT);
    check_sites(case, case.seed, &steps, CrashMode::Abort)
}

/// Smoke: SIGKILL the `book` process right after each venue reply, wherever the book is.
fn book_process_killed_after_every_venue_reply(case: &Case) -> Check {
    let steps = scenario::generate(case.seed, STEPS_DEFAULT);
    check_sites(case, case.seed, &steps, CrashMode::Sigkill)
}
