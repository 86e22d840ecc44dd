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

/// Why a check failed, in words a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure(error.to_string())
    }
}

/// What every check returns.
pub type Check = Result<(), Failure>;

/// Fails the check with a message unless `condition` holds.
#[macro_export]
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err($crate::Failure(format!($($message)+)));
        }
    };
}

#[derive(Debug)]
pub struct Case {
    pub gate: &'static str,
    pub test: String,
    pub seed: Seed,
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
        Case {
            gate,
            test: test.to_owned(),
            seed,
            database,
            clock: SimClock::starting_at(0),
            venue: SimVenue::new(),
            mutant: None,
            subject: SubjectKind::default(),
        }
    }

    /// A case like this one (gate, test, backend, mutant, subject) on a fresh database, for
    /// `seed`, with a venue whose partial fills come from that seed.
    pub fn fresh(&self, seed: Seed) -> Result<Case, Failure> {
        let database =
            Database::create(self.backend()).map_err(|unavailable| Failure(unavailable.reason))?;
        Ok(Case {
            venue: SimVenue::with_partial_fills(seed),
            mutant: self.mutant,
            subject: self.subject,
            ..Case::new(self.gate, &self.test, seed, database)
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
                run_id: format!("run-{}", self.seed),
                mode: Mode::Paper,
                dataset_sha: format!("dataset-{}", self.gate),
                config_sha: "config-default".to_owned(),
                seed: self.seed.0,
            },
            limits: Limits::default(),
            mutant: self.mutant,
            crash_plan: None,
        }
    }

    /// Opens the subject (the reference book, or its mutant) on a new connection.
    pub fn open(&self) -> Result<Box<dyn Subject>, Problem> {
        self.open_with(self.options())
    }

    pub fn open_with(&self, options: BookOptions) -> Result<Box<dyn Subject>, Problem> {
        subject::open(
            self.subject,
            &self.database,
            &self.venue,
            &self.clock,
            options,
        )
    }

    /// A raw connection, for inspecting or tampering with the database.
    pub fn connect(&self) -> Result<Box<dyn Store>, StoreError> {
        self.database.connect()
    }

    pub fn dump(&self) -> Result<Dump, StoreError> {
        dump::dump(self.connect()?.as_mut())
    }

    /// Dumps the book and checks every invariant of `phase`.
    pub fn check_invariants(&self, phase: Phase) -> Check {
        let violations = invariants::check(&self.dump()?, phase);
        if violations.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = violations.iter().map(ToString::to_string).collect();
        Err(Failure(lines.join("\n")))
    }

    /// The command that reruns this case.
    pub fn repro(&self) -> Repro {
        Settings::get()
            .repro(self.gate, self.backend(), &self.test, self.seed)
            .with_mutant(self.mutant)
    }
}
