//! loom models of the latch: every interleaving within the preemption bound.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p latch --release --test loom
//! ```
//!
//! (`cargo xtask verify race` runs them and reports each model's interleavings.)
//!
//! The property, `no_placement_after_halt`: once `halt` returns, no placement is in flight
//! and none starts. Each model runs placements and halts on loom threads; a placement that
//! is in flight while a halt has returned fails the model with a [`Violation`] named by
//! that property, never by the words of a message.
#![cfg(loom)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use latch::{Flaw, Halt, Latch};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// Preemptions loom may add to each execution: enough for every model here (two or three
/// threads, a handful of operations) to be explored exhaustively.
const PREEMPTION_BOUND: usize = 3;

/// A broken property, by name (the payload of the model's panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Violation(&'static str);

const NO_PLACEMENT_AFTER_HALT: &str = "no_placement_after_halt";
const RESUME_REOPENS: &str = "resume_reopens";

/// Writes the case record `cargo xtask verify race` reads (the format of
/// `harness::report::CaseRecord`), when it gave a results directory.
fn record(test: &str, mutant: bool, outcome: &Result<(String, usize), String>, millis: u128) {
    let Some(directory) = std::env::var_os("BOOKPROOF_RESULTS_DIR") else {
        return;
    };
    let (passed, detail, explored) = match outcome {
        Ok((detail, explored)) => (true, detail.clone(), *explored),
        Err(detail) => (false, detail.clone(), 0),
    };
    let record = serde_json::json!({
        "gate": "race",
        "backend": "loom",
        "test": test,
        "kind": if mutant { "mutant" } else { "check" },
        "outcome": if passed { "pass" } else { "fail" },
        "detail": detail,
        "checks": if passed { Vec::new() } else { vec![NO_PLACEMENT_AFTER_HALT] },
        "seed": "exhaustive",
        "millis": u64::try_from(millis).unwrap_or(u64::MAX),
        "repro": format!("RUSTFLAGS=\"--cfg loom\" CARGO_TARGET_DIR=target/loom cargo test -p latch --release --test loom -- {test}"),
        "coverage": { format!("loom:{test}"): explored },
    });
    let path = std::path::Path::new(&directory).join(format!("race--loom--{test}.json"));
    if let Err(error) =
        std::fs::create_dir_all(&directory).and_then(|()| std::fs::write(&path, record.to_string()))
    {
        eprintln!("could not write {}: {error}", path.display());
    }
}

/// Checks `outcome`, after recording it.
fn report(test: &str, mutant: bool, started: Instant, outcome: Result<(String, usize), String>) {
    record(test, mutant, &outcome, started.elapsed().as_millis());
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

/// Runs `model` over every interleaving; the number explored, and how long it took.
fn explore(name: &str, model: impl Fn() + Sync + Send + 'static) -> usize {
    static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
    EXECUTIONS.store(0, Ordering::SeqCst);
    let started = Instant::now();
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(PREEMPTION_BOUND);
    builder.check(move || {
        EXECUTIONS.fetch_add(1, Ordering::SeqCst);
        model();
    });
    let executions = EXECUTIONS.load(Ordering::SeqCst);
    println!(
        "loom model {name}: {executions} interleavings explored in {:.2} s (preemption bound {PREEMPTION_BOUND})",
        started.elapsed().as_secs_f64()
    );
    executions
}

/// One placement: in flight from `enter` to the drop of its pass. While in flight, no halt
/// may have returned.
fn place(latch: &Latch, halt_returned: &Mutex<bool>) {
    if let Ok(pass) = latch.enter() {
        // The venue call.
        if *halt_returned.lock().expect("lock") {
            std::panic::panic_any(Violation(NO_PLACEMENT_AFTER_HALT));
        }
        drop(pass);
    }
}

fn halt(latch: &Latch, halt_returned: &Mutex<bool>) {
    latch.halt(Halt::BreakerTripped("ManualTrip".to_owned()));
    *halt_returned.lock().expect("lock") = true;
    if latch.in_flight() != 0 {
        std::panic::panic_any(Violation(NO_PLACEMENT_AFTER_HALT));
    }
}

/// Two placements race a halt.
fn placements_race_a_halt(latch: fn() -> Latch) -> impl Fn() + Sync + Send + 'static {
    move || {
        let latch = latch();
        let halt_returned = Arc::new(Mutex::new(false));
        let placers: Vec<_> = (0..2)
            .map(|_| {
                let (latch, halt_returned) = (latch.clone(), Arc::clone(&halt_returned));
                thread::spawn(move || place(&latch, &halt_returned))
            })
            .collect();
        halt(&latch, &halt_returned);
        for placer in placers {
            placer.join().expect("placer");
        }
    }
}

/// A halt, a resume and a placement race: the placement is refused or runs, and after the
/// resume a placement always starts.
fn a_resume_reopens() {
    let latch = Latch::new();
    let halt_returned = Arc::new(Mutex::new(false));
    let placer = {
        let (latch, halt_returned) = (latch.clone(), Arc::clone(&halt_returned));
        thread::spawn(move || place(&latch, &halt_returned))
    };
    latch.halt(Halt::OutcomeUnknown("recording failed".to_owned()));
    latch.resume();
    if latch.enter().is_err() {
        std::panic::panic_any(Violation(RESUME_REOPENS));
    }
    placer.join().expect("placer");
}

/// A model that passed must have explored more than one interleaving, or it proved nothing.
fn explored_enough(explored: usize) -> Result<(String, usize), String> {
    if explored > 1 {
        Ok((format!("{explored} interleavings explored"), explored))
    } else {
        Err(format!(
            "loom explored {explored} interleaving(s): the model proves nothing"
        ))
    }
}

#[test]
fn placements_racing_a_halt_never_run_after_it_returned() {
    let started = Instant::now();
    let explored = explore(
        "placements_racing_a_halt",
        placements_race_a_halt(Latch::new),
    );
    report(
        "placements_racing_a_halt_never_run_after_it_returned",
        false,
        started,
        explored_enough(explored),
    );
}

#[test]
fn a_resume_lets_placements_start_again() {
    let started = Instant::now();
    let explored = explore("a_resume_reopens", a_resume_reopens);
    report(
        "a_resume_lets_placements_start_again",
        false,
        started,
        explored_enough(explored),
    );
}

/// The mutant: loom must find the interleaving where the relaxed fast path lets a
/// placement start after the halt returned, and name the property it breaks.
#[test]
fn a_latch_checked_before_the_count_is_caught() {
    let started = Instant::now();
    let flawed = || Latch::with_flaw(Flaw::CheckedBeforeCount);
    let caught = std::panic::catch_unwind(|| {
        explore(
            "placements_racing_a_halt (mutant)",
            placements_race_a_halt(flawed),
        )
    });
    let outcome = match caught {
        Ok(explored) => Err(format!("mutant latch-checked-before-count survived: loom explored {explored} interleavings without a violation")),
        Err(payload) => match payload.downcast_ref::<Violation>() {
            Some(Violation(name)) if *name == NO_PLACEMENT_AFTER_HALT => Ok((
                format!("mutant latch-checked-before-count caught by {NO_PLACEMENT_AFTER_HALT}"),
                1,
            )),
            other => Err(format!("mutant latch-checked-before-count failed otherwise: {other:?}")),
        },
    };
    report(
        "a_latch_checked_before_the_count_is_caught",
        true,
        started,
        outcome,
    );
}
