//! # Gate: race
//!
//! Given one database and many handles of the book in one process, one per thread, each on
//! its own connection and all sharing the process's latch,
//! when they act at once (released together by a barrier, and in every other round also
//! parked at a sync point until each has made its checks and none has written),
//! then of 100 entries into one (window, strategy) exactly one is entered and exactly one
//! order reaches the venue, every other attempt answered `already_entered` or
//! `serialization_conflict`; of many opens against a limit of k exactly k open, the others
//! `limit_reached` (or `serialization_conflict`); a trip racing placements leaves nothing
//! placed once it has returned; and after every round every invariant holds and the book
//! agrees with the venue. Forced interleavings make the classic bugs fail on every run,
//! not sometimes: two entries that have both passed their checks before either writes; a
//! trip that lands between a reservation and its venue call.
//!
//! The latch the handles share is also model-checked with loom (`latch/tests/loom.rs`,
//! built and run by `cargo xtask verify race`, which reports each model's interleavings).
//!
//! The book is always the reference book in this process (in-process state cannot be
//! shared with a process); `--subject process` does not apply here.
//!
//! Mutants: check-then-set entry (caught by `one_entry_per_window`, in the forced
//! interleaving and in the 100-way race), a limit checked in application code (caught by
//! `limit_holds_under_contention`), and a latch whose "halted?" is read before the
//! placement counts itself in flight (caught by loom's `no_placement_after_halt`).

use book::sync_point::{BEFORE_RESERVE, BEFORE_VENUE};
use book::{BookOptions, Limits};
use harness::protocol::{Problem, ProblemKind, Side, Signal, TripReason};
use harness::race::{self, Racers, Start};
use harness::{ensure, Case, Check, Failure, Seed, Settings, Subject};
use rand_chacha::rand_core::RngCore;

harness::gate_tests! {
    gate: "race";
    checks: [
        one_hundred_entries_into_one_window,
        opens_against_a_limit,
        a_trip_racing_placements,
        check_then_set_is_forced,
        a_trip_between_reserve_and_venue_is_forced,
    ];
    mutants: [
        check_then_set_in_the_forced_interleaving_is_caught =>
            (CheckThenSetEntry, check_then_set_is_forced, "one_entry_per_window"),
        check_then_set_in_the_hundred_way_race_is_caught =>
            (CheckThenSetEntry, one_hundred_entries_into_one_window, "one_entry_per_window"),
        limit_checked_in_application_is_caught =>
            (LimitCheckedInApplication, opens_against_a_limit, "limit_holds_under_contention"),
    ];
}

/// Entries into one window per round.
const ENTRIES: usize = 100;
/// Rounds of each race unless `--seeds N` asks for more (see [`round`] for how each
/// starts).
const ROUNDS_DEFAULT: u64 = 4;
/// Opens per round of the limit race.
const OPENS: usize = 24;

fn rounds() -> u64 {
    Settings::get().seeds.unwrap_or(ROUNDS_DEFAULT)
}

/// A round's seed, its fresh case, and how its attempts start, by turns: in turn from
/// `point` (every check made before any write: the check-then-set interleaving, forced),
/// free, or gathered at `point` and released together.
fn round(case: &Case, number: u64, point: &'static str) -> Result<(Case, Seed, Start), Failure> {
    let seed = Seed(case.seed.0.wrapping_add(number));
    let start = match number % 3 {
        0 => Start::InTurn(point),
        1 => Start::Free,
        _ => Start::Together(point),
    };
    Ok((case.fresh(seed)?, seed, start))
}

/// Limits no race of entries reaches.
fn roomy(options: &mut BookOptions) {
    options.limits = Limits {
        max_open: 10_000,
        max_exposure: i64::MAX / 4,
        ..Limits::default()
    };
}

/// Attempt `index`'s signal: its own intent (its own bar and size), in `window` of
/// `strategy`.
fn attempt_signal(strategy: &str, window: &str, index: usize, size: i64) -> Signal {
    Signal {
        strategy: strategy.to_owned(),
        symbol: "BTC-USD".to_owned(),
        window_id: window.to_owned(),
        side: Side::Buy,
        size,
        price: 4_200_000,
        bar_t: 60_000 + index as i64,
        params: "v1".to_owned(),
    }
}

/// Trips the breaker as an operator does: a serialization conflict (the trip lost a race
/// with the placements' writes, nothing written) is tried again, a bounded number of times.
fn trip_retrying(handle: &mut dyn Subject) -> Result<(), Problem> {
    let mut conflicts = 0;
    loop {
        match handle.trip_breaker(TripReason::ManualTrip, "operator-1", None) {
            Err(problem)
                if problem.kind == ProblemKind::SerializationConflict
                    && conflicts < race::CONFLICT_RETRIES_MAX =>
            {
                conflicts += 1;
            }
            other => return other,
        }
    }
}

/// What a thread of the trip race did.
enum Act {
    Submitted(race::Attempt),
    /// The trip's answer, the placements the venue had when it returned, and the
    /// tripper's own placements before it.
    Tripped(Result<(), Problem>, usize, Vec<race::Attempt>),
}

/// 100 different signals for one (window, strategy), each on its own thread and
/// connection: exactly one entered and one order at the venue; every other attempt
/// `already_entered` or `serialization_conflict`; every invariant after.
fn one_hundred_entries_into_one_window(case: &Case) -> Check {
    for number in 0..rounds() {
        let (fresh, seed, start) = round(case, number, BEFORE_RESERVE)?;
        let mut rng = seed.stream("race");
        let strategy = format!("strategy-{}", rng.next_u32() % 1_000);
        let sizes: Vec<i64> = (0..ENTRIES)
            .map(|_| 1 + i64::from(rng.next_u32() % 5))
            .collect();
        let mut options = fresh.options();
        roomy(&mut options);
        let mut racers: Racers = race::open(&fresh, ENTRIES, options)?;
        let raced = race::race(&mut racers, start, |index, handle| {
            race::submit_retrying(
                handle,
                &attempt_signal(&strategy, "w-race", index, sizes[index]),
            )
        })?;
        let expected = [
            ProblemKind::AlreadyEntered,
            ProblemKind::SerializationConflict,
        ];
        let tallied = race::tally(&raced.results, &expected);
        let label = format!("round {number} (seed {seed}, {start})");
        race::report_round(&label, &tallied, ENTRIES, raced.elapsed);
        let orders = fresh.venue.placements().len();
        ensure!(
            "one_entry_per_window",
            tallied.placed == 1 && orders == 1,
            "{label}: {} of {ENTRIES} entries into one window were placed and the venue got {orders} order(s)",
            tallied.placed
        );
        ensure!(
            "losers_refused_cleanly",
            tallied.other.is_empty(),
            "{label}: answers that are neither a placement nor a refusal: {:?}",
            tallied.other
        );
        race::check_everything(&fresh).map_err(|failure| failure.context(&label))?;
    }
    Ok(())
}

/// Opens in different windows against max open k (or, every other round, max exposure
/// for k): exactly k placed, every other attempt `limit_reached` or
/// `serialization_conflict`, the counters equal to the open positions and their exposure.
fn opens_against_a_limit(case: &Case) -> Check {
    for number in 0..rounds() {
        let (fresh, seed, start) = round(case, number, BEFORE_RESERVE)?;
        let mut rng = seed.stream("race");
        let limit = 1 + (rng.next_u32() % 4) as usize;
        let notional = 2 * 4_200_000;
        let mut options = fresh.options();
        roomy(&mut options);
        let by_exposure = number % 4 >= 2;
        if by_exposure {
            options.limits.max_exposure = notional * limit as i64 + notional / 2;
        } else {
            options.limits.max_open = limit as i64;
        }
        let mut racers = race::open(&fresh, OPENS, options)?;
        let raced = race::race(&mut racers, start, |index, handle| {
            race::submit_retrying(
                handle,
                &attempt_signal("opens", &format!("w-{index}"), index, 2),
            )
        })?;
        let expected = [
            ProblemKind::LimitReached,
            ProblemKind::SerializationConflict,
        ];
        let tallied = race::tally(&raced.results, &expected);
        let what = if by_exposure {
            "max exposure"
        } else {
            "max open"
        };
        let label = format!("round {number} (seed {seed}, {what} for {limit}, {start})");
        race::report_round(&label, &tallied, OPENS, raced.elapsed);
        ensure!(
            "limit_holds_under_contention",
            tallied.placed == limit.min(OPENS) && tallied.other.is_empty(),
            "{label}: {} of {OPENS} opens were placed against a limit of {limit}; other answers: {:?}",
            tallied.placed,
            tallied.other
        );
        race::check_everything(&fresh).map_err(|failure| failure.context(&label))?;
    }
    Ok(())
}

/// Placements on many threads and a trip on one more: once the trip has returned, nothing
/// more reaches the venue; every placement either went out before or was refused
/// (`breaker_open`), its reservation released.
fn a_trip_racing_placements(case: &Case) -> Check {
    for number in 0..rounds() {
        let (fresh, seed, _) = round(case, number, BEFORE_VENUE)?;
        let mut options = fresh.options();
        roomy(&mut options);
        let mut racers = race::open(&fresh, OPENS + 1, options)?;
        let venue = fresh.venue.clone();
        // The tripper places a seeded number of its own first, so that the trip lands
        // early in some rounds and late in others.
        let before_trip = (seed.stream("race").next_u32() % 8) as usize;
        let raced = race::race(&mut racers, Start::Free, |index, handle| {
            if index == OPENS {
                let own: Vec<race::Attempt> = (0..before_trip)
                    .map(|own| {
                        let window = format!("w-tripper-{own}");
                        race::submit_retrying(handle, &attempt_signal("tripper", &window, own, 1))
                    })
                    .collect();
                let tripped = trip_retrying(handle);
                // Nothing may start from here on: what the venue has now is final.
                return Act::Tripped(tripped, venue.placements().len(), own);
            }
            Act::Submitted(race::submit_retrying(
                handle,
                &attempt_signal("trip", &format!("w-{index}"), index, 1),
            ))
        })?;
        let (mut answers, mut trip) = (Vec::new(), None);
        for act in raced.results {
            match act {
                Act::Submitted(answer) => answers.push(answer),
                Act::Tripped(tripped, at_trip, own) => {
                    answers.extend(own);
                    trip = Some((tripped, at_trip));
                }
            }
        }
        let Some((tripped, at_trip)) = trip else {
            return Err(Failure::harness("the trip thread did not report"));
        };
        let placements = fresh.venue.placements().len();
        let tallied = race::tally(
            &answers,
            &[ProblemKind::BreakerOpen, ProblemKind::SerializationConflict],
        );
        let label = format!("round {number} (seed {seed})");
        race::report_round(&label, &tallied, answers.len(), raced.elapsed);
        ensure!(
            "nothing_placed_after_trip",
            placements == at_trip && tallied.placed == placements,
            "{label}: {at_trip} placement(s) when the trip returned, {placements} at the end ({} answered placed)",
            tallied.placed
        );
        ensure!(
            "losers_refused_cleanly",
            tallied.other.is_empty() && tripped.is_ok(),
            "{label}: other answers {:?}; the trip: {tripped:?}",
            tallied.other
        );
        race::check_everything(&fresh).map_err(|failure| failure.context(&label))?;
    }
    Ok(())
}

/// Two entries into one window, both parked after their checks and before either writes:
/// exactly one is entered, on every run.
fn check_then_set_is_forced(case: &Case) -> Check {
    let fresh = case.fresh(case.seed)?;
    let mut options = fresh.options();
    roomy(&mut options);
    let mut racers = race::open(&fresh, 2, options)?;
    let raced = race::race(
        &mut racers,
        Start::InTurn(BEFORE_RESERVE),
        |index, handle| {
            race::submit_retrying(handle, &attempt_signal("forced", "w-forced", index, 1))
        },
    )?;
    let tallied = race::tally(
        &raced.results,
        &[
            ProblemKind::AlreadyEntered,
            ProblemKind::SerializationConflict,
        ],
    );
    let orders = fresh.venue.placements().len();

    ensure!(
        "one_entry_per_window",
        tallied.placed == 1 && orders == 1,
        "two entries into one window, both past their checks before either wrote: {} placed, {orders} order(s) at the venue; answers {:?}",
        tallied.placed,
        raced.results
    );
    race::check_everything(&fresh)
}

/// A placement parked between its reservation and its venue call, and a trip that returns
/// meanwhile: the placement never reaches the venue, is answered `breaker_open`, and its
/// reservation is released.
fn a_trip_between_reserve_and_venue_is_forced(case: &Case) -> Check {
    let fresh = case.fresh(case.seed)?;
    let mut options = fresh.options();
    roomy(&mut options);
    let mut racers = race::open(&fresh, 2, options)?;
    racers.sync_points.arm(BEFORE_VENUE);
    let points = racers.sync_points.clone();
    let (placer, rest) = racers.handles.split_at_mut(1);
    let answer = std::thread::scope(|scope| {
        let placing = scope.spawn(|| placer[0].submit(&attempt_signal("forced", "w-trip", 0, 1)));
        let parked = points.wait_for(BEFORE_VENUE, 1, race::GATHER_WITHIN);
        let tripped = rest[0].trip_breaker(TripReason::ManualTrip, "operator-1", None);
        points.release(BEFORE_VENUE);
        let answer = placing
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        parked.map_err(Failure::harness)?;
        tripped?;
        Ok::<_, Failure>(answer)
    })?;
    let orders = fresh.venue.placements().len();
    ensure!(
        "nothing_placed_after_trip",
        orders == 0 && matches!(&answer, Err(problem) if problem.kind == ProblemKind::BreakerOpen),
        "a placement parked before its venue call while a trip returned: answered {answer:?}, {orders} order(s) at the venue"
    );
    race::check_everything(&fresh)
}
