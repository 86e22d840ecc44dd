//! One case of a gate: a fresh database on one backend, a seed, a clock, a venue, and the
//! runner that reports the outcome (and on failure the seed and the command that reruns
//! it).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use book::store::{Backend, Store, StoreError};
use book::{BookError, BookOptions, Limits, Mode, Mutant, RunSpec};

use crate::dump::{self, Dump};
use crate::invariants::{self, Phase};
use crate::provider::Database;
use crate::report::{self, CaseRecord, Kind, Outcome};
use crate::seed::Seed;
use crate::subject::{self, Subject};
use crate::venue::SimVenue;
use crate::SimClock;

pub const SEED_ENV: &str = "BOOKPROOF_SEED";
pub const REQUIRE_POSTGRES_ENV: &str = "BOOKPROOF_REQUIRE_POSTGRES";
/// The seed a case uses when none is given.
pub const DEFAULT_SEED: Seed = Seed(0x5eed_b00c_0000_0001);

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
    /// Run the book as a `book` process (crashes are real process deaths) instead of in
    /// this process.
    pub process: bool,
}

impl Case {
    /// A case on a fresh database: the clock at 0, an empty venue.
    pub fn with_database(
        gate: &'static str,
        test: &str,
        seed: Seed,
        database: Database,
        mutant: Option<Mutant>,
    ) -> Case {
        Case {
            gate,
            test: test.to_owned(),
            seed,
            database,
            clock: SimClock::starting_at(0),
            venue: SimVenue::new(),
            mutant,
            process: false,
        }
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
    pub fn open(&self) -> Result<Box<dyn Subject>, BookError> {
        self.open_with(self.options())
    }

    pub fn open_with(&self, options: BookOptions) -> Result<Box<dyn Subject>, BookError> {
        if self.process {
            return Ok(Box::new(crate::process::ProcessSubject::spawn(
                &self.database,
                self.venue.clone(),
                self.clock.clone(),
                options,
            )?));
        }
        subject::open_reference(
            self.database.connect()?,
            Box::new(self.venue.clone()),
            Box::new(self.clock.clone()),
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
}

pub fn repro_command(gate: &str, backend: Backend, test: &str, seed: Seed) -> String {
    let steps = std::env::var(crate::scenario::STEPS_ENV)
        .map(|steps| format!(" --steps {}", steps.trim()))
        .unwrap_or_default();
    let crash_at = std::env::var(crate::crash::CRASH_AT_ENV)
        .map(|site| format!(" --crash-at '{}'", site.trim()))
        .unwrap_or_default();
    let crash_at = crash_at
        + &std::env::var(MUTANT_ENV)
            .map(|mutant| format!(" --mutant {}", mutant.trim()))
            .unwrap_or_default();
    format!(
        "cargo xtask repro {gate} --backend {backend} --test {test} --seed {seed}{steps}{crash_at}"
    )
}

pub const MUTANT_ENV: &str = "BOOKPROOF_MUTANT";

fn mutant_from_env() -> Option<Mutant> {
    let name = std::env::var(MUTANT_ENV).ok()?;
    let known: Vec<&str> = Mutant::ALL.iter().map(|mutant| mutant.name()).collect();
    Some(Mutant::parse(name.trim()).unwrap_or_else(|| {
        panic!(
            "{MUTANT_ENV}={name:?}: known mutants are {}",
            known.join(", ")
        )
    }))
}

fn seed_from_env() -> Seed {
    match std::env::var(SEED_ENV) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|error| panic!("{SEED_ENV}: {error}")),
        Err(_) => DEFAULT_SEED,
    }
}

/// Runs one check against the reference book.
pub fn run_check(gate: &'static str, backend: Backend, test: &str, check: fn(&Case) -> Check) {
    run(gate, backend, test, None, Kind::Check, |case| check(case));
}

/// Runs one check against `mutant` and passes only if the check fails with a message that
/// contains `caught_by`, so a mutant "caught" by an unrelated error (a database that is
/// down, say) does not count.
pub fn run_mutant(
    gate: &'static str,
    backend: Backend,
    test: &str,
    mutant: Mutant,
    target: (&str, fn(&Case) -> Check),
    caught_by: &str,
) {
    run(gate, backend, test, Some(mutant), Kind::Mutant, |case| {
        match (target.1)(case) {
        Ok(()) => Err(Failure(format!(
            "mutant {} survived: the check passed against a deliberately broken book",
            mutant.name()
        ))),
        Err(Failure(message)) if message.contains(caught_by) => {
            println!("mutant {} caught: {message}", mutant.name());
            println!(
                "watch it fail: cargo xtask repro {gate} --backend {backend} --test {} --seed {} --mutant {}",
                target.0,
                case.seed,
                mutant.name()
            );
            Ok(())
        }
        Err(Failure(message)) => Err(Failure(format!(
            "mutant {} failed the check for another reason than expected (wanted {caught_by:?}): {message}",
            mutant.name()
        ))),
    }
    });
}

/// Runs `operations` on SQLite and on PostgreSQL with the same seed and requires
/// byte-identical canonical dumps: the differential oracle. Reported under `postgres`,
/// the backend it needs beyond the embedded one.
pub fn run_differential(gate: &'static str, test: &str, operations: fn(&Case) -> Check) {
    run(
        gate,
        Backend::Postgres,
        test,
        None,
        Kind::Check,
        |postgres| {
            let database = Database::create(Backend::Sqlite)
                .map_err(|unavailable| Failure(unavailable.reason))?;
            let sqlite = Case::with_database(gate, test, postgres.seed, database, None);
            operations(&sqlite)?;
            operations(postgres)?;
            let (sqlite_dump, postgres_dump) = (sqlite.dump()?, postgres.dump()?);
            if let Some(difference) = sqlite_dump.first_difference(&postgres_dump) {
                return Err(Failure(format!(
                    "SQLite (left) and PostgreSQL (right) dumps differ: {difference}"
                )));
            }
            ensure!(
                sqlite_dump.render() == postgres_dump.render(),
                "dump texts differ although their rows are equal"
            );
            println!(
                "SQLite and PostgreSQL dumps are identical: sha256 {}",
                sqlite_dump.digest()
            );
            Ok(())
        },
    );
}

fn run(
    gate: &'static str,
    backend: Backend,
    test: &str,
    mutant: Option<Mutant>,
    kind: Kind,
    body: impl FnOnce(&Case) -> Check,
) {
    let seed = seed_from_env();
    // `cargo xtask repro --mutant NAME` runs an ordinary check against a mutant, to watch
    // it fail.
    let mutant = mutant.or_else(mutant_from_env);
    let started = Instant::now();
    let mut record = CaseRecord {
        gate: gate.to_owned(),
        backend: backend.name().to_owned(),
        test: test.to_owned(),
        kind,
        outcome: Outcome::Pass,
        detail: None,
        seed: seed.to_string(),
        millis: 0,
        repro: repro_command(gate, backend, test, seed),
    };
    println!("bookproof: gate {gate}, backend {backend}, case {test}, seed {seed}");
    let database = match Database::create(backend) {
        Ok(database) => database,
        Err(unavailable) => {
            let required = std::env::var(REQUIRE_POSTGRES_ENV).is_ok_and(|value| value == "1");
            record.outcome = if required {
                Outcome::Fail
            } else {
                Outcome::Skip
            };
            record.detail = Some(unavailable.reason.clone());
            report::write(&record);
            if required {
                panic!(
                    "{backend} is required ({REQUIRE_POSTGRES_ENV}=1) but unavailable: {}",
                    unavailable.reason
                );
            }
            println!("bookproof: skipped on {backend}: {}", unavailable.reason);
            return;
        }
    };
    let case = Case::with_database(gate, test, seed, database, mutant);
    let result = catch_unwind(AssertUnwindSafe(|| body(&case)))
        .unwrap_or_else(|panic| Err(Failure(format!("panicked: {}", panic_message(&panic)))));
    record.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    // Drop the database (and a cluster only this case used) before reporting.
    drop(case);
    match result {
        Ok(()) => report::write(&record),
        Err(Failure(message)) => {
            record.outcome = Outcome::Fail;
            record.detail = Some(message.clone());
            report::write(&record);
            panic!(
                "\n{gate} gate failed on {backend}: {test}\n{message}\n\nseed: {seed}\nreproduce: {}\n",
                record.repro
            );
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
        .unwrap_or_else(|| "(no message)".to_owned())
}
