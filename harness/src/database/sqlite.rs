//! SQLite: a file in a temp dir per case, always available.
//!
//! The temp dirs live in memory (`/dev/shm`, a tmpfs) where the machine has one, else in
//! the system's temp dir; `BOOKPROOF_SQLITE_DIR` chooses. The book's durability settings
//! do not change (WAL, `synchronous = FULL`: every commit still calls fsync), but on a
//! tmpfs fsync returns at once. What the gates test does not depend on the disk: a crash
//! is the book's process dying (its writes are already in the operating system's cache,
//! which outlives it, on a disk as in memory), never the machine losing power. On this
//! project's machine this halves a seeded run (`BENCHMARKS.md`).

use std::fmt;
use std::path::{Path, PathBuf};

use book::store::{Backend, SqliteStore, Store, StoreError};

use super::{CaseDatabase, ProcessAccess, Unavailable};

/// A tmpfs on Linux.
const MEMORY_DIR: &str = "/dev/shm";

#[derive(Debug)]
pub struct SqliteDatabase {
    /// Held so that the directory (and the file, WAL and shm beside it) is removed on drop.
    _directory: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteDatabase {
    /// A new file where `BOOKPROOF_SQLITE_DIR` says, else in memory where it can be had.
    pub fn create() -> Result<SqliteDatabase, Unavailable> {
        let chosen = crate::settings::Settings::get().sqlite_dir.as_deref();
        SqliteDatabase::create_in(chosen).map_err(|unavailable| match chosen {
            Some(_) => Unavailable {
                reason: format!(
                    "{} (the directory {} names)",
                    unavailable.reason,
                    crate::settings::SQLITE_DIR
                ),
            },
            None => unavailable,
        })
    }

    /// A new file in a temp dir inside `directory`; `None`: in memory where it can be had,
    /// else the system's temp dir.
    pub fn create_in(directory: Option<&Path>) -> Result<SqliteDatabase, Unavailable> {
        let builder = || {
            let mut builder = tempfile::Builder::new();
            builder.prefix("bookproof-sqlite-");
            builder
        };
        let directory = match directory {
            Some(chosen) => builder().tempdir_in(chosen).map_err(|error| Unavailable {
                reason: format!(
                    "cannot create a temp dir for SQLite in {}: {error}",
                    chosen.display()
                ),
            })?,
            // In memory where it can be had; else (no /dev/shm, or not writable) the
            // system's temp dir.
            None => builder()
                .tempdir_in(MEMORY_DIR)
                .or_else(|_| builder().tempdir())
                .map_err(|error| Unavailable {
                    reason: format!("cannot create a temp dir for SQLite: {error}"),
                })?,
        };
        let path = directory.path().join("book.sqlite3");
        Ok(SqliteDatabase {
            _directory: directory,
            path,
        })
    }

    /// A fresh database already at the book's latest schema: a copy of the file a book
    /// migrated once in this process ([`migrated_image`]). A byte copy of a file is what
    /// migrating the same empty file again would write, without parsing its DDL again.
    pub fn create_migrated() -> Result<SqliteDatabase, Unavailable> {
        let database = SqliteDatabase::create()?;
        std::fs::write(&database.path, migrated_image()?).map_err(|error| Unavailable {
            reason: format!(
                "cannot write a migrated SQLite database to {}: {error}",
                database.path.display()
            ),
        })?;
        Ok(database)
    }
}

/// The bytes of a SQLite database the book has migrated to its latest schema, made once per
/// process.
fn migrated_image() -> Result<&'static [u8], Unavailable> {
    static IMAGE: std::sync::OnceLock<Result<Vec<u8>, String>> = std::sync::OnceLock::new();
    let made = IMAGE.get_or_init(|| {
        let database = SqliteDatabase::create().map_err(|unavailable| unavailable.reason)?;
        let mut store = database.connect().map_err(|error| error.to_string())?;
        book::migrate::migrate(store.as_mut()).map_err(|error| error.to_string())?;
        // Closing the last connection checkpoints the WAL into the file and removes it,
        // so the file alone is the whole database.
        drop(store);
        let wal = database.path.with_extension("sqlite3-wal");
        if wal.exists() {
            return Err(format!("{} was left behind on close", wal.display()));
        }
        std::fs::read(&database.path).map_err(|error| error.to_string())
    });
    made.as_deref().map_err(|reason| Unavailable {
        reason: format!("cannot make a migrated SQLite database: {reason}"),
    })
}

impl CaseDatabase for SqliteDatabase {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn connect(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(Box::new(SqliteStore::open(&self.path)?))
    }

    fn process_access(&self) -> ProcessAccess {
        ProcessAccess {
            arguments: vec!["--sqlite".into(), self.path.clone().into()],
            environment: Vec::new(),
        }
    }

    fn file(&self) -> Option<&Path> {
        Some(&self.path)
    }
}

impl fmt::Display for SqliteDatabase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "SQLite file {}", self.path.display())
    }
}
