//! One case of a gate: a fresh database on one backend, a seed, a clock, a venue, and how
//! the book runs. Gates receive a `&Case` and open subjects on it.

use book::store::{Backend, Store, StoreError};
use book::{BookOptions, Limits, Mode, Mutant, RunSpec};
use protocol::Problem;

use crate::database::Database;
use crate::dump::{self, Dump};
use crate::invariants::{self, Phase};
use crate::seed::Seed;
use crate::settings::{Repro, Settings};
use crate::subject::{self, Subject, SubjectKind};
use crate::venue::SimVenue;
use crate::SimClock;

/// Names of the checks that are not invariants. Invariants are named in
/// [`crate::invariants`]; a gate's own checks name themselves in `ensure!`.
pub mod check {
    /// The harness itself failed (a database it could not read, a file it could not
    /// write): never counts as catching a mutant.
    pub const HARNESS: &str = "harness";
    /// The book failed a request it should have answered (an error that is not a refusal
    /// the scenario expects).
    pub const BOOK_ANSWERED: &str = "book_answered";
    /// The book's state differs from the independent model's.
    pub const MODEL_STATE: &str = "model_state";
    /// The book answered differently from what the model expected (a placement where a
    /// refusal was due, a refusal where a placement was due).
    pub const MODEL_ANSWER: &str = "model_answer";
    /// A crashed and recovered book differs from the uninterrupted one.
    pub const CRASH_EQUALS_UNINTERRUPTED: &str = "crash_equals_uninterrupted";
    pub const SAME_SEED_SAME_BOOK: &str = "same_seed_same_book";
    pub const REBUILD_FROM_EVENTS: &str = "rebuild_from_events";
    /// A crash or fault site given by hand (`--crash-at`, `--fault-at`) that the case never
    /// reaches: bad input, not a finding (`cargo xtask` exits with its own code).
    pub const UNKNOWN_SITE: &str = "unknown_site";
    /// The case does not apply here (a server crash on an embedded database, a crash mode
    /// other than `--crash-mode`'s): reported as skipped with the reason, never a pass.
    pub const NOT_APPLICABLE: &str = "not_applicable";
}

/// Why a check failed: the names of the checks that failed (a mutant counts as caught only
/// when the check meant to catch it is among them), and words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub checks: Vec<&'static str>,
    pub message: String,
}

impl Failure {
    pub fn new(check: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            checks: vec![check],
            message: message.into(),
        }
    }

    /// The harness could not do its work.
    /// The case does not apply on this backend or with these settings: skipped, with why.
    pub fn not_applicable(reason: impl Into<String>) -> Failure {
        Failure::new(check::NOT_APPLICABLE, reason)
    }

    pub fn harness(error: impl std::fmt::Display) -> Failure {
        Failure::new(check::HARNESS, error.to_string())
    }

    /// The same failure, its message prefixed with where it happened.
    pub fn context(mut self, prefix: impl std::fmt::Display) -> Failure {
        self.message = format!("{prefix}: {}", self.message);
        self
    }

    /// The same failure, `suffix` appended to its message (a trace, a repro command).
    pub fn append(mut self, suffix: impl std::fmt::Display) -> Failure {
        self.message = format!("{}\n{suffix}", self.message);
        self
    }

    pub fn failed(&self, check: &str) -> bool {
        self.checks.contains(&check)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "[{}] {}", self.checks.join(", "), self.message)
    }
}

impl From<Problem> for Failure {
    fn from(problem: Problem) -> Failure {
        Failure::new(
            check::BOOK_ANSWERED,
            format!("the book answered {:?}: {problem}", problem.kind),
        )
    }
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::harness(error)
    }
}

impl From<book::migrate::MigrateError> for Failure {
    fn from(error: book::migrate::MigrateError) -> Failure {
        Failure::harness(error)
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Failure {
        Failure::harness(error)
    }
}

/// What every check returns.
pub type Check = Result<(), Failure>;

/// Fails the check named `$check` with a message unless `condition` holds.
#[macro_export]
macro_rules! ensure {
    ($check:expr, $condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err($crate::Failure::new($check, format!($($message)+)));
        }
    };
}

#[derive(Debug)]
pub struct Case {
    pub gate: &'static str,
    pub test: String,
    /// Drives the scenario and the venue.
    pub seed: Seed,
    /// The book's run identity (its run id and the seed mixed into its intent ids): the
    /// case's seed unless a check compares runs that differ only in their scenario.
    pub run: Seed,
    pub database: Database,
    pub clock: SimClock,
    /// The venue's state outlives every book opened on this case (as a real exchange does).
    pub venue: SimVenue,
    pub mutant: Option<Mutant>,
    pub subject: SubjectKind,
}

impl Case {
    /// A case on a fresh database: the clock at 0, an empty venue that fills every order.
    pub fn new(gate: &'static str, test: &str, seed: Seed, database: Database) -> Case {
        let clock = SimClock::starting_at(0);
        Case {
            gate,
            test: test.to_owned(),
            seed,
            run: seed,
            database,
            venue: SimVenue::new().on_clock(&clock),
            clock,
            mutant: None,
            subject: SubjectKind::default(),
        }
    }

    /// A case like this one (gate, test, backend, mutant, subject) on a fresh database, for
    /// `seed`, with a venue whose partial fills come from that seed.
    pub fn fresh(&self, seed: Seed) -> Result<Case, Failure> {
        let database = Database::create(self.backend()).map_err(Failure::harness)?;
        self.fresh_on(seed, database)
    }

    /// [`Case::fresh`], on a database made the quickest way ([`Database::create_ready`]:
    /// on SQLite, one at the book's latest schema already) when the subject is the
    /// reference book in this process; any other subject (a process, perhaps a book in
    /// another language with its own migrations) gets an empty one. Only for runs that do
    /// not crash inside the migration: a plan armed at a `migrate` site needs a database
    /// that still migrates.
    pub fn fresh_ready(&self, seed: Seed) -> Result<Case, Failure> {
        if self.subject != SubjectKind::InProcess {
            return self.fresh(seed);
        }
        let database = Database::create_ready(self.backend()).map_err(Failure::harness)?;
        self.fresh_on(seed, database)
    }

    /// [`Case::fresh`] on `database` (a database of a server the check started itself).
    pub fn fresh_on(&self, seed: Seed, database: Database) -> Result<Case, Failure> {
        let case = Case::new(self.gate, &self.test, seed, database);
        Ok(Case {
            venue: SimVenue::with_partial_fills(seed).on_clock(&case.clock),
            mutant: self.mutant,
            subject: self.subject,
            ..case
        })
    }

    pub fn backend(&self) -> Backend {
        self.database.backend()
    }

    pub fn clock_now(&self) -> i64 {
        book::Clock::now_ms(&self.clock)
    }

    /// The book's options for this case: a run derived from the seed, default limits.
    pub fn options(&self) -> BookOptions {
        BookOptions {
            run: RunSpec {
                run_id: format!("run-{}", self.run),
                mode: Mode::Live,
                dataset_sha: format!("dataset-{}", self.gate),
                config_sha: "config-default".to_owned(),
                seed: self.run.0,
            },
            limits: Limits::default(),
            mutant: self.mutant,
            crash_plan: None,
            latch: None,
            sync_points: None,
        }
    }

    /// Opens the subject (the reference book, or its mutant) on a new connection.
    pub fn open(&self) -> Result<Box<dyn Subject>, Problem> {
        self.open_with(self.options())
    }

    pub fn open_with(&self, options: BookOptions) -> Result<Box<dyn Subject>, Problem> {
        self.open_with_faults(options, None)
    }

    /// Opens the subject with a store fault plan on its seam (in process only).
    pub fn open_with_faults(
        &self,
        options: BookOptions,
        faults: Option<crate::faults::StoreFaultPlan>,
    ) -> Result<Box<dyn Subject>, Problem> {
        subject::open(
            self.subject,
            &self.database,
            &self.venue,
            &self.clock,
            options,
            faults,
        )
    }

    /// A raw connection, for inspecting or tampering with the database.
    pub fn connect(&self) -> Result<Box<dyn Store>, StoreError> {
        self.database.connect()
    }

    pub fn dump(&self) -> Result<Dump, StoreError> {
        self.database.read(dump::dump)
    }

    /// Dumps the book and checks every invariant of `phase` over its own tables.
    pub fn check_invariants(&self, phase: Phase) -> Check {
        let dump = self.dump()?;
        let violations = invariants::check(&dump, phase, &mut invariants::Tally::default());
        invariants::failure(&violations).map_or(Ok(()), Err)
    }

    /// The command that reruns this case.
    pub fn repro(&self) -> Repro {
        Settings::get()
            .repro(self.gate, self.backend(), &self.test, self.seed)
            .with_mutant(self.mutant)
    }
}
