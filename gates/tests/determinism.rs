//! # Gate: determinism
//!
//! Given a seed, which fixes a scenario (signals, repeats, partial fills, venue faults,
//! closes, day rolls, breaker trips) and the simulated venue's behaviour,
//! when the scenario runs on fresh databases, checking every invariant after every step,
//! then the same seed gives a byte-identical book every time and on both backends, pinned
//! seeds give the books reviewed in their snapshots, different seeds give different books,
//! and the event log alone rebuilds every table.
//!
//! Mutants: a wall-clock timestamp in a row and an event payload whose key order follows a
//! HashMap (caught by "same seed, same book"), and a price formatted through a float
//! (caught by the rebuild from events).

use std::time::Instant;

use harness::rebuild;
use harness::runner::{self, Run};
use harness::scenario::{self, Step};
use harness::{ensure, Case, Check, Failure, Seed};

harness::gate_tests! {
    gate: "determinism";
    checks: [
        same_seed_same_book,
        pinned_seeds_match_their_snapshots,
        different_seeds_differ,
        events_rebuild_the_tables,
        seed_sweep,
    ];
    mutants: [
        wall_clock_timestamp_is_caught => (WallClockTimestamp, same_seed_same_book, "same seed, different books"),
        hash_map_payload_order_is_caught => (HashMapPayloadOrder, same_seed_same_book, "same seed, different books"),
        float_price_is_caught => (FloatPrice, events_rebuild_the_tables, "price"),
    ];
    differential: [seeded_scenario];
}

/// Seeds a sweep runs unless `--seeds` says otherwise.
const SWEEP_SEEDS_DEFAULT: u64 = 8;

fn steps_for(seed: Seed) -> Vec<Step> {
    scenario::generate(seed, scenario::steps_max(scenario::STEPS_DEFAULT))
}

/// Runs `steps` twice on fresh databases and requires byte-identical books.
fn twice_identical(case: &Case, seed: Seed, steps: &[Step]) -> Result<Run, String> {
    let first = runner::run_seed(case, seed, steps).map_err(|failure| failure.0)?;
    let second = runner::run_seed(case, seed, steps).map_err(|failure| failure.0)?;
    if let Some(difference) = first.dump.first_difference(&second.dump) {
        return Err(format!(
            "same seed, different books. First difference: {difference}"
        ));
    }
    Ok(first)
}

/// On failure, shrinks the scenario and reports the minimal one with its seed.
fn same_book_or_shrunk(case: &Case, seed: Seed) -> Check {
    let steps_max = scenario::steps_max(scenario::STEPS_DEFAULT);
    let mut property = |steps: &[Step]| twice_identical(case, seed, steps).map(drop);
    match scenario::shrink(seed, steps_max, &mut property) {
        None => Ok(()),
        Some(Ok(shrunk)) => Err(Failure(format!(
            "{}\nseed {seed}: shrunk from {} to {} step(s) in {} iteration(s), confirmed by a rerun:\n{}",
            shrunk.failure,
            shrunk.original_len,
            shrunk.steps.len(),
            shrunk.iterations,
            shrunk.steps.iter().enumerate().map(|(index, step)| format!("  {}. {step}", index + 1)).collect::<Vec<_>>().join("\n")
        ))),
        Some(Err(reason)) => Err(Failure(format!("seed {seed}: the scenario failed, and shrinking it did not hold: {reason}"))),
    }
}

fn same_seed_same_book(case: &Case) -> Check {
    same_book_or_shrunk(case, case.seed)
}

fn pinned_seeds() -> Result<Vec<Seed>, Failure> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/pinned-seeds.txt");
    let text =
        std::fs::read_to_string(path).map_err(|error| Failure(format!("{path}: {error}")))?;
    text.lines()
        .map(|line| line.split('#').next().unwrap_or_default().trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            line.parse::<Seed>()
                .map_err(|error| Failure(format!("{path}: {error}")))
        })
        .collect()
}

/// One snapshot per pinned seed, shared by both backends (their dumps are identical): the
/// step trace, then the canonical dump.
fn pinned_seeds_match_their_snapshots(case: &Case) -> Check {
    let seeds = pinned_seeds()?;
    ensure!(!seeds.is_empty(), "fixtures/pinned-seeds.txt lists no seed");
    for seed in seeds {
        let run = runner::run_seed(
            case,
            seed,
            &scenario::generate(seed, scenario::STEPS_DEFAULT),
        )?;
        let text = format!(
            "# seed {seed}\n\n## steps\n{}\n\n{}",
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

fn different_seeds_differ(case: &Case) -> Check {
    let other = Seed(case.seed.0 ^ 1);
    let first = runner::run_seed(case, case.seed, &steps_for(case.seed))?;
    let second = runner::run_seed(case, other, &steps_for(other))?;
    ensure!(
        first.dump.digest() != second.dump.digest(),
        "seeds {} and {other} gave the same digest {}: the digest does not depend on the run",
        case.seed,
        first.dump.digest()
    );
    Ok(())
}

fn events_rebuild_the_tables(case: &Case) -> Check {
    let run = runner::run_seed(case, case.seed, &steps_for(case.seed))?;
    let rebuilt = rebuild::rebuild(&run.dump)
        .map_err(|error| Failure(format!("the event log cannot be rebuilt: {error}")))?;
    let tables = rebuild::rebuilt_part(&run.dump);
    match tables.first_difference(&rebuilt) {
        None => Ok(()),
        Some(difference) => Err(Failure(format!(
            "the tables (left) differ from their rebuild from events (right): {difference}"
        ))),
    }
}

/// The operations of the differential check: one seeded scenario.
fn seeded_scenario(case: &Case) -> Check {
    runner::run_scenario(case, &steps_for(case.seed))?;
    Ok(())
}

/// `--seeds N` consecutive seeds from the case's seed, each run twice.
fn seed_sweep(case: &Case) -> Check {
    let count = harness::Settings::get()
        .seeds
        .unwrap_or(SWEEP_SEEDS_DEFAULT);
    let progress = runner::progress(count, &format!("determinism sweep on {}", case.backend()));
    let started = Instant::now();
    let mut checks = 0;
    for offset in 0..count {
        let seed = Seed(case.seed.0.wrapping_add(offset));
        let run = twice_identical(case, seed, &steps_for(seed)).map_err(|failure| {
            Failure(format!(
                "seed {seed}: {failure}\nreproduce: {}",
                case.repro()
                    .with_test("same_seed_same_book")
                    .with_seed(seed)
            ))
        })?;
        checks += run.invariant_checks;
        progress.inc(1);
    }
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "sweep: {count} seeds x 2 runs on {} in {seconds:.2} s ({:.1} seeds/s), {checks} invariant evaluations in the first runs",
        case.backend(),
        count as f64 / seconds
    );
    Ok(())
}
