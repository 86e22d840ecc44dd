//! Drives a subject through a scenario step by step and holds it against every oracle after
//! every step, every restart and every recovery: the invariants over its tables, the
//! venue's truth, and the independent model (which also checks each answer). It writes a
//! trace a person can read and counts coverage.
//!
//! With a crash planned, a step that crashes the book is followed by what a real engine
//! does: the process is gone (time may pass while it is down), a new one opens on the same
//! database with the venue's state intact, recovers (retrying look-ups the venue fails, and
//! possibly crashing again inside the recovery), and the crashed step is delivered again:
//! signals, syncs and day rolls because they are idempotent by design, operator commands
//! because they are delivered at least once, with the same command id.

use book::{CrashPlan, Limits};
use protocol::{CrashSite, Outcome, Problem, ProblemKind, Request, Signal, TripReason};

use crate::case::{check, Case, Failure};
use crate::coverage::Coverage;
use crate::dump::Dump;
use crate::invariants::{self, Phase, Tally, VenueView, Violation};
use crate::model::{Answer, Model, Op};
use crate::scenario::{Scenario, Step};
use crate::seed::Seed;
use crate::subject::Subject;

/// A recovery is tried this often before the run gives up on a venue that keeps failing.
const RECOVERY_ATTEMPTS_MAX: u32 = 5;

/// The refusals a scenario expects the book to give: results, not failures. Whether each
/// was due is the model's to say.
const SCENARIO_REFUSALS: &[ProblemKind] = &[
    ProblemKind::AlreadyEntered,
    ProblemKind::LimitReached,
    ProblemKind::DailyLossLimit,
    ProblemKind::BreakerOpen,
    ProblemKind::VenueUnavailable,
    ProblemKind::OpenOrders,
    ProblemKind::NoOpenPosition,
    ProblemKind::Blind,
    ProblemKind::VerificationRateLimited,
    ProblemKind::VerificationFailed,
];

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Run {
    /// One line per step: what happened.
    pub trace: Vec<String>,
    /// The book at the end, after a final recovery.
    pub dump: Dump,
    pub coverage: Coverage,
    /// Where the book crashed.
    pub crashed_at: Vec<CrashSite>,
    /// The sites the first recovery after the first crash passed (with a recording plan
    /// for the restart): where a second crash can hit recovery itself.
    pub recovery_sites: Vec<CrashSite>,
}

/// How a run crashes.
#[derive(Debug, Clone, Default)]
pub struct Crashes {
    /// The plan the book opens with (armed at a site, or recording).
    pub plan: Option<CrashPlan>,
    /// The plan the book reopens with after the first crash: armed at a site of the
    /// recovery (a second crash), or recording the recovery's sites.
    pub on_restart: Option<CrashPlan>,
    /// Logical time that passes while the book is down.
    pub downtime_ms: i64,
    /// Database faults on the book's store seam (in process): a request during which one
    /// fired and that did not succeed is in doubt, like a crash, and the book restarts on a
    /// healthy database.
    pub store_faults: Option<crate::faults::StoreFaultPlan>,
}

/// Runs `scenario` for `seed` on a fresh database like `template`'s (migrated already: the
/// run does not crash).
pub fn run_seed(template: &Case, seed: Seed, scenario: &Scenario) -> Result<Run, Failure> {
    run_scenario(&template.fresh_ready(seed)?, scenario)
}

pub fn run_scenario(case: &Case, scenario: &Scenario) -> Result<Run, Failure> {
    run_with(case, scenario, &Crashes::default())
}

pub fn run_with(case: &Case, scenario: &Scenario, crashes: &Crashes) -> Result<Run, Failure> {
    let mut driver = Driver::open(case, scenario.limits, crashes)?;
    for (index, step) in scenario.steps.iter().enumerate() {
        driver.step(index + 1, step)?;
    }
    let run = driver.finish()?;
    crate::report::coverage(&run.coverage);
    Ok(run)
}

/// Why a request did not return an answer.
enum Interrupt {
    /// The book crashed; the run restarts it.
    Crashed,
    /// A store fault made the request fail; the run checks the book stopped, then restarts
    /// it.
    Faulted(Problem),
    Failed(Failure),
}

impl From<Failure> for Interrupt {
    fn from(failure: Failure) -> Interrupt {
        Interrupt::Failed(failure)
    }
}

/// A request during which the book crashed, for the model.
struct InDoubt {
    op: Op,
    now: i64,
    exchanges: Vec<crate::venue::Exchange>,
    site: Option<CrashSite>,
    /// The book answered that the outcome is unknown: it may have tripped its breaker.
    unknown: bool,
}

struct Driver<'run> {
    case: &'run Case,
    limits: Limits,
    crashes: &'run Crashes,
    subject: Option<Box<dyn Subject>>,
    model: Model,
    tally: Tally,
    coverage: Coverage,
    trace: Vec<String>,
    signals: Vec<Signal>,
    /// The last request was a completed fill sync.
    synced: bool,
    /// What the book did that the model did not expect, reported at the next check.
    surprises: Vec<String>,
    in_doubt: Option<InDoubt>,
    crashed_at: Vec<CrashSite>,
    recovery_sites: Vec<CrashSite>,
    /// A store fault has fired (it fires once).
    fault_seen: bool,
}

impl<'run> Driver<'run> {
    fn open(
        case: &'run Case,
        limits: Limits,
        crashes: &'run Crashes,
    ) -> Result<Driver<'run>, Failure> {
        let mut driver = Driver {
            case,
            limits,
            crashes,
            subject: None,
            model: Model::new(limits, case.options().run.mode == book::Mode::Live),
            tally: Tally::default(),
            coverage: Coverage::default(),
            trace: Vec::new(),
            signals: Vec::new(),
            synced: false,
            surprises: Vec::new(),
            in_doubt: None,
            crashed_at: Vec::new(),
            recovery_sites: Vec::new(),
            fault_seen: false,
        };
        match driver.open_subject(crashes.plan.clone()) {
            Err(crashed) if crashed.kind == ProblemKind::Crashed => {
                driver.note_crash(&crashed, "  0. open");
                driver.open_subject(crashes.plan.clone())?;
            }
            // A store fault while opening (migrating, say): nothing was answered, so the
            // book just opens again on a healthy database.
            Err(faulted) if driver.fault_fired_now() => {
                driver.trace.push(format!("  0. open -> FAULT: {faulted}"));
                if let Some(plan) = &crashes.store_faults {
                    plan.disarm();
                }
                driver.open_subject(crashes.plan.clone())?;
            }
            other => other?,
        }
        Ok(driver)
    }

    fn open_subject(&mut self, plan: Option<CrashPlan>) -> Result<(), Problem> {
        let mut options = self.case.options();
        options.limits = self.limits;
        options.crash_plan = plan;
        let faults = self.crashes.store_faults.clone();
        self.subject = Some(self.case.open_with_faults(options, faults)?);
        Ok(())
    }

    fn note_crash(&mut self, crashed: &Problem, what: &str) {
        let site = crashed.crash_site.clone();
        self.trace.push(format!(
            "{what} -> CRASH at {}",
            site.as_ref()
                .map_or_else(|| crashed.message.clone(), ToString::to_string)
        ));
        if let Some(site) = site {
            self.coverage.add("crash", &site.point.to_string(), 1);
            self.crashed_at.push(site);
        }
    }

    fn failed(&self, failure: Failure) -> Failure {
        failure.append(format!("trace:\n{}", self.trace.join("\n")))
    }

    fn step(&mut self, number: usize, step: &Step) -> Result<(), Failure> {
        self.world(step);
        match self.operate(number, step) {
            Ok(text) => self.trace.push(format!("{number:>3}. {step} -> {text}")),
            Err(Interrupt::Crashed) => {
                let site = self.in_doubt.as_ref().and_then(|doubt| doubt.site.clone());
                let crashed =
                    site.map_or_else(|| "CRASH".to_owned(), |site| format!("CRASH at {site}"));
                self.trace.push(format!("{number:>3}. {step} -> {crashed}"));
                self.restart(number, step)?;
            }
            Err(Interrupt::Faulted(problem)) => self.after_fault(number, step, &problem)?,
            Err(Interrupt::Failed(failure)) => {
                let failure = failure.context(format!("step {number} ({step})"));
                return Err(self.failed(failure));
            }
        }
        self.check(Phase::Running, &format!("step {number} ({step})"))
    }

    /// What a step does to the world outside the book (time, the venue). Done once, even
    /// when the book's part of the step is delivered again after a crash.
    fn world(&self, step: &Step) {
        let case = self.case;
        match step {
            Step::Tick { advance_ms } => case.clock.advance(*advance_ms),
            Step::Fault(fault) => case.venue.arm(*fault),
            Step::SyncFills => case.venue.fill_open_orders(),
            Step::RollDay => case.clock.advance(book::clock::DAY_MS),
            Step::Exits { .. }
            | Step::Signal(_)
            | Step::Repeat { .. }
            | Step::Close { .. }
            | Step::Trip
            | Step::Reset
            | Step::Checkpoint => {}
        }
    }

    /// The book's part of a step, as trace text.
    fn operate(&mut self, number: usize, step: &Step) -> Result<String, Interrupt> {
        let command_id = format!("step-{number}");
        match step {
            Step::Tick { .. } => Ok(format!("now {} ms", self.case.clock_now())),
            Step::Fault(_) => Ok("armed".to_owned()),
            Step::Signal(signal) => {
                self.signals.push(signal.clone());
                self.submit(signal)
            }
            Step::Repeat { back } => match self.signals.len().checked_sub(*back) {
                Some(index) => {
                    let signal = self.signals[index].clone();
                    self.submit(&signal)
                }
                None => Ok("nothing to repeat".to_owned()),
            },
            Step::SyncFills => self.sync(),
            Step::Close { pick, offset } => self.close(*pick, *offset, command_id),
            Step::RollDay => self.simple(Op::RollDay, "new day"),
            Step::Trip => self.simple(
                Op::Trip {
                    reason: TripReason::ManualTrip,
                    command_id,
                },
                "open",
            ),
            Step::Reset => self.simple(Op::Reset { command_id }, "closed"),
            Step::Exits { moves } => self.exits(*moves),
            Step::Checkpoint => {
                let value = format!("bar-at-{}", self.case.clock_now());
                self.simple(
                    Op::Checkpoint {
                        name: "last_bar".to_owned(),
                        value: value.clone(),
                        command_id,
                    },
                    &value,
                )
            }
        }
    }

    /// Sends `op` to the book and hands the answer and the venue's journal to the model.
    fn call(&mut self, op: Op) -> Result<Result<serde_json::Value, Problem>, Interrupt> {
        let now = self.case.clock_now();
        let result = match self.subject.as_mut() {
            Some(subject) => subject.request(request(&op)),
            None => Err(Problem::new(ProblemKind::Protocol, "no book is open")),
        };
        let exchanges = self.case.venue.drain_journal();
        self.synced = false;
        if let Err(crashed) = &result {
            if crashed.kind == ProblemKind::Crashed {
                let site = crashed.crash_site.clone();
                self.in_doubt = Some(InDoubt {
                    op,
                    now,
                    exchanges,
                    site,
                    unknown: false,
                });
                return Err(Interrupt::Crashed);
            }
        }
        if self.fault_fired_now() {
            if let Err(problem) = &result {
                let unknown = problem.kind == ProblemKind::OutcomeUnknown;
                self.in_doubt = Some(InDoubt {
                    op,
                    now,
                    exchanges,
                    site: None,
                    unknown,
                });
                return Err(Interrupt::Faulted(problem.clone()));
            }
        }
        let answer = answer_of(&op, &result);
        self.coverage.add("answer", &answer_name(&answer), 1);
        let surprises = self.model.apply(&op, now, &exchanges, &answer, None);
        self.surprises.extend(surprises);
        if let Err(problem) = &result {
            if !SCENARIO_REFUSALS.contains(&problem.kind)
                && problem.kind != ProblemKind::VenueUncertain
            {
                return Err(Interrupt::Failed(Failure::from(problem.clone())));
            }
        }
        Ok(result)
    }

    /// Whether the store fault fired during the request just made.
    fn fault_fired_now(&mut self) -> bool {
        let fired = self
            .crashes
            .store_faults
            .as_ref()
            .and_then(|plan| plan.fired());
        let now = fired.is_some() && !self.fault_seen;
        if let Some(fault) = fired.as_ref().filter(|_| now) {
            let op = match fault.site {
                crate::faults::FaultSite::Op { op, .. } => op.name(),
                _ => "statement",
            };
            self.coverage
                .add("store_fault", &format!("{}@{op}", fault.fault.name()), 1);
        }
        self.fault_seen |= fired.is_some();
        now
    }

    /// A store fault made a request fail. After an unknown outcome the book must place
    /// nothing more (a probe signal is refused and reaches no venue); then it restarts on a
    /// healthy database, recovers, and gets the step again.
    fn after_fault(
        &mut self,
        number: usize,
        step: &Step,
        problem: &Problem,
    ) -> Result<(), Failure> {
        let fault = self
            .crashes
            .store_faults
            .as_ref()
            .and_then(|plan| plan.fired())
            .map_or_else(String::new, |fault| fault.to_string());
        self.trace
            .push(format!("{number:>3}. {step} -> FAULT {fault}: {problem}"));
        if problem.kind == ProblemKind::OutcomeUnknown {
            self.probe().map_err(|failure| self.failed(failure))?;
        }
        if let Some(plan) = &self.crashes.store_faults {
            plan.disarm();
        }
        self.restart(number, step)
    }

    /// A signal no scenario sends: after an unknown outcome it must be refused, unsent.
    fn probe(&mut self) -> Result<(), Failure> {
        let signal = Signal {
            strategy: "probe".to_owned(),
            symbol: "BTC-USD".to_owned(),
            window_id: format!("probe-{}", self.trace.len()),
            side: protocol::Side::Buy,
            size: 1,
            price: 4_200_000,
            bar_t: self.case.clock_now(),
            params: "probe".to_owned(),
        };
        let placements = self.case.venue.placements().len();
        let result = match self.subject.as_mut() {
            Some(subject) => subject.request(Request::Submit { signal }),
            None => return Ok(()),
        };
        self.case.venue.drain_journal();
        let sent = self.case.venue.placements().len() > placements;
        let answered = match &result {
            Ok(value) => format!("answered {value}"),
            Err(problem) => format!("refused: {problem}"),
        };
        self.trace.push(format!(
            "     probe after the unknown outcome -> {answered}"
        ));
        if sent || result.is_ok() {
            return Err(Failure::new(
                "nothing_placed_after_unknown_outcome",
                format!("after an unknown outcome the book still took a new signal ({answered}; sent to the venue: {sent})"),
            ));
        }
        Ok(())
    }

    fn simple(&mut self, op: Op, done: &str) -> Result<String, Interrupt> {
        Ok(match self.call(op)? {
            Ok(_) => done.to_owned(),
            Err(refusal) => format!("refused: {refusal}"),
        })
    }

    fn submit(&mut self, signal: &Signal) -> Result<String, Interrupt> {
        match self.call(Op::Submit(signal.clone()))? {
            Ok(value) => Ok(match serde_json::from_value::<Outcome>(value) {
                Ok(Outcome::Placed {
                    intent_id,
                    order_id,
                    ..
                }) => format!("placed {intent_id} as {order_id}"),
                Ok(Outcome::Existing { intent_id, status }) => {
                    format!("existing {intent_id} ({})", status.as_str())
                }
                Ok(Outcome::Rejected {
                    intent_id, reason, ..
                }) => format!("rejected {intent_id}: {reason}"),
                Err(error) => {
                    return Err(Interrupt::Failed(Failure::new(
                        check::BOOK_ANSWERED,
                        format!("the submit answer does not fit: {error}"),
                    )))
                }
            }),
            Err(uncertain) if uncertain.kind == ProblemKind::VenueUncertain => {
                // The engine's next tick: ask the venue, settle the intent.
                let recovered = self.recover()?;
                let source = uncertain
                    .venue_error
                    .as_ref()
                    .map_or_else(|| uncertain.message.clone(), ToString::to_string);
                let intent_id = uncertain.intent_id.as_deref().unwrap_or("?");
                Ok(format!("uncertain ({source}) for {intent_id}; {recovered}"))
            }
            Err(refusal) => Ok(format!("refused: {refusal}")),
        }
    }

    fn sync(&mut self) -> Result<String, Interrupt> {
        match self.call(Op::SyncFills)? {
            Ok(value) => {
                self.synced = true;
                Ok(format!(
                    "{} new fill(s)",
                    value
                        .get("new_fills")
                        .and_then(serde_json::Value::as_u64)
                        .unwrap_or(0)
                ))
            }
            Err(incomplete) => Ok(format!("incomplete: {incomplete}")),
        }
    }

    fn close(&mut self, pick: usize, offset: i64, command_id: String) -> Result<String, Interrupt> {
        let open = self.model.open_positions();
        if open.is_empty() {
            return Ok("no open position".to_owned());
        }
        let (intent_id, entry) = open[pick % open.len()].clone();
        let exit_price = (entry + entry * offset / 1_000_000).max(1);
        let op = Op::Close {
            intent_id: intent_id.clone(),
            exit_price,
            command_id,
        };
        Ok(match self.call(op)? {
            Ok(value) => format!(
                "closed {intent_id} at {exit_price}, pnl {}",
                value
                    .get("realized_pnl")
                    .and_then(serde_json::Value::as_i64)
                    .unwrap_or(0)
            ),
            Err(refusal) => format!("refused: {refusal}"),
        })
    }

    fn exits(&mut self, moves: [i64; 2]) -> Result<String, Interrupt> {
        let op = Op::EvaluateExits {
            marks: crate::scenario::marks(moves),
            stop_loss: true,
            take_profit: true,
        };
        Ok(match self.call(op)? {
            Ok(value) => match serde_json::from_value::<protocol::ExitReport>(value) {
                Ok(report) => describe_exits(&report),
                Err(error) => {
                    return Err(Interrupt::Failed(Failure::new(
                        check::BOOK_ANSWERED,
                        format!("the evaluate_exits answer does not fit: {error}"),
                    )))
                }
            },
            Err(refusal) => format!("refused: {refusal}"),
        })
    }

    /// Recovers, retrying while the venue fails the look-ups (a bounded number of times).
    fn recover(&mut self) -> Result<String, Interrupt> {
        let mut failed = 0;
        for _attempt in 0..RECOVERY_ATTEMPTS_MAX {
            match self.call(Op::Recover)? {
                Ok(value) => {
                    let retried = if failed > 0 {
                        format!(" (after {failed} failed attempt(s))")
                    } else {
                        String::new()
                    };
                    return Ok(format!(
                        "recover{retried} -> confirmed {}, released {}",
                        value["confirmed"], value["released"]
                    ));
                }
                Err(_) => {
                    failed += 1;
                    self.case.venue.count("lookup_in_recovery_failed");
                }
            }
        }
        Ok(format!(
            "recover incomplete after {RECOVERY_ATTEMPTS_MAX} attempts"
        ))
    }

    /// The process is gone: connections close, open transactions roll back. A new book
    /// opens on the same database, recovers, and gets the crashed step again.
    fn restart(&mut self, number: usize, step: &Step) -> Result<(), Failure> {
        self.crash_restart(number)?;
        self.check(
            Phase::Recovered,
            &format!("the restart after step {number}"),
        )?;
        if matches!(step, Step::Signal(_)) {
            self.signals.pop();
        }
        match self.operate(number, step) {
            Ok(text) => self
                .trace
                .push(format!("     re-delivered: {step} -> {text}")),
            Err(Interrupt::Crashed | Interrupt::Faulted(_)) => {
                return Err(self.failed(Failure::harness(
                    "the book crashed again on the re-delivered step; a plan fires once",
                )))
            }
            Err(Interrupt::Failed(failure)) => {
                return Err(
                    self.failed(failure.context(format!("re-delivering step {number} ({step})")))
                )
            }
        }
        Ok(())
    }

    /// Hands the crashed request to the model, lets time pass, reopens and recovers (again
    /// after a second crash inside the recovery).
    fn crash_restart(&mut self, number: usize) -> Result<(), Failure> {
        let mut plan = self.crashes.on_restart.clone();
        let mut restarts = 0;
        while let Some(doubt) = self.in_doubt.take() {
            restarts += 1;
            self.subject = None;
            self.settle_doubt(doubt)?;
            if self.crashes.downtime_ms > 0 && restarts == 1 {
                self.case.clock.advance(self.crashes.downtime_ms);
                self.coverage.add("crash", "downtime", 1);
                self.trace
                    .push(format!("     down for {} ms", self.crashes.downtime_ms));
            }
            self.open_subject(plan.take()).map_err(Failure::from)?;
            self.model.restarted();
            // What the crash left, before recovery touches it: intents may be executing.
            self.check(
                Phase::Running,
                &format!("the restart after step {number}, before recovery"),
            )?;
            let passed_before = self
                .crashes
                .on_restart
                .as_ref()
                .map_or(0, |plan| plan.passed().len());
            match self.recover() {
                Ok(text) => self.trace.push(format!("     restart: {text}")),
                Err(Interrupt::Crashed | Interrupt::Faulted(_)) => {
                    self.coverage.add("crash", "during_recovery", 1);
                    self.trace
                        .push("     restart: recover -> CRASH again".to_owned());
                    continue;
                }
                Err(Interrupt::Failed(failure)) => {
                    return Err(self.failed(failure.context("recovering after the crash")))
                }
            }
            if restarts == 1 && self.recovery_sites.is_empty() {
                if let Some(recording) = &self.crashes.on_restart {
                    self.recovery_sites = recording.passed()[passed_before..].to_vec();
                }
            }
        }
        Ok(())
    }

    /// The model learns what may have committed before the crash.
    fn settle_doubt(&mut self, doubt: InDoubt) -> Result<(), Failure> {
        if let Some(site) = &doubt.site {
            self.coverage.add("crash", &site.point.to_string(), 1);
            self.crashed_at.push(site.clone());
        }
        // A submitted signal's intent may have been reserved before the crash: the id the
        // book gave it is in its tables (ids are the book's to choose).
        let name = match &doubt.op {
            Op::Submit(signal) => intent_named(&self.case.dump()?, signal),
            _ => None,
        };
        self.model
            .crashed(&doubt.op, doubt.now, &doubt.exchanges, name.as_deref());
        if doubt.unknown {
            self.model.maybe_tripped(TripReason::PositionTrackingFailed);
        }
        Ok(())
    }

    /// Every oracle, over the book as it is now.
    fn check(&mut self, phase: Phase, after: &str) -> Result<(), Failure> {
        let dump = self.case.dump()?;
        let mut violations = invariants::check(&dump, phase, &mut self.tally);
        let truth = self.case.venue.truth();
        let duplicates = self.case.venue.duplicates();
        let view = VenueView {
            orders: &truth,
            duplicates: &duplicates,
            synced: self.synced,
            phase,
        };
        violations.extend(invariants::reconcile(&dump, &view, &mut self.tally));
        if let Err(difference) = self.model.compare(&crate::state::from_dump(&dump)) {
            violations.push(Violation {
                invariant: check::MODEL_STATE,
                detail: format!("the book differs from the model: {difference}"),
            });
        }
        for surprise in std::mem::take(&mut self.surprises) {
            violations.push(Violation {
                invariant: check::MODEL_ANSWER,
                detail: surprise,
            });
        }
        match invariants::failure(&violations) {
            None => Ok(()),
            Some(failure) => Err(self.failed(failure.context(format!("after {after}")))),
        }
    }

    fn finish(mut self) -> Result<Run, Failure> {
        match self.recover() {
            Ok(text) => self.trace.push(format!("end: {text}")),
            Err(Interrupt::Crashed | Interrupt::Faulted(_)) => {
                return Err(self.failed(Failure::harness(
                    "the book crashed in the final recovery; a plan fires once",
                )))
            }
            Err(Interrupt::Failed(failure)) => {
                return Err(self.failed(failure.context("the final recovery")))
            }
        }
        self.check(Phase::Recovered, "the final recovery")?;
        self.coverage.add_tally(&self.tally);
        self.coverage.add_faults(&self.case.venue.happened());
        Ok(Run {
            dump: self.case.dump()?,
            trace: self.trace,
            coverage: self.coverage,
            crashed_at: self.crashed_at,
            recovery_sites: self.recovery_sites,
        })
    }
}

/// The protocol request for `op`.
fn request(op: &Op) -> Request {
    match op.clone() {
        Op::Submit(signal) => Request::Submit { signal },
        Op::Recover => Request::Recover,
        Op::SyncFills => Request::SyncFills,
        Op::Close {
            intent_id,
            exit_price,
            command_id,
        } => Request::ClosePosition {
            intent_id,
            exit_price,
            command_id: Some(command_id),
        },
        Op::Trip { reason, command_id } => Request::TripBreaker {
            reason,
            operator: "operator-1".to_owned(),
            command_id: Some(command_id),
        },
        Op::Reset { command_id } => Request::ResetBreaker {
            operator: "operator-1".to_owned(),
            reason: "checked".to_owned(),
            command_id: Some(command_id),
        },
        Op::Checkpoint {
            name,
            value,
            command_id,
        } => Request::Checkpoint {
            name,
            value,
            command_id: Some(command_id),
        },
        Op::RollDay => Request::RollDay,
        Op::EvaluateExits {
            marks,
            stop_loss,
            take_profit,
        } => Request::EvaluateExits {
            marks,
            stop_loss,
            take_profit,
        },
    }
}

/// An exit report as trace text: how the venue was verified, what closed.
fn describe_exits(report: &protocol::ExitReport) -> String {
    let verified = match &report.verification {
        protocol::Verification::Verified => "verified".to_owned(),
        protocol::Verification::Cached { age_ms } => format!("cached ({age_ms} ms old)"),
        protocol::Verification::Skipped => "not verified (paper)".to_owned(),
    };
    let exits: Vec<String> = report
        .exits
        .iter()
        .map(|exit| match (exit.realized_pnl, &exit.refused) {
            (Some(pnl), _) => format!("{} {:?} pnl {pnl}", exit.intent_id, exit.reason),
            (None, refused) => format!(
                "{} {:?} refused ({})",
                exit.intent_id,
                exit.reason,
                refused.as_deref().unwrap_or("?")
            ),
        })
        .collect();
    let orphans = if report.orphans.is_empty() {
        String::new()
    } else {
        format!("; orphans {:?}", report.orphans)
    };
    format!("{verified}{orphans}; exits [{}]", exits.join(", "))
}

fn answer_of(op: &Op, result: &Result<serde_json::Value, Problem>) -> Answer {
    match result {
        Err(problem) => Answer::Problem(problem.kind, problem.intent_id.clone()),
        Ok(value) => match op {
            Op::Submit(_) => serde_json::from_value::<Outcome>(value.clone())
                .map_or(Answer::Done, |outcome| Answer::of(&outcome)),
            _ => Answer::Done,
        },
    }
}

fn answer_name(answer: &Answer) -> String {
    match answer {
        Answer::Placed { .. } => "placed".to_owned(),
        Answer::Existing { .. } => "existing".to_owned(),
        Answer::Rejected { .. } => "rejected".to_owned(),
        Answer::Done => "done".to_owned(),
        Answer::Problem(kind, _) => serde_json::to_value(kind)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default(),
    }
}

/// The id of the intent the book holds for `signal`, if it holds one.
fn intent_named(dump: &Dump, signal: &Signal) -> Option<String> {
    crate::state::from_dump(dump)
        .intents
        .into_iter()
        .find(|intent| {
            intent.strategy == signal.strategy
                && intent.window_id == signal.window_id
                && intent.symbol == signal.symbol
                && intent.side == signal.side
                && intent.size == signal.size
                && intent.price == signal.price
                && intent.bar_t == signal.bar_t
        })
        .map(|intent| intent.intent_id)
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
