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
pub struct Database {
    /// The harness's own connection for reading the book ([`Database::read`]), opened on
    /// first use and kept: a dump after every step would otherwise pay a connection (and,
    /// on SQLite, a parse of the schema; on PostgreSQL, a new backend) each time. Declared
    /// first so that it closes before the database is removed.
    reader: Kept<Box<dyn Store>>,
    provider: Box<dyn CaseDatabase>,
}

impl Database {
    pub fn create(backend: Backend) -> Result<Database, Unavailable> {
        let database: Box<dyn CaseDatabase> = match backend {
            Backend::Sqlite => Box::new(sqlite::SqliteDatabase::create()?),
            Backend::Postgres => Box::new(postgres::PostgresDatabase::create()?),
        };
        Ok(Database::from_provider(database))
    }

    /// A fresh database for the reference book to open, made the quickest way the backend
    /// has, for cases that do not crash inside the book's migration. SQLite: already at the
    /// book's latest schema, a copy of a file migrated once per process (a byte copy
    /// instead of parsing the DDL again). PostgreSQL: empty, as [`Database::create`], and
    /// the book migrates it as it opens: migrating it here first, on a connection of the
    /// harness's, made each case slower (160 against 99 ms, measured), since the book's new
    /// connection must then load the catalogue another connection changed.
    pub fn create_ready(backend: Backend) -> Result<Database, Unavailable> {
        match backend {
            Backend::Sqlite => Ok(Database::from_provider(Box::new(
                sqlite::SqliteDatabase::create_migrated()?,
            ))),
            Backend::Postgres => Database::create(backend),
        }
    }

    /// A fresh SQLite database in a temp dir inside `directory` (the benches' write path,
    /// measured on a disk rather than where the gates keep their cases).
    pub fn create_sqlite_in(directory: &Path) -> Result<Database, Unavailable> {
        Ok(Database::from_provider(Box::new(
            sqlite::SqliteDatabase::create_in(Some(directory))?,
        )))
    }

    /// A database of a provider built by the caller (a test that needs its own server).
    pub fn from_provider(database: Box<dyn CaseDatabase>) -> Database {
        Database {
            reader: Kept::default(),
            provider: database,
        }
    }

    pub fn backend(&self) -> Backend {
        self.provider.backend()
    }

    pub fn connect(&self) -> Result<Box<dyn Store>, StoreError> {
        self.provider.connect()
    }

    /// Runs `read` (a dump, a query of the book's tables) on the harness's own connection,
    /// kept from one call to the next. A connection the harness finds dead (the server was
    /// crashed or its backends terminated since the last read: faults the checks inject)
    /// is replaced once; any other error, or a failure on the new connection, is returned.
    pub fn read<T>(
        &self,
        read: impl Fn(&mut dyn Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.reader
            .with(|| self.provider.connect(), |store| read(store.as_mut()))
    }

    pub fn process_access(&self) -> ProcessAccess {
        self.provider.process_access()
    }

    /// See [`CaseDatabase::terminator`].
    pub fn terminator(&self) -> Option<crate::faults::Terminator> {
        self.provider.terminator()
    }

    /// The SQLite file, for checks that need the file itself.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.provider.file()
    }
}

// Through the provider's Display, which never shows a password.
impl fmt::Debug for Database {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Database({})", self.provider)
    }
}

impl fmt::Display for Database {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.provider.fmt(formatter)
    }
}

/// A connection the harness keeps from one use to the next, opened on first use. A
/// connection found dead (a check crashed the server or terminated its backends since the
/// last use) is replaced once; any other error, or a failure on the new connection, is
/// returned.
pub(crate) struct Kept<S>(std::sync::Mutex<Option<S>>);

// Says only whether a connection is held: never a connection's details.
impl<S> fmt::Debug for Kept<S> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // try_lock: a Debug inside `with` must not wait on its own lock.
        match self.0.try_lock() {
            Ok(held) => write!(formatter, "Kept(held: {})", held.is_some()),
            Err(_) => formatter.write_str("Kept(in use)"),
        }
    }
}

impl<S> Default for Kept<S> {
    fn default() -> Kept<S> {
        Kept(std::sync::Mutex::new(None))
    }
}

impl<S> Kept<S> {
    pub(crate) fn with<T>(
        &self,
        connect: impl Fn() -> Result<S, StoreError>,
        work: impl Fn(&mut S) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut held = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(connection) = held.as_mut() {
            match work(connection) {
                Err(StoreError::Connection { .. }) => *held = None,
                other => return other,
            }
        }
        let mut connection = connect()?;
        let result = work(&mut connection);
        *held = Some(connection);
        result
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
