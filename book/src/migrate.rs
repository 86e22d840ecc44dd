//! Versioned, embedded, checksummed migrations (SPEC §2.10).
//!
//! Fresh database: every migration applies, each in its own transaction together with its
//! `schema_migrations` row. Re-run: nothing changes. A database that records a version this
//! build does not know, or a checksum that differs from the embedded SQL, is refused before
//! anything is written. Every migration has a down step.

use sha2::{Digest, Sha256};

use crate::crash::{self, CommitError, CrashPlan, Crashed};
use crate::store::{Backend, Isolation, Store, StoreError, Value};

#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

impl Migration {
    /// sha256 of the up step, hex. Recorded when applied, compared on every start.
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.up.as_bytes()))
    }
}

/// Both backends embed the same list; only the SQL files differ (type names).
macro_rules! embedded {
    ($backend:literal, [$(($version:literal, $file:literal, $name:literal)),* $(,)?]) => {
        &[$(Migration {
            version: $version,
            name: $name,
            up: include_str!(concat!("../migrations/", $backend, "/", $file, ".up.sql")),
            down: include_str!(concat!("../migrations/", $backend, "/", $file, ".down.sql")),
        }),*]
    };
}

macro_rules! all_migrations {
    ($backend:literal) => {
        embedded!(
            $backend,
            [
                (1, "0001_core", "core"),
                (2, "0002_indexes", "indexes"),
                (3, "0003_cancel_and_commands", "cancel_and_commands"),
                (4, "0004_exits", "exits"),
            ]
        )
    };
}

const SQLITE: &[Migration] = all_migrations!("sqlite");
const POSTGRES: &[Migration] = all_migrations!("postgres");

/// The migrations this build embeds for `backend`, in version order.
pub fn migrations(backend: Backend) -> &'static [Migration] {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}

/// The newest schema version this build knows.
pub fn latest_version(backend: Backend) -> i64 {
    migrations(backend)
        .last()
        .map_or(0, |migration| migration.version)
}

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "the database schema is at version {found}, newer than this build supports ({supported}); \
         refusing to start: run the build that wrote it or restore a backup"
    )]
    SchemaAhead { found: i64, supported: i64 },
    #[error(
        "migration {version} ({name}) was applied with checksum {recorded} but this build embeds \
         {embedded}; refusing to start: the migration file changed after it was applied"
    )]
    ChecksumDrift {
        version: i64,
        name: String,
        recorded: String,
        embedded: String,
    },
    #[error("schema_migrations records version {version}, which this build does not have; refusing to start")]
    UnknownVersion { version: i64 },
    #[error("migration {version} ({name}) failed: {source}")]
    Step {
        version: i64,
        name: String,
        #[source]
        source: StoreError,
    },
    /// An armed crash point fired while migrating (tests only).
    #[error(transparent)]
    Crashed(#[from] Crashed),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A row of `schema_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
    pub checksum: String,
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    pub applied_versions: Vec<i64>,
}

/// The name of a migration's crash points (`migrate.before_commit#N`).
pub const CRASH_NAME: &str = "migrate";

const CREATE_LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version  BIGINT PRIMARY KEY,
    name     TEXT NOT NULL,
    checksum TEXT NOT NULL
)";

/// The rows of `schema_migrations`, creating the table if it does not exist.
pub fn applied(store: &mut dyn Store) -> Result<Vec<AppliedMigration>, StoreError> {
    let mut transaction = store.transaction(Isolation::Write)?;
    transaction.execute_batch(CREATE_LEDGER)?;
    let rows = transaction.query(
        "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
        &[],
    )?;
    transaction.commit()?;
    rows.rows
        .into_iter()
        .map(|row| match row.as_slice() {
            [Value::Int(version), Value::Text(name), Value::Text(checksum)] => {
                Ok(AppliedMigration {
                    version: *version,
                    name: name.clone(),
                    checksum: checksum.clone(),
                })
            }
            other => Err(StoreError::Data {
                message: format!("schema_migrations holds a malformed row: {other:?}"),
            }),
        })
        .collect()
}

/// Checks what is applied against what this build embeds, then applies what is missing.
pub fn migrate(store: &mut dyn Store) -> Result<MigrationReport, MigrateError> {
    migrate_with_crash_points(store, None)
}

/// [`migrate`], passing the crash points `migrate.before_commit` and
/// `migrate.after_commit` of each migration when a plan is given.
pub fn migrate_with_crash_points(
    store: &mut dyn Store,
    crash_plan: Option<&CrashPlan>,
) -> Result<MigrationReport, MigrateError> {
    let known = migrations(store.backend());
    let applied = applied(store)?;
    check_applied(known, &applied)?;
    let mut applied_versions = Vec::new();
    for migration in known {
        if applied.iter().any(|row| row.version == migration.version) {
            continue;
        }
        match apply(store, migration, crash_plan) {
            Ok(()) => {}
            Err(CommitError::Crashed(crashed)) => return Err(MigrateError::Crashed(crashed)),
            Err(CommitError::Store(source)) => {
                return Err(MigrateError::Step {
                    version: migration.version,
                    name: migration.name.to_owned(),
                    source,
                })
            }
        }
        applied_versions.push(migration.version);
    }
    Ok(MigrationReport { applied_versions })
}

fn check_applied(known: &[Migration], applied: &[AppliedMigration]) -> Result<(), MigrateError> {
    let supported = known.last().map_or(0, |migration| migration.version);
    if let Some(newest) = applied.iter().map(|row| row.version).max() {
        if newest > supported {
            return Err(MigrateError::SchemaAhead {
                found: newest,
                supported,
            });
        }
    }
    for row in applied {
        let migration = find(known, row.version)?;
        let embedded = migration.checksum();
        if row.checksum != embedded {
            return Err(MigrateError::ChecksumDrift {
                version: row.version,
                name: row.name.clone(),
                recorded: row.checksum.clone(),
                embedded,
            });
        }
    }
    Ok(())
}

fn find(known: &[Migration], version: i64) -> Result<&Migration, MigrateError> {
    known
        .iter()
        .find(|migration| migration.version == version)
        .ok_or(MigrateError::UnknownVersion { version })
}

fn apply(
    store: &mut dyn Store,
    migration: &Migration,
    crash_plan: Option<&CrashPlan>,
) -> Result<(), CommitError> {
    let mut transaction = store.transaction(Isolation::Write)?;
    transaction.execute_batch(migration.up)?;
    transaction.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        &[
            Value::Int(migration.version),
            Value::from(migration.name),
            Value::Text(migration.checksum()),
        ],
    )?;
    crash::commit(transaction, crash_plan, CRASH_NAME)
}

/// Runs the down steps of every applied migration newer than `target_version`, newest
/// first, each in its own transaction with the removal of its ledger row.
pub fn migrate_down(store: &mut dyn Store, target_version: i64) -> Result<Vec<i64>, MigrateError> {
    let known = migrations(store.backend());
    let applied = applied(store)?;
    check_applied(known, &applied)?;
    let mut reverted = Vec::new();
    for row in applied
        .iter()
        .rev()
        .filter(|row| row.version > target_version)
    {
        let migration = find(known, row.version)?;
        let mut revert = || -> Result<(), StoreError> {
            let mut transaction = store.transaction(Isolation::Write)?;
            transaction.execute_batch(migration.down)?;
            transaction.execute(
                "DELETE FROM schema_migrations WHERE version = $1",
                &[Value::Int(migration.version)],
            )?;
            transaction.commit()
        };
        revert().map_err(|source| MigrateError::Step {
            version: migration.version,
            name: migration.name.to_owned(),
            source,
        })?;
        reverted.push(migration.version);
    }
    Ok(reverted)
}
