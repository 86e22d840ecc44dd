//! Databases for cases: one fresh database per case, removed afterwards.
//!
//! SQLite always works (a file in a temp dir). PostgreSQL comes from `pg::server()`, which
//! says why when it cannot provide one.

use std::path::{Path, PathBuf};

use book::store::{Backend, SqliteStore, Store, StoreError};

use crate::pg;

/// A fresh, empty database for one case. Dropping it removes it.
#[derive(Debug)]
pub enum Database {
    Sqlite {
        /// Held so that the directory (and the file, WAL and shm beside it) is removed on drop.
        directory: tempfile::TempDir,
        path: PathBuf,
    },
    Postgres(pg::CaseDatabase),
}

/// Why a backend cannot run here (the report's "skipped" reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unavailable {
    pub reason: String,
}

impl Database {
    pub fn create(backend: Backend) -> Result<Database, Unavailable> {
        match backend {
            Backend::Sqlite => {
                let directory = tempfile::Builder::new()
                    .prefix("bookproof-sqlite-")
                    .tempdir()
                    .map_err(|error| Unavailable {
                        reason: format!("cannot create a temp dir for SQLite: {error}"),
                    })?;
                let path = directory.path().join("book.sqlite3");
                Ok(Database::Sqlite { directory, path })
            }
            Backend::Postgres => Ok(Database::Postgres(pg::CaseDatabase::create()?)),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Database::Sqlite { .. } => Backend::Sqlite,
            Database::Postgres(_) => Backend::Postgres,
        }
    }

    /// A new connection to this case's database.
    pub fn connect(&self) -> Result<Box<dyn Store>, StoreError> {
        match self {
            Database::Sqlite { path, .. } => Ok(Box::new(SqliteStore::open(path)?)),
            Database::Postgres(database) => Ok(Box::new(database.connect()?)),
        }
    }

    /// The SQLite file, for checks that need the file itself.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite { path, .. } => Some(path),
            Database::Postgres(_) => None,
        }
    }
}
