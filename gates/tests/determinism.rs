//! # Gate: determinism
//!
//! Given a seed, which fixes a scenario (the book's limits; signals in market windows that
//! follow the clock, repeated signals, partial fills, every venue fault, closes, day rolls,
//! breaker trips and resets, checkpoints) and the simulated venue's behaviour,
//! when the scenario runs on fresh databases, held after every step against the invariants,
//! the venue's truth and the independent model,
//! then the same seed gives a byte-identical book every time and on both backends, pinned
//! seeds give the books reviewed in their snapshots, different scenarios under the same run
//! id give different books, and the event log alone rebuilds every table, for every seed of
//! a sweep.
//!
//! A fault tour runs every venue fault once where it takes effect, so the default run
//! covers every fault whatever the seeds draw.
//!
//! Mutants: a wall-clock timestamp in a row and an event payload whose key order follows a
//! HashMap (caught by `same_seed_same_book`), and a price formatted through a float (caught
//! by `rebuild_from_events`).

use std::time::Instant;

use harness::protocol::{Side, Signal};
use harness::rebuild;
use harness::runner::{self, Run};
use harness::scenario::{self, Scenario, Step, WINDOW_MS};
use harness::sweep::Part;
use harness::venue::{Fault, LookupError};
use harness::{check, ensure, Case, Check, Failure, Seed};

harness::gate_tests! {
    gate: "determinism";
    checks: [
        same_seed_same_book,
        pinned_seeds_match_their_snapshots,
        different_seeds_differ,
                events_rebuild_the_tables,
        seed_sweep_part_1_of_4,
        seed_sweep_part_2_of_4,
        seed_sweep_part_3_of_4,
        seed_sweep_part_4_of_4,
        every_venue_fault_takes_effect,
    ];
    mutants: [
        wall_clock_timestamp_is_caught => (WallClockTimestamp, same_seed_same_book, "same_seed_same_book"),
        hash_map_payload_order_is_caught => (HashMapPayloadOrder, same_seed_same_book, "same_seed_same_book"),
        float_price_is_caught => (FloatPrice, events_rebuild_the_tables, "rebuild_from_events"),
    ];
    differential: [seeded_scenario];
}

/// Seeds a sweep runs unless `--seeds` says otherwise.
const SWEEP_SEEDS_DEFAULT: u64 = 16;

fn scenario_for(seed: Seed) -> Scenario {
    scenario::generate(seed, scenario::steps_max(scenario::STEPS_DEFAULT))
}

/// Runs `scenario` twice on fresh databases and requires byte-identical books.
fn twice_identical(case: &Case, seed: Seed, scenario: &Scenario) -> Result<Run, Failure> {
    let first = runner::run_seed(case, seed, scenario)?;
    let second = runner::run_seed(case, seed, scenario)?;
    if let Some(difference) = first.dump.first_difference(&second.dump) {
        return Err(Failure::new(
            check::SAME_SEED_SAME_BOOK,
            format!("same seed, different books. First difference: {difference}"),
        ));
    }
    Ok(first)
}

/// The tables of a run's book equal their rebuild from its event log alone.
fn rebuilds(run: &Run) -> Check {
    let rebuilt = rebuild::rebuild(&run.dump).map_err(|error| {
        Failure::new(
            check::REBUILD_FROM_EVENTS,
            format!("the event log cannot be rebuilt: {error}"),
        )
    })?;
    match rebuild::rebuilt_part(&run.dump).first_difference(&rebuilt) {
        None => Ok(()),
        Some(difference) => Err(Failure::new(
            check::REBUILD_FROM_EVENTS,
            format!(
                "the tables (left) differ from their rebuild from events (right): {difference}"
            ),
        )),
    }
}

/// On failure, shrinks the scenario and reports the minimal one with its seed.
fn same_seed_same_book(case: &Case) -> Check {
    let steps_max = scenario::steps_max(scenario::STEPS_DEFAULT);
    let seed = case.seed;
    let mut property = |scenario: &Scenario| twice_identical(case, seed, scenario).map(drop);
    match scenario::shrink(seed, steps_max, &mut property) {
        None => Ok(()),
        Some(Ok(shrunk)) => Err(shrunk.failure.append(format!(
            "seed {seed}: shrunk from {} to {} step(s) in {} iteration(s), confirmed by a rerun:\n{}",
            shrunk.original_len,
            shrunk.scenario.steps.len(),
            shrunk.iterations,
            shrunk.scenario
        ))),
        Some(Err(failure)) => Err(failure.context(format!("seed {seed}: shrinking did not hold"))),
    }
}

fn pinned_seeds() -> Result<Vec<Seed>, Failure> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/pinned-seeds.txt");
    let text = std::fs::read_to_string(path)
        .map_err(|error| Failure::harness(format!("{path}: {error}")))?;
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.parse::<Seed>()
                .map_err(|error| Failure::harness(format!("{path}: {error}")))
        })
        .collect()
}

/// One snapshot per pinned seed, shared by every backend (their dumps are identical): the
/// scenario's limits and step trace, then the canonical dump.
fn pinned_seeds_match_their_snapshots(case: &Case) -> Check {
    let seeds = pinned_seeds()?;
    ensure!(
        check::HARNESS,
        !seeds.is_empty(),
        "fixtures/pinned-seeds.txt lists no seed"
    );
    for seed in seeds {
        let scenario = scenario::generate(seed, scenario::STEPS_DEFAULT);
        let run = runner::run_seed(case, seed, &scenario)?;
        let limits = scenario.limits;
        let text = format!(
                        "# seed {seed}\n\nlimits: max open {}, max exposure {}, max daily loss {}, stop-loss {}, take-profit {} (millionths)\n\n## steps\n{}\n\n{}",
            limits.max_open,
            limits.max_exposure,
            limits.max_daily_loss,
            limits.stop_loss,
            limits.take_profit,
            run.trace.join("\n"),
            run.dump.render()
        );
        insta::with_settings!({
            snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"),
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(format!("determinism_{seed}"), text);
        });
    }
    Ok(())
}

/// Two scenarios under the same run id (so the ids of intents do not differ by the seed):
/// only the scenario differs, and so must the books.
fn different_seeds_differ(case: &Case) -> Check {
    let other = Seed(case.seed.0 ^ 1);
    let first = runner::run_seed(case, case.seed, &scenario_for(case.seed))?;
    let mut same_run = case.fresh(other)?;
    same_run.run = case.seed;
    let second = runner::run_scenario(&same_run, &scenario_for(other))?;
    ensure!(
        "different_seeds_differ",
        first.dump.digest() != second.dump.digest(),
        "seeds {} and {other} gave the same digest {} under one run id: the book does not depend on the scenario",
        case.seed,
        first.dump.digest()
    );
    Ok(())
}

fn events_rebuild_the_tables(case: &Case) -> Check {
    rebuilds(&runner::run_seed(
        case,
        case.seed,
        &scenario_for(case.seed),
    )?)
}

/// The operations of the differential check: one seeded scenario.
fn seeded_scenario(case: &Case) -> Check {
    runner::run_scenario(case, &scenario_for(case.seed))?;
    Ok(())
}

harness::sweep_parts!(seed_sweep:
    seed_sweep_part_1_of_4 = 1,
    seed_sweep_part_2_of_4 = 2,
    seed_sweep_part_3_of_4 = 3,
    seed_sweep_part_4_of_4 = 4;
    of 4);

/// `--seeds N` consecutive seeds from the case's seed, in four parts of consecutive seeds:
/// each seed run twice and compared, held against every oracle, and rebuilt from its
/// events.
fn seed_sweep(case: &Case, part: Part) -> Check {
    let (seeds, progress) = part.start(case, SWEEP_SEEDS_DEFAULT, "determinism sweep")?;
    let count = seeds.len() as u64;
    let started = Instant::now();
    for seed in seeds {
        let repro = case
            .repro()
            .with_test("same_seed_same_book")
            .with_seed(seed);
        let run = twice_identical(case, seed, &scenario_for(seed)).map_err(|failure| {
            failure
                .context(format!("seed {seed}"))
                .append(format!("reproduce: {repro}"))
        })?;
        rebuilds(&run).map_err(|failure| failure.context(format!("seed {seed}")))?;
        progress.inc(1);
    }
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "sweep part {part}: {count} seeds x 2 runs on {} in {seconds:.2} s ({:.1} seeds/s)",
        case.backend(),
        count as f64 / seconds
    );
    Ok(())
}

/// Every venue fault once, each where it takes effect (a fresh order after a placement
/// fault, look-ups after a look-up fault, open orders after a market fault, due exits after
/// an exit fault, an evaluation after a position-read fault), the book
/// held against every oracle throughout: the default run covers every fault whatever the
/// seeds draw. Fails if a fault did not take effect.
const LOOKUP_ERRORS: [LookupError; 4] = [
    LookupError::Timeout,
    LookupError::RateLimited,
    LookupError::Unavailable,
    LookupError::Internal,
];

fn every_venue_fault_takes_effect(case: &Case) -> Check {
    let mut steps = Vec::new();
    let mut window = 0;
    let mut signal = |size: i64| {
        window += 1;
        Step::Signal(Signal {
            strategy: "momentum".to_owned(),
            symbol: "ETH-USD".to_owned(),
            window_id: format!("w-{window}"),
            side: Side::Buy,
            size,
            price: 310_000,
            bar_t: window * WINDOW_MS,
            params: "v1".to_owned(),
        })
    };
    for fault in [
        Fault::Reject,
        Fault::RateLimited {
            status: 429,
            retry_after_ms: 2_000,
        },
        Fault::RateLimited {
            status: 503,
            retry_after_ms: 5_000,
        },
        Fault::Internal,
        Fault::TimeoutAfterAccept,
        Fault::InternalAfterAccept,
        Fault::AppearsLate,
        Fault::ReplayFill,
    ] {
        // The signal comes again: an order the venue hid from the book is found then, so the
        // venue holds nothing the book lacks when the exits are evaluated below.
        steps.extend([
            Step::Fault(fault),
            signal(2),
            Step::Repeat { back: 1 },
            Step::Close {
                pick: 0,
                offset: 1_000,
            },
        ]);
    }
    for error in LOOKUP_ERRORS {
        steps.extend([
            Step::Fault(Fault::LookupsFail { error, calls: 1 }),
            Step::Fault(Fault::TimeoutAfterAccept),
            signal(1),
            Step::Close { pick: 0, offset: 0 },
        ]);
    }
    steps.extend([
        Step::Fault(Fault::PartialFill),
        signal(4),
        Step::Fault(Fault::FillsLate),
        Step::SyncFills,
        Step::SyncFills,
        Step::Fault(Fault::PartialFill),
        signal(4),
        Step::Fault(Fault::FillsScrambled),
        Step::SyncFills,
        Step::Fault(Fault::PartialFill),
        signal(4),
        Step::Fault(Fault::Expire),
        Step::SyncFills,
    ]);
    let eth_falls = Step::Exits {
        moves: [0, -50_000],
    };
    steps.extend([
        // ETH falls 5 %: the stop-losses are due. The first exit is refused, then the next
        // times out (the close after finds it at the venue).
        Step::Fault(Fault::ExitRefused),
        eth_falls.clone(),
        Step::Fault(Fault::ExitTimeout),
        eth_falls.clone(),
        eth_falls.clone(),
        // The venue liquidates a position: an orphan, and its exit does not reduce.
        signal(2),
        Step::Fault(Fault::Liquidation),
        eth_falls,
    ]);
    for error in LOOKUP_ERRORS {
        steps.extend([
            Step::Tick { advance_ms: 6_000 },
            Step::Fault(Fault::PositionsFail { error, for_ms: 0 }),
            Step::Exits { moves: [0, 0] },
        ]);
    }
    // Someone trades the account: the venue holds what the book lacks, the breaker trips.
    steps.extend([
        Step::Tick { advance_ms: 6_000 },
        Step::Fault(Fault::ForeignPosition),
        Step::Exits { moves: [0, 0] },
    ]);
    let scenario = Scenario {
        limits: book::Limits::default(),
        steps,
    };
    let fresh = case.fresh(case.seed)?;
    let run = runner::run_scenario(&fresh, &scenario)?;
    let happened = fresh.venue.happened();
    let missing: Vec<&&str> = Fault::NAMES
        .iter()
        .filter(|name| **name != "duplicate_rejected" && **name != "lookup_in_recovery_failed")
        .filter(|name| happened.get(**name).copied().unwrap_or(0) == 0)
        .collect();
    ensure!(
        "fault_tour",
        missing.is_empty(),
        "these venue faults never took effect, so the run proves nothing about them: {missing:?}\ntrace:\n{}",
        run.trace.join("\n")
    );
    Ok(())
}
