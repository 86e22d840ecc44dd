//! Races: many book handles of one process acting at once, as a real engine runs its
//! strategies on threads. Each handle is the reference book in this process on its own
//! connection; all share the process's latch (`book::Latch`) and the case's sync points
//! (`book::SyncPoints`), the venue and the clock.
//!
//! [`race`] runs one attempt per handle, each on its own thread, released together by a
//! barrier, then as [`Start`] says: free; or parked at a sync point until every thread
//! has reached it (every check made, nothing written) and released together; or released
//! from there in turn, each attempt finishing before the next goes on (the interleaving
//! where every check was made before any write, forced on every run). Every wait is
//! bounded: a thread that never arrives fails the round with a clear error.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use book::{BookOptions, SyncPoints};
use protocol::{Outcome, Problem, ProblemKind};

use crate::case::{Case, Failure};
use crate::coverage::Coverage;
use crate::invariants::{self, Phase, Tally, VenueView};
use crate::subject::{self, Subject};

/// How long a gathering waits for every thread to reach its sync point. Only a bound on a
/// test that would otherwise hang (a thread stuck on a lock): never a synchronisation.
pub const GATHER_WITHIN: Duration = Duration::from_secs(120);

/// Book handles that race, sharing one latch and one set of sync points.
pub struct Racers {
    pub handles: Vec<Box<dyn Subject>>,
    pub sync_points: SyncPoints,
}

impl std::fmt::Debug for Racers {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Racers")
            .field("handles", &self.handles.len())
            .finish_non_exhaustive()
    }
}

/// Opens `count` handles of the reference book (in this process: they share in-process
/// state) on `case`'s database, each on its own connection.
pub fn open(case: &Case, count: usize, mut options: BookOptions) -> Result<Racers, Failure> {
    let sync_points = SyncPoints::new();
    options.latch = Some(options.new_latch());
    options.sync_points = Some(sync_points.clone());
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let handle = subject::reference::open(
            &case.database,
            &case.venue,
            &case.clock,
            options.clone(),
            None,
        )
        .map_err(|problem| {
            Failure::harness(format!(
                "opening book handle {} of {count}: {problem}",
                index + 1
            ))
        })?;
        handles.push(handle);
    }
    Ok(Racers {
        handles,
        sync_points,
    })
}

/// What a race produced: each attempt's result, in handle order, and how long the
/// attempts took from the barrier to the last one's end.
#[derive(Debug)]
pub struct Raced<T> {
    pub results: Vec<T>,
    pub elapsed: Duration,
}

/// How the attempts go on after the barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// At once, each at its own pace.
    Free,
    /// Parked at the sync point until all have reached it, then released together.
    Together(&'static str),
    /// Parked at the sync point until all have reached it, then released one at a time,
    /// each attempt finishing before the next is released.
    InTurn(&'static str),
}

impl std::fmt::Display for Start {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Start::Free => formatter.write_str("free"),
            Start::Together(point) => write!(formatter, "gathered at {point}"),
            Start::InTurn(point) => write!(formatter, "in turn from {point}"),
        }
    }
}

/// Runs `attempt(index, handle)` for every handle, each on its own thread, released
/// together by a barrier, then as `start` says.
pub fn race<T: Send>(
    racers: &mut Racers,
    start: Start,
    attempt: impl Fn(usize, &mut dyn Subject) -> T + Sync,
) -> Result<Raced<T>, Failure> {
    let count = racers.handles.len();
    if let Start::Together(point) | Start::InTurn(point) = start {
        racers.sync_points.arm(point);
    }
    let barrier = Barrier::new(count + 1);
    let points = racers.sync_points.clone();
    let (finished, done) = std::sync::mpsc::channel();
    let (results, elapsed, went_on) = std::thread::scope(|scope| {
        let threads: Vec<_> = racers
            .handles
            .iter_mut()
            .enumerate()
            .map(|(index, handle)| {
                let (barrier, attempt, finished) = (&barrier, &attempt, finished.clone());
                scope.spawn(move || {
                    barrier.wait();
                    let result = attempt(index, handle.as_mut());
                    let _ = finished.send(index);
                    result
                })
            })
            .collect();
        barrier.wait();
        let started = Instant::now();
        let went_on = go_on(&points, start, count, &done);
        let results: Vec<T> = threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        (results, started.elapsed(), went_on)
    });
    went_on.map_err(Failure::harness)?;
    Ok(Raced { results, elapsed })
}

/// Lets the parked attempts go on as `start` says; whatever happens, every thread is
/// released in the end, so that none is left parked.
fn go_on(
    points: &SyncPoints,
    start: Start,
    count: usize,
    done: &std::sync::mpsc::Receiver<usize>,
) -> Result<(), String> {
    let (point, in_turn) = match start {
        Start::Free => return Ok(()),
        Start::Together(point) => (point, false),
        Start::InTurn(point) => (point, true),
    };
    let mut outcome = points.wait_for(point, count, GATHER_WITHIN);
    if in_turn && outcome.is_ok() {
        for turn in 0..count {
            points.release_one(point);
            if done.recv_timeout(GATHER_WITHIN).is_err() {
                outcome = Err(format!(
                    "attempt {} of {count}, released in turn, did not finish within {} s",
                    turn + 1,
                    GATHER_WITHIN.as_secs()
                ));
                break;
            }
        }
    }
    points.release(point);
    outcome
}

/// How often an attempt submits again after `serialization_conflict` before it reports
/// the conflict as its answer.
pub const CONFLICT_RETRIES_MAX: usize = 50;

/// An attempt's final answer and the serialization conflicts it met on the way.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub answer: Result<Outcome, Problem>,
    pub conflicts: usize,
}

/// Submits `signal` as an engine does: `serialization_conflict` is the book saying "lost a
/// race, nothing written, try again", so the attempt tries again (a bounded number of
/// times) until it gets a real answer. The conflicts are counted, never hidden.
pub fn submit_retrying(handle: &mut dyn Subject, signal: &protocol::Signal) -> Attempt {
    let mut conflicts = 0;
    loop {
        let answer = handle.submit(signal);
        match &answer {
            Err(problem)
                if problem.kind == ProblemKind::SerializationConflict
                    && conflicts < CONFLICT_RETRIES_MAX =>
            {
                conflicts += 1;
            }
            _ => return Attempt { answer, conflicts },
        }
    }
}

/// The answers of a race of submissions, counted by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tallied {
    pub placed: usize,
    /// Serialization conflicts met (and retried) on the way.
    pub conflicts: usize,
    /// Refusals by problem kind.
    pub refused: std::collections::BTreeMap<ProblemKind, usize>,
    /// Answers that are neither a placement nor one of the refusals the check expects.
    pub other: Vec<String>,
}

impl Tallied {
    pub fn count(&self, kind: ProblemKind) -> usize {
        self.refused.get(&kind).copied().unwrap_or(0)
    }
}

/// Counts `attempts`: placements, the `expected` refusals by kind, and everything else.
pub fn tally(attempts: &[Attempt], expected: &[ProblemKind]) -> Tallied {
    let mut tallied = Tallied::default();
    for attempt in attempts {
        tallied.conflicts += attempt.conflicts;
        match &attempt.answer {
            Ok(Outcome::Placed { .. }) => tallied.placed += 1,
            Err(problem) if expected.contains(&problem.kind) => {
                *tallied.refused.entry(problem.kind).or_default() += 1;
            }
            other => tallied.other.push(format!("{other:?}")),
        }
    }
    tallied
}

/// Every table invariant and the reconciliation with the venue, after a race (nothing is
/// left executing: every attempt was answered).
pub fn check_everything(case: &Case) -> Result<(), Failure> {
    let dump = case.dump()?;
    let mut tally = Tally::default();
    let mut violations = invariants::check(&dump, Phase::Recovered, &mut tally);
    let truth = case.venue.truth();
    let duplicates = case.venue.duplicates();
    let view = VenueView {
        orders: &truth,
        duplicates: &duplicates,
        synced: false,
        phase: Phase::Recovered,
    };
    violations.extend(invariants::reconcile(&dump, &view, &mut tally));
    let mut coverage = Coverage::default();
    coverage.add_tally(&tally);
    crate::report::coverage(&coverage);
    invariants::failure(&violations).map_or(Ok(()), Err)
}

/// Counts a round's attempts, refusals by kind and wall time for the report, and prints
/// the rate.
pub fn report_round(label: &str, tallied: &Tallied, attempts: usize, elapsed: Duration) {
    let mut coverage = Coverage::default();
    coverage.add("race", "attempts", attempts as u64);
    coverage.add("race", "placed", tallied.placed as u64);
    coverage.add(
        "race",
        "serialization_conflicts_retried",
        tallied.conflicts as u64,
    );
    for (kind, count) in &tallied.refused {
        let name = serde_json::to_value(kind)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        coverage.add("race", &name, *count as u64);
    }
    crate::report::coverage(&coverage);
    let seconds = elapsed.as_secs_f64().max(f64::EPSILON);
    println!(
        "{label}: {attempts} attempts in {seconds:.3} s ({:.0}/s): {} placed, refused {:?}, {} serialization conflict(s) retried",
        attempts as f64 / seconds,
        tallied.placed,
        tallied.refused,
        tallied.conflicts
    );
}
