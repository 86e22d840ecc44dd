//! Case databases made fast must stay the databases the checks think they are: a migrated
//! copy holds exactly what the book's own migration writes, and the harness's kept reader
//! connection sees every commit made after its last read.

use book::store::{Backend, Isolation, Store, Value};
use harness::database::Database;

/// Every schema object of a SQLite database (tables, indexes) with its SQL, by name.
fn schema(store: &mut dyn Store) -> Vec<Vec<Value>> {
    let mut transaction = store.transaction(Isolation::Read).expect("begin");
    transaction
        .query(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name",
            &[],
        )
        .expect("sqlite_master")
        .rows
}

#[test]
fn a_migrated_copy_is_the_database_the_book_migration_writes() {
    let migrated_here = Database::create(Backend::Sqlite).expect("a database");
    let mut store = migrated_here.connect().expect("connect");
    let report = book::migrate::migrate(store.as_mut()).expect("migrate");
    assert_eq!(
        report.applied_versions.len(),
        book::migrate::migrations(Backend::Sqlite).len(),
        "an empty database takes every migration"
    );

    let copy = Database::create_ready(Backend::Sqlite).expect("a migrated copy");
    let mut copied = copy.connect().expect("connect");
    assert_eq!(schema(copied.as_mut()), schema(store.as_mut()));
    assert_eq!(
        harness::dump::dump(copied.as_mut()).expect("dump"),
        harness::dump::dump(store.as_mut()).expect("dump")
    );
    // The book finds nothing left to do on the copy, and each copy is its own file.
    let again = book::migrate::migrate(copied.as_mut()).expect("migrate the copy");
    assert_eq!(again.applied_versions, Vec::<i64>::new());
    let other = Database::create_ready(Backend::Sqlite).expect("another copy");
    assert_ne!(other.sqlite_path(), copy.sqlite_path());
}

#[test]
fn the_kept_reader_sees_every_commit_made_after_its_last_read() {
    let database = Database::create_ready(Backend::Sqlite).expect("a database");
    let runs = |database: &Database| {
        database
            .read(|store| Ok(harness::dump::dump(store)?.table("runs").rows.len()))
            .expect("read")
    };
    assert_eq!(runs(&database), 0);
    let mut writer = database.connect().expect("connect");
    let mut transaction = writer.transaction(Isolation::Write).expect("begin");
    transaction
        .execute(
            "INSERT INTO runs (run_id, mode, dataset_sha, config_sha, seed, status, last_seq) \
             VALUES ('run-1', 'live', 'd', 'c', '1', 'running', 0)",
            &[],
        )
        .expect("insert");
    transaction.commit().expect("commit");
    assert_eq!(runs(&database), 1, "the reader read an old snapshot");
}

#[test]
fn a_directory_that_cannot_hold_cases_is_named_in_the_error() {
    let missing = std::env::temp_dir().join("bookproof-no-such-directory");
    let error = Database::create_sqlite_in(&missing).expect_err("no such directory");
    assert!(
        error.reason.contains(&missing.display().to_string()),
        "{}",
        error.reason
    );
}
