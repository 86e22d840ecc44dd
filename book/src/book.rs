//! [`Book`]: the store, the venue and the clock, and the transaction discipline they share.
//! The flows live by concept: `placement/` (reserve -> act -> confirm, recovery, fills),
//! `breaker.rs`, `limits.rs`, `positions.rs`.

use std::time::Duration;

use protocol::Venue;
use serde_json::json;

use crate::clock::{Clock, DAY_MS};
use crate::crash::{self, CrashPlan};
use crate::error::BookError;
use crate::events::{self, category};
use crate::intent::{self, Signal};
use crate::migrate;
use crate::mutant::{Mutant, MutantState};
use crate::store::{Isolation, Store, StoreError, Transaction, Value};

/// A 40001 is retried this many times, then reported as `SerializationConflict`.
const SERIALIZATION_RETRIES_MAX: u32 = 1;
/// A connection that broke before commit is replaced and the transaction rerun this often.
const CONNECTION_RETRIES_MAX: u32 = 3;
const CONNECTION_BACKOFF_INITIAL_MS: u64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Paper,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Paper => "paper",
            Mode::Live => "live",
        }
    }
}

/// What identifies a run; persisted in `runs` and mixed into every intent id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    pub run_id: String,
    pub mode: Mode,
    pub dataset_sha: String,
    pub config_sha: String,
    pub seed: u64,
}

/// Risk limits. Stored in `position_counters` when the book is first opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_open: i64,
    pub max_exposure: i64,
    /// A day whose realised pnl is at or below `-max_daily_loss` places nothing more.
    pub max_daily_loss: i64,
    /// A position is closed once its mark moves this many millionths against its entry.
    pub stop_loss: i64,
    /// A position is closed once its mark moves this many millionths in its favour.
    pub take_profit: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_open: 10,
            max_exposure: 1_000_000_000,
            max_daily_loss: 1_000_000,
            stop_loss: 20_000,
            take_profit: 30_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BookOptions {
    pub run: RunSpec,
    pub limits: Limits,
    /// `None` in production. See [`Mutant`].
    pub mutant: Option<Mutant>,
    /// `None` in production: every crash point is inert. See [`CrashPlan`].
    pub crash_plan: Option<CrashPlan>,
    /// The latch this book shares with the other book handles of its process (one per
    /// thread, each on its own connection); `None`: a latch of its own. Make one with
    /// [`BookOptions::new_latch`], so that a mutant of the latch is the one shared.
    pub latch: Option<latch::Latch>,
    /// `None` in production: every sync point is passed without a lock. See
    /// [`crate::SyncPoints`].
    pub sync_points: Option<crate::SyncPoints>,
}

impl BookOptions {
    /// A latch for the book handles of one process to share (with the mutant's flaw, if
    /// the mutant is the latch's).
    pub fn new_latch(&self) -> latch::Latch {
        crate::mutant::latch(self.mutant)
    }
}

pub struct Book {
    pub(crate) store: Box<dyn Store>,
    pub(crate) venue: Box<dyn Venue>,
    pub(crate) clock: Box<dyn Clock>,
    pub(crate) options: BookOptions,
    /// Shared with the process's other book handles: halted when an outcome became
    /// unknown (kept in memory on purpose: the database may be exactly what failed; the
    /// persisted breaker is tripped too when it can be written) and when the breaker trips;
    /// every venue placement holds a pass from it. Once a halt returns, no placement is in
    /// flight and none starts until an operator resets the breaker.
    pub(crate) latch: latch::Latch,
    /// Intents found `executing` when the book opened: their outcome is unknown until a
    /// recovery settles them, so nothing is placed before (see `breaker::ensure_resolved`).
    pub(crate) unresolved: usize,
    /// What a selected mutant keeps in memory; empty in production.
    pub(crate) mutant_state: MutantState,
}

impl std::fmt::Debug for Book {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Book")
            .field("backend", &self.store.backend())
            .field("run", &self.options.run)
            .field("mutant", &self.options.mutant)
            .field("halted", &self.latch.halted())
            .finish_non_exhaustive()
    }
}

impl Book {
    /// Migrates the store (refusing a newer or drifted schema), records the run and the
    /// singleton rows if this is the first open, and returns the book. Reopening an existing
    /// book writes nothing.
    pub fn open(
        mut store: Box<dyn Store>,
        venue: Box<dyn Venue>,
        clock: Box<dyn Clock>,
        options: BookOptions,
    ) -> Result<Book, BookError> {
        match migrate::migrate_with_crash_points(store.as_mut(), options.crash_plan.as_ref()) {
            // A crash is a crash wherever it happens, not a migration failure.
            Err(migrate::MigrateError::Crashed(crashed)) => {
                return Err(BookError::Crashed(crashed))
            }
            other => other?,
        };
        let latch = options.latch.clone().unwrap_or_else(|| options.new_latch());
        let mut book = Book {
            store,
            venue,
            clock,
            mutant_state: MutantState::opened(options.mutant),
            options,
            latch,
            unresolved: 0,
        };
        book.initialise()?;
        book.unresolved = book.executing_count()?;
        if book.mutant_state.caches_positions() {
            let positions = book.open_positions()?;
            book.mutant_state.cache_positions(positions);
        }
        Ok(book)
    }

    fn initialise(&mut self) -> Result<(), BookError> {
        let run = self.options.run.clone();
        let limits = self.options.limits;
        let any_run = crate::mutant::reopens_as_any_run(self.options.mutant);
        let now = self.now_ms();
        self.transact(Isolation::Write, "open", |transaction| {
            let inserted = transaction.execute(
                "INSERT INTO runs (run_id, mode, dataset_sha, config_sha, seed, status, last_seq) \
                 VALUES ($1, $2, $3, $4, $5, 'running', 0) ON CONFLICT (run_id) DO NOTHING",
                &[
                    Value::from(&run.run_id),
                    Value::from(run.mode.as_str()),
                    Value::from(&run.dataset_sha),
                    Value::from(&run.config_sha),
                    Value::Text(format!("{:#018x}", run.seed)),
                ],
            )?;
            if inserted == 0 {
                // A reopen writes nothing. In particular it never recreates a breaker row
                // that went missing: a missing breaker fails closed, it does not come back
                // CLOSED. It must be the same run: the identity goes into every intent id.
                if any_run {
                    return Ok(());
                }
                return same_run(transaction, &run);
            }
            transaction.execute(
                "INSERT INTO position_counters (id, open_count, max_open, exposure, max_exposure) \
                 VALUES (1, 0, $1, 0, $2) ON CONFLICT (id) DO NOTHING",
                &[Value::Int(limits.max_open), Value::Int(limits.max_exposure)],
            )?;
            transaction.execute(
                "INSERT INTO circuit_breaker (id, state, reason, failure_count, updated_ts) \
                 VALUES (1, 'CLOSED', NULL, 0, $1) ON CONFLICT (id) DO NOTHING",
                &[Value::Int(now)],
            )?;
            {
                events::append(
                    transaction,
                    &run.run_id,
                    now,
                    category::RUN,
                    "run.started",
                    json!({
                        "config_sha": run.config_sha,
                        "dataset_sha": run.dataset_sha,
                        "max_daily_loss": limits.max_daily_loss,
                        "max_exposure": limits.max_exposure,
                        "max_open": limits.max_open,
                        "mode": run.mode.as_str(),
                        "seed": format!("{:#018x}", run.seed),
                    }),
                )?;
            }
            Ok(())
        })
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// The logical day of the clock's current time.
    pub(crate) fn today(&self) -> i64 {
        self.now_ms().div_euclid(DAY_MS)
    }

    /// The intent id this book gives `signal` (SPEC §2.1).
    pub(crate) fn intent_id(&self, signal: &Signal) -> String {
        let run = &self.options.run;
        let dataset = self.mutant_state.id_dataset(&run.dataset_sha);
        intent::intent_id(signal, &dataset, run.seed)
    }

    /// Runs `work` in one transaction and commits it. A serialization failure reruns it
    /// once, then becomes `SerializationConflict`; a connection that broke before commit is
    /// replaced and the transaction rerun, a bounded number of times. Nothing else is
    /// retried: constraint and syntax errors are answers, not accidents.
    ///
    /// A write transaction commits through [`crash::commit`], passing `NAME.before_commit`
    /// and `NAME.after_commit`.
    pub(crate) fn transact<T>(
        &mut self,
        isolation: Isolation,
        name: &'static str,
        mut work: impl FnMut(&mut (dyn Transaction + '_)) -> Result<T, BookError>,
    ) -> Result<T, BookError> {
        let crash_plan = self.options.crash_plan.clone();
        let mut serialization_retries = 0;
        let mut connection_retries = 0;
        let mut backoff_ms = CONNECTION_BACKOFF_INITIAL_MS;
        loop {
            match attempt(
                self.store.as_mut(),
                isolation,
                name,
                crash_plan.as_ref(),
                &mut work,
            ) {
                Err(BookError::Store(StoreError::Serialization { message })) => {
                    if serialization_retries >= SERIALIZATION_RETRIES_MAX {
                        return Err(BookError::SerializationConflict { message });
                    }
                    serialization_retries += 1;
                }
                Err(BookError::Store(StoreError::Connection { message })) => {
                    if connection_retries >= CONNECTION_RETRIES_MAX {
                        return Err(BookError::Store(StoreError::Connection { message }));
                    }
                    connection_retries += 1;
                    // Backoff against a real server that is restarting; bounded by the
                    // retry count above.
                    std::thread::sleep(Duration::from_millis(backoff_ms));
                    backoff_ms *= 2;
                }
                other => return other,
            }
        }
    }

    fn executing_count(&mut self) -> Result<usize, BookError> {
        let count = self.transact(Isolation::Read, "read", |transaction| {
            Ok(transaction.query_int(
                "SELECT COUNT(*) FROM intents WHERE status = 'executing'",
                &[],
            )?)
        })?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// The first column of every row a read-only query returns, as text.
    pub(crate) fn read_texts(&mut self, sql: &'static str) -> Result<Vec<String>, BookError> {
        self.transact(Isolation::Read, "read", |transaction| {
            let rows = transaction.query(sql, &[])?;
            Ok(rows
                .rows
                .into_iter()
                .filter_map(|row| row.into_iter().next())
                .filter_map(|value| value.as_text().map(str::to_owned))
                .collect())
        })
    }

    /// The run's id, the clock's time and day, and the mutant: what every write needs.
    pub(crate) fn context(&self) -> Context {
        Context {
            run_id: self.options.run.run_id.clone(),
            now: self.now_ms(),
            today: self.today(),
            mutant: self.options.mutant,
        }
    }
}

/// See [`Book::context`].
#[derive(Debug, Clone)]
pub(crate) struct Context {
    pub run_id: String,
    pub now: i64,
    pub today: i64,
    pub mutant: Option<Mutant>,
}

fn attempt<T>(
    store: &mut dyn Store,
    isolation: Isolation,
    name: &'static str,
    crash_plan: Option<&CrashPlan>,
    work: &mut impl FnMut(&mut (dyn Transaction + '_)) -> Result<T, BookError>,
) -> Result<T, BookError> {
    let mut transaction = store.transaction(isolation)?;
    let value = work(transaction.as_mut())?;
    match isolation {
        Isolation::Read => transaction.commit()?,
        Isolation::Write | Isolation::Serializable => {
            crash::commit(transaction, crash_plan, name)?;
        }
    }
    Ok(value)
}

/// Refuses to open the database's run `run.run_id` with another identity than it was
/// started with (SPEC §2.1: the identity goes into every intent id).
fn same_run(transaction: &mut (dyn Transaction + '_), run: &RunSpec) -> Result<(), BookError> {
    let row = transaction.query_optional(
        "SELECT mode, dataset_sha, config_sha, seed FROM runs WHERE run_id = $1",
        &[Value::from(&run.run_id)],
    )?;
    let Some(
        [Value::Text(mode), Value::Text(dataset_sha), Value::Text(config_sha), Value::Text(seed)],
    ) = row.as_deref()
    else {
        return Err(BookError::Store(StoreError::Data {
            message: format!("run {} has an unreadable row: {row:?}", run.run_id),
        }));
    };
    let given_seed = format!("{:#018x}", run.seed);
    let fields = [
        ("seed", seed, &given_seed),
        ("dataset", dataset_sha, &run.dataset_sha),
        ("config", config_sha, &run.config_sha),
        ("mode", mode, &run.mode.as_str().to_owned()),
    ];
    for (field, stored, given) in fields {
        if stored != given {
            return Err(BookError::WrongRun {
                run_id: run.run_id.clone(),
                field,
                stored: stored.clone(),
                given: given.clone(),
            });
        }
    }
    Ok(())
}
