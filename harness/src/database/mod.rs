//! Databases for cases: one fresh database per case, removed when the case drops it. One
//! provider per backend (`sqlite.rs`, `postgres.rs`); [`Database::create`] is the one
//! place that maps a backend to its provider.

mod cluster;
pub mod docker;
pub mod postgres;
mod sqlite;

use std::ffi::OsString;
use std::fmt;
use std::path::Path;

use book::store::{Backend, Store, StoreError};

pub use self::cluster::{is_root, user_ids, LocalCluster, PgBinaries, CLUSTER_DIR_PREFIX};
use crate::secret::SecretUrl;

/// Why a backend cannot run here (the report's "skipped" reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unavailable {
    pub reason: String,
}

/// How a `book` process reaches a database: command-line arguments, and environment
/// variables whose values may be secret (a URL with a password never goes on a command
/// line, where other users can read it).
#[derive(Debug, Default)]
pub struct ProcessAccess {
    pub arguments: Vec<OsString>,
    pub environment: Vec<(&'static str, SecretUrl)>,
}

/// What a whole run needs from the providers of its backends: whatever must outlive every
/// case (a PostgreSQL server), the environment that hands it to the test processes, and a
/// line per backend for the report. Dropping it stops what it started.
#[derive(Debug, Default)]
pub struct RunDatabases {
    /// Held until the tests are done.
    _resources: Vec<Box<dyn std::fmt::Debug + Send + Sync>>,
    /// Variables for the test processes; values may be secret.
    pub environment: Vec<(&'static str, SecretUrl)>,
    /// Where each backend's databases come from, for the report.
    pub sources: Vec<(Backend, String)>,
}

impl RunDatabases {
    /// Prepares every backend in `backends` once for a run.
    /// `provider` forces where PostgreSQL comes from (see [`postgres::Provider`]).
    pub fn prepare(backends: &[Backend], provider: Option<postgres::Provider>) -> RunDatabases {
        let mut run = RunDatabases::default();
        for backend in backends {
            match backend {
                Backend::Sqlite => {}
                Backend::Postgres => postgres::prepare_run(&mut run, provider),
            }
        }
        run
    }

    pub(crate) fn hold(&mut self, resource: Box<dyn std::fmt::Debug + Send + Sync>) {
        self._resources.push(resource);
    }
}

/// One backend's fresh database for one case. Dropping it removes it.
pub trait CaseDatabase: Send + Sync + fmt::Display {
    fn backend(&self) -> Backend;
    /// A new connection.
    fn connect(&self) -> Result<Box<dyn Store>, StoreError>;
    fn process_access(&self) -> ProcessAccess;
    /// The file, for backends that have one.
    fn file(&self) -> Option<&Path> {
        None
    }

    /// Terminates every server-side connection to this database (a real fault), for
    /// backends that have a server.
    fn terminator(&self) -> Option<crate::faults::Terminator> {
        None
    }
}

/// A fresh, empty database for one case on some backend.
pub struct Database(Box<dyn CaseDatabase>);

impl Database {
    pub fn create(backend: Backend) -> Result<Database, Unavailable> {
        let database: Box<dyn CaseDatabase> = match backend {
            Backend::Sqlite => Box::new(sqlite::SqliteDatabase::create()?),
            Backend::Postgres => Box::new(postgres::PostgresDatabase::create()?),
        };
        Ok(Database(database))
    }

    /// A database of a provider built by the caller (a test that needs its own server).
    pub fn from_provider(database: Box<dyn CaseDatabase>) -> Database {
        Database(database)
    }

    pub fn backend(&self) -> Backend {
        self.0.backend()
    }

    pub fn connect(&self) -> Result<Box<dyn Store>, StoreError> {
        self.0.connect()
    }

    pub fn process_access(&self) -> ProcessAccess {
        self.0.process_access()
    }

    /// See [`CaseDatabase::terminator`].
    pub fn terminator(&self) -> Option<crate::faults::Terminator> {
        self.0.terminator()
    }

    /// The SQLite file, for checks that need the file itself.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.0.file()
    }
}

// Through the provider's Display, which never shows a password.
impl fmt::Debug for Database {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Database({})", self.0)
    }
}

impl fmt::Display for Database {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

/// Connects to a server that is starting, with the store's bounded backoff (`attempts`
/// tries, from 50 ms, doubling): `Ok` once it accepts.
pub(crate) fn accepting(url: &SecretUrl, attempts: u32) -> Result<(), StoreError> {
    let mut options = book::store::PostgresOptions::new(url.expose());
    options.connect_attempts_max = attempts;
    options.backoff_initial_ms = 50;
    book::store::PostgresStore::connect(options).map(drop)
}
