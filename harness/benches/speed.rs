//! The benches behind `cargo xtask bench` (`BENCHMARKS.md` explains each figure). Every
//! measurement of the book has a floor measured in the same run, and the xtask prints the
//! ratio: what the book costs over the least its database work could cost.
//!
//! - `write_path/BACKEND/{book,floor}`: one signal through reserve -> act -> confirm on a
//!   fresh book (SQLite: a WAL file with synchronous FULL), against the same writes (the
//!   book's own statements and parameters, recorded from an identical run) replayed in the
//!   same transactions through the plain driver with cached statements.
//! - `batch/BACKEND/{book,floor}`: 40,000 events appended in one transaction by the book's
//!   `events::append`, against 40,000 prepared INSERTs of the same rows.
//! - `harness/...`: crash-recover cycles, seeded runs, canonical dump + digest of a
//!   book of 1,000,000 rows, a fresh case database, a PostgreSQL cluster's start.
//!
//! PostgreSQL comes from `BOOKPROOF_PG_URL`, else a throwaway local cluster started for the
//! run, as for the gates; without either the PostgreSQL benches are skipped with a line
//! that says so.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use book::store::{Isolation, Rows, Store, StoreError, Transaction, Value};
use book::{Backend, Book, BookOptions, Limits, ManualClock, Mode, RunSpec};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use harness::case::Case;
use harness::crash::{self, CrashCase};
use harness::database::postgres::Server;
use harness::database::{Database, LocalCluster};
use harness::protocol::Side;
use harness::scenario;
use harness::venue::SimVenue;
use harness::{runner, Seed};

const SEED: Seed = Seed(0x5eed_b00c_0000_0001);
/// Events in one batch (the user's target: 40,000 rows in under 100 ms).
const BATCH: usize = 40_000;
/// Rows of the book the dump bench reads.
const DUMP_ROWS: usize = 1_000_000;

// ---- the write path -------------------------------------------------------------------

/// The writes of one committed transaction: (statement, parameters).
type Writes = Vec<(String, Vec<Value>)>;

/// A store that records every committed transaction's writes (reads are not part of the
/// floor: a floor writes the same rows, it does not decide them).
struct Tape {
    inner: Box<dyn Store>,
    committed: Arc<Mutex<Vec<Writes>>>,
}

struct TapeTransaction<'a> {
    inner: Box<dyn Transaction + 'a>,
    writes: Writes,
    committed: Arc<Mutex<Vec<Writes>>>,
}

impl Store for Tape {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    fn transaction(
        &mut self,
        isolation: Isolation,
    ) -> Result<Box<dyn Transaction + '_>, StoreError> {
        Ok(Box::new(TapeTransaction {
            inner: self.inner.transaction(isolation)?,
            writes: Vec::new(),
            committed: self.committed.clone(),
        }))
    }
}

impl Transaction for TapeTransaction<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        self.writes.push((sql.to_owned(), params.to_vec()));
        self.inner.execute(sql, params)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, StoreError> {
        // A query that writes (`UPDATE ... RETURNING`) is a write.
        if !sql.trim_start().to_ascii_uppercase().starts_with("SELECT") {
            self.writes.push((sql.to_owned(), params.to_vec()));
        }
        self.inner.query(sql, params)
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.inner.execute_batch(sql)
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let TapeTransaction {
            inner,
            writes,
            committed,
        } = *self;
        inner.commit()?;
        committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(writes);
        Ok(())
    }
}

fn options() -> BookOptions {
    BookOptions {
        run: RunSpec {
            run_id: "run-bench".to_owned(),
            mode: Mode::Live,
            dataset_sha: "dataset-bench".to_owned(),
            config_sha: "config-bench".to_owned(),
            seed: SEED.0,
        },
        // No limit a bench reaches: every signal is placed.
        limits: Limits {
            max_open: i64::MAX / 4,
            max_exposure: i64::MAX / 4,
            ..Limits::default()
        },
        mutant: None,
        crash_plan: None,
        latch: None,
        sync_points: None,
    }
}

fn open_book(store: Box<dyn Store>) -> Book {
    let clock = ManualClock::starting_at(0);
    let venue = SimVenue::new().on_clock(&clock);
    Book::open(store, Box::new(venue), Box::new(clock), options()).expect("open the book")
}

/// A database for the book's own figures: SQLite in a file on the disk (the system's temp
/// dir), where a user's book keeps it and every commit's fsync costs what it costs; the
/// harness's figures use the gates' case databases instead (`/dev/shm` where it exists).
fn on_disk(backend: Backend) -> Database {
    match backend {
        Backend::Sqlite => Database::create_sqlite_in(&std::env::temp_dir()),
        Backend::Postgres => Database::create(backend),
    }
    .expect("a database")
}

/// Signal `index`: its own window, so that every one is placed.
fn signal(index: u64) -> book::intent::Signal {
    scenario::signal(&format!("w-{index}"), Side::Buy, 1)
}

/// `count` signals through a fresh book on `backend`; the time of the submits alone.
fn book_signals(backend: Backend, count: u64) -> Duration {
    let database = on_disk(backend);
    let mut book = open_book(database.connect().expect("connect"));
    let start = Instant::now();
    for index in 0..count {
        book.submit(&signal(index)).expect("placed");
    }
    start.elapsed()
}

/// The writes of `count` signals, per transaction, recorded from a fresh book, and a
/// fresh database where the book has opened (schema, run and singleton rows written).
fn recorded(backend: Backend, count: u64) -> (Vec<Writes>, Database) {
    let database = on_disk(backend);
    let committed = Arc::new(Mutex::new(Vec::new()));
    let tape = Tape {
        inner: database.connect().expect("connect"),
        committed: committed.clone(),
    };
    let mut book = open_book(Box::new(tape));
    committed.lock().expect("tape").clear();
    for index in 0..count {
        book.submit(&signal(index)).expect("placed");
    }
    drop(book);
    let writes = std::mem::take(&mut *committed.lock().expect("tape"));
    let fresh = on_disk(backend);
    drop(open_book(fresh.connect().expect("connect")));
    (writes, fresh)
}

/// The floor on SQLite: the recorded transactions through plain rusqlite, with the
/// book's own durability settings (WAL, synchronous FULL).
fn sqlite_floor(count: u64) -> Duration {
    let (transactions, database) = recorded(Backend::Sqlite, count);
    let path = database.sqlite_path().expect("a SQLite file");
    let mut connection = rusqlite::Connection::open(path).expect("open");
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .expect("pragmas");
    let start = Instant::now();
    for writes in &transactions {
        let transaction = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("begin");
        for (sql, params) in writes {
            let mut statement = transaction
                .prepare_cached(&sql.replace('$', "?"))
                .expect("prepare");
            let mut rows = statement
                .query(rusqlite::params_from_iter(params.iter().map(sqlite_value)))
                .expect("write");
            while rows.next().expect("step").is_some() {}
        }
        transaction.commit().expect("commit");
    }
    start.elapsed()
}

fn sqlite_value(value: &Value) -> rusqlite::types::Value {
    match value {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(integer) => rusqlite::types::Value::Integer(*integer),
        Value::Text(text) => rusqlite::types::Value::Text(text.clone()),
    }
}

/// The floor on PostgreSQL: the recorded transactions as plain statements (prepared
/// once each) in the same transactions.
fn postgres_floor(count: u64) -> Duration {
    let (transactions, database) = recorded(Backend::Postgres, count);
    let access = database.process_access();
    let url = access
        .environment
        .iter()
        .map(|(_, url)| url)
        .next()
        .expect("the case database's URL");
    let mut client =
        postgres::Client::connect(url.expose(), postgres::NoTls).expect("connect to PostgreSQL");
    let mut prepared = std::collections::HashMap::new();
    let start = Instant::now();
    for writes in &transactions {
        let mut transaction = client.transaction().expect("begin");
        for (sql, params) in writes {
            if !prepared.contains_key(sql) {
                let statement = transaction.prepare(sql).expect("prepare");
                prepared.insert(sql.clone(), statement);
            }
            let references: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|value| value as &(dyn postgres::types::ToSql + Sync))
                .collect();
            transaction
                .query(&prepared[sql], &references)
                .expect("write");
        }
        transaction.commit().expect("commit");
    }
    start.elapsed()
}

/// Whether PostgreSQL benches run: the server (`BOOKPROOF_PG_URL`, else a throwaway local
/// cluster) is found or started once and held for the whole run.
fn postgres_available() -> bool {
    static SERVER: OnceLock<Option<Arc<Server>>> = OnceLock::new();
    SERVER
        .get_or_init(|| match harness::database::postgres::server() {
            Ok(server) => Some(server),
            Err(unavailable) => {
                println!("PostgreSQL benches skipped: {unavailable}");
                None
            }
        })
        .is_some()
}

fn write_path(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("write_path");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.bench_function("sqlite/book", |bench| {
        bench.iter_custom(|count| book_signals(Backend::Sqlite, count))
    });
    group.bench_function("sqlite/floor", |bench| bench.iter_custom(sqlite_floor));
    if postgres_available() {
        group.bench_function("postgres/book", |bench| {
            bench.iter_custom(|count| book_signals(Backend::Postgres, count))
        });
        group.bench_function("postgres/floor", |bench| bench.iter_custom(postgres_floor));
    }
    group.finish();
}

// ---- batched persistence --------------------------------------------------------------

/// A book's database after its first open: the run row the events belong to.
fn opened(backend: Backend) -> Database {
    opened_case(on_disk(backend))
}

/// `database` after the book opened on it.
fn opened_case(database: Database) -> Database {
    drop(open_book(database.connect().expect("connect")));
    database
}

fn payload(index: usize) -> serde_json::Value {
    serde_json::json!({ "fill_id": format!("F-{index}"), "price": 4_200_000 + index as i64, "size": 1 })
}

/// 40,000 events in one transaction through the book's `events::append`.
fn batch_book(backend: Backend) -> Duration {
    let database = opened(backend);
    let mut store = database.connect().expect("connect");
    let start = Instant::now();
    let mut transaction = store.transaction(Isolation::Write).expect("begin");
    for index in 0..BATCH {
        book::events::append(
            transaction.as_mut(),
            "run-bench",
            0,
            "fill",
            "fill.recorded",
            payload(index),
        )
        .expect("append");
    }
    transaction.commit().expect("commit");
    start.elapsed()
}

const INSERT_EVENT: &str =
    "INSERT INTO events (run_id, seq, ts, category, type, payload) VALUES ($1, $2, $3, $4, $5, $6)";

/// The same 40,000 rows as prepared INSERTs through plain rusqlite.
fn batch_floor_sqlite() -> Duration {
    let database = opened(Backend::Sqlite);
    let mut connection =
        rusqlite::Connection::open(database.sqlite_path().expect("a SQLite file")).expect("open");
    connection
        .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .expect("pragmas");
    let first = last_seq(&connection) + 1;
    let start = Instant::now();
    let transaction = connection.transaction().expect("begin");
    insert_events(&transaction, first, BATCH);
    transaction.commit().expect("commit");
    start.elapsed()
}

/// `count` events from seq `first` on, each its own prepared INSERT (ts = its index).
fn insert_events(transaction: &rusqlite::Transaction<'_>, first: i64, count: usize) {
    let mut insert = transaction
        .prepare(&INSERT_EVENT.replace('$', "?"))
        .expect("prepare");
    for index in 0..count {
        insert
            .execute(rusqlite::params![
                "run-bench",
                first + index as i64,
                index as i64,
                "fill",
                "fill.recorded",
                payload(index).to_string()
            ])
            .expect("insert");
    }
}

fn last_seq(connection: &rusqlite::Connection) -> i64 {
    connection
        .query_row(
            "SELECT last_seq FROM runs WHERE run_id = 'run-bench'",
            [],
            |row| row.get(0),
        )
        .expect("the run's last seq")
}

/// The same 40,000 rows as one prepared INSERT through the plain PostgreSQL client.
fn batch_floor_postgres() -> Duration {
    let database = opened(Backend::Postgres);
    let access = database.process_access();
    let url = &access.environment.first().expect("the URL").1;
    let mut client =
        postgres::Client::connect(url.expose(), postgres::NoTls).expect("connect to PostgreSQL");
    let first: i64 = client
        .query_one("SELECT last_seq FROM runs WHERE run_id = 'run-bench'", &[])
        .expect("the run's last seq")
        .get(0);
    let start = Instant::now();
    let mut transaction = client.transaction().expect("begin");
    let insert = transaction.prepare(INSERT_EVENT).expect("prepare");
    for index in 0..BATCH {
        let seq = first + 1 + index as i64;
        transaction
            .execute(
                &insert,
                &[
                    &"run-bench",
                    &seq,
                    &0_i64,
                    &"fill",
                    &"fill.recorded",
                    &payload(index).to_string(),
                ],
            )
            .expect("insert");
    }
    transaction.commit().expect("commit");
    start.elapsed()
}

fn repeated(count: u64, once: impl Fn() -> Duration) -> Duration {
    (0..count).map(|_| once()).sum()
}

fn batch(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.bench_function("sqlite/book", |bench| {
        bench.iter_custom(|count| repeated(count, || batch_book(Backend::Sqlite)))
    });
    group.bench_function("sqlite/floor", |bench| {
        bench.iter_custom(|count| repeated(count, batch_floor_sqlite))
    });
    if postgres_available() {
        group.bench_function("postgres/book", |bench| {
            bench.iter_custom(|count| repeated(count, || batch_book(Backend::Postgres)))
        });
        group.bench_function("postgres/floor", |bench| {
            bench.iter_custom(|count| repeated(count, batch_floor_postgres))
        });
    }
    group.finish();
}

// ---- the harness ----------------------------------------------------------------------

/// The case the harness benches run: a fresh database each time, as a gate's cases do.
fn case(backend: Backend) -> Case {
    Case::new(
        "bench",
        "bench",
        SEED,
        Database::create(backend).expect("a case database"),
    )
}

/// Crashed and recovered runs, each held against every oracle (one crash site of a
/// seeded scenario, then restart, recovery and the remaining steps), as the crash gate
/// does them.
fn crash_recover(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    backend: Backend,
) {
    let template = case(backend);
    let scenario = scenario::generate(SEED, 24);
    let uninterrupted =
        crash::uninterrupted(&template, SEED, &scenario).expect("the uninterrupted run");
    let sites = crash::thinned(uninterrupted.sites.clone(), 16);
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("crash_recover/{}", backend.name()), |bench| {
        let mut next = 0;
        bench.iter(|| {
            let site = sites[next % sites.len()].clone();
            next += 1;
            crash::crashed_at(&template, SEED, &scenario, &CrashCase::at(SEED, site))
                .expect("recovered")
        })
    });
}

/// Seeded runs per second: a seeded scenario (up to 24 steps) on a fresh database, held
/// against every oracle after every step (the unit of the determinism sweep, which also
/// runs each seed's rebuild and second run).
fn seeded_runs(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, backend: Backend) {
    let template = case(backend);
    let scenario = scenario::generate(SEED, 24);
    group.throughput(Throughput::Elements(1));
    group.bench_function(format!("seeded_run/{}", backend.name()), |bench| {
        bench.iter(|| runner::run_seed(&template, SEED, &scenario).expect("the run"))
    });
}

/// A SQLite book with `DUMP_ROWS` events, and the bytes of its canonical dump.
fn big_book() -> (Database, u64) {
    let database = opened(Backend::Sqlite);
    let mut connection =
        rusqlite::Connection::open(database.sqlite_path().expect("a SQLite file")).expect("open");
    let first = last_seq(&connection) + 1;
    let transaction = connection.transaction().expect("begin");
    insert_events(&transaction, first, DUMP_ROWS);
    transaction
        .execute(
            "UPDATE runs SET last_seq = ?1 WHERE run_id = 'run-bench'",
            [first + DUMP_ROWS as i64 - 1],
        )
        .expect("last seq");
    transaction.commit().expect("commit");
    let mut store = database.connect().expect("connect");
    let bytes = harness::dump::dump(store.as_mut())
        .expect("dump")
        .render()
        .len() as u64;
    (database, bytes)
}

fn harness_benches(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("harness");
    group.sample_size(10);
    let mut backends = vec![Backend::Sqlite];
    if postgres_available() {
        backends.push(Backend::Postgres);
    }
    for &backend in &backends {
        crash_recover(&mut group, backend);
        seeded_runs(&mut group, backend);
        group.throughput(Throughput::Elements(1));
        // What a case's database costs before its first step: empty, then migrated by the
        // book as it opens (cases that crash inside the migration), or a migrated copy (every
        // other case).
        group.bench_function(format!("fresh_case_database/{}", backend.name()), |bench| {
            bench.iter(|| opened_case(Database::create(backend).expect("a case database")))
        });
        if backend == Backend::Sqlite {
            group.bench_function(
                format!("migrated_case_database/{}", backend.name()),
                |bench| {
                    bench.iter(|| {
                        opened_case(Database::create_ready(backend).expect("a case database"))
                    })
                },
            );
        }
    }
    let (database, bytes) = big_book();
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("dump_digest/sqlite", |bench| {
        bench.iter(|| {
            let mut store = database.connect().expect("connect");
            harness::dump::dump(store.as_mut()).expect("dump").digest()
        })
    });
    if LocalCluster::start().is_ok() {
        group.throughput(Throughput::Elements(1));
        group.bench_function("postgres_cluster_start", |bench| {
            bench.iter(|| LocalCluster::start().expect("a cluster"))
        });
    } else {
        println!("harness/postgres_cluster_start skipped: no PostgreSQL server binaries found");
    }
    group.finish();
}

criterion_group!(benches, write_path, batch, harness_benches);
criterion_main!(benches);
