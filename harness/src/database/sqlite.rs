//! SQLite: a file in a temp dir per case, always available.

use std::fmt;
use std::path::{Path, PathBuf};

use book::store::{Backend, SqliteStore, Store, StoreError};

use super::{CaseDatabase, ProcessAccess, Unavailable};

#[derive(Debug)]
pub struct SqliteDatabase {
    /// Held so that the directory (and the file, WAL and shm beside it) is removed on drop.
    _directory: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteDatabase {
    pub fn create() -> Result<SqliteDatabase, Unavailable> {
        let directory = tempfile::Builder::new()
            .prefix("bookproof-sqlite-")
            .tempdir()
            .map_err(|error| Unavailable {
                reason: format!("cannot create a temp dir for SQLite: {error}"),
            })?;
        let path = directory.path().join("book.sqlite3");
        Ok(SqliteDatabase {
            _directory: directory,
            path,
        })
    }
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
