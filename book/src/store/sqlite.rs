//! SQLite through rusqlite (bundled): WAL, foreign keys on, a busy timeout, full sync.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{ffi, Connection, ErrorCode, TransactionBehavior};

use super::{Backend, Isolation, Rows, Store, StoreError, Transaction, Value};

/// How long a writer waits for another connection's write lock before giving up.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Prepared statements kept per connection. The book uses more than sixty distinct
/// statements; rusqlite's default of 16 evicted most of them before their next use, so
/// nearly every statement was parsed again (a third of a harness run's time).
const STATEMENT_CACHE_CAPACITY: usize = 256;

#[derive(Debug)]
pub struct SqliteStore {
    // Its Debug shows the file's path.
    connection: Connection,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    /// Opens (or creates) the book's database at `path`. A file that is not a SQLite
    /// database is `NotADatabase`; a missing or read-only directory is `Location`; either
    /// way the file is left as it is.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        if !directory.is_dir() {
            return Err(StoreError::Location {
                message: format!(
                    "cannot open {}: its directory {} does not exist; create it, or give a path in an existing directory",
                    path.display(),
                    directory.display()
                ),
            });
        }
        SqliteStore::open_unlabelled(path).map_err(|error| match error {
            StoreError::NotADatabase { message } => StoreError::NotADatabase {
                message: format!(
                    "{} is not a SQLite database ({message}); refusing to open it, the file was left as it is: give the book's database, or a new path",
                    path.display()
                ),
            },
            StoreError::Location { message } => StoreError::Location {
                message: format!(
                    "cannot open or write {} ({message}); is {} writable? the file was left as it is",
                    path.display(),
                    directory.display()
                ),
            },
            other => StoreError::Other {
                message: format!(
                    "cannot open {} as the book's SQLite database: {other}; the file was left as it is",
                    path.display()
                ),
            },
        })
    }

    fn open_unlabelled(path: &Path) -> Result<SqliteStore, StoreError> {
        let connection = Connection::open(path).map_err(map_error)?;
        connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        connection
            .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
            .map_err(map_error)?;
        // WAL lets readers (the dump) run beside a writer; FULL makes every commit durable,
        // so a confirmed intent cannot vanish on power loss and be placed again.
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(map_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Other {
                message: format!(
                    "{} refused WAL mode (journal_mode is {mode})",
                    path.display()
                ),
            });
        }
        connection
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(map_error)?;
        Ok(SqliteStore { connection })
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn transaction(
        &mut self,
        isolation: Isolation,
    ) -> Result<Box<dyn Transaction + '_>, StoreError> {
        // SQLite serialises writers; IMMEDIATE takes the write lock at BEGIN so that two
        // writers never deadlock upgrading a read lock. Readers take no lock (WAL).
        let behavior = match isolation {
            Isolation::Read => TransactionBehavior::Deferred,
            Isolation::Write | Isolation::Serializable => TransactionBehavior::Immediate,
        };
        let transaction = self
            .connection
            .transaction_with_behavior(behavior)
            .map_err(map_error)?;
        Ok(Box::new(SqliteTransaction { transaction }))
    }
}

struct SqliteTransaction<'connection> {
    transaction: rusqlite::Transaction<'connection>,
}

impl Transaction for SqliteTransaction<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let sql = numbered_placeholders(sql);
        let mut statement = self.transaction.prepare_cached(&sql).map_err(map_error)?;
        let changed = statement
            .execute(rusqlite::params_from_iter(params.iter()))
            .map_err(map_error)?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, StoreError> {
        let sql = numbered_placeholders(sql);
        let mut statement = self.transaction.prepare_cached(&sql).map_err(map_error)?;
        let columns: Vec<String> = statement
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let column_count = columns.len();
        let mut cursor = statement
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(map_error)?;
        let mut rows = Vec::new();
        while let Some(row) = cursor.next().map_err(map_error)? {
            let mut values = Vec::with_capacity(column_count);
            for index in 0..column_count {
                values.push(read_value(
                    row.get_ref(index).map_err(map_error)?,
                    &columns[index],
                )?);
            }
            rows.push(values);
        }
        Ok(Rows { columns, rows })
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.transaction.execute_batch(sql).map_err(map_error)
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.transaction.commit().map_err(map_error)
    }
}

fn read_value(value: ValueRef<'_>, column: &str) -> Result<Value, StoreError> {
    match value {
        ValueRef::Null => Ok(Value::Null),
        ValueRef::Integer(integer) => Ok(Value::Int(integer)),
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Value::Text(text.to_owned())),
            Err(_) => Err(StoreError::Data {
                message: format!("column {column} holds text that is not UTF-8"),
            }),
        },
        ValueRef::Real(_) => Err(StoreError::Data {
            message: format!("column {column} holds a float; the book stores fixed-point integers"),
        }),
        ValueRef::Blob(_) => Err(StoreError::Data {
            message: format!("column {column} holds a blob; the book stores integers and text"),
        }),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(integer) => ToSqlOutput::Borrowed(ValueRef::Integer(*integer)),
            Value::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        })
    }
}

/// Rewrites PostgreSQL's `$7` into SQLite's `?7`. The book's SQL never holds a `$` inside a
/// string literal, so a plain scan is exact.
fn numbered_placeholders(sql: &str) -> String {
    let mut rewritten = String::with_capacity(sql.len());
    let mut characters = sql.chars().peekable();
    while let Some(character) = characters.next() {
        if character == '$' && characters.peek().is_some_and(char::is_ascii_digit) {
            rewritten.push('?');
        } else {
            rewritten.push(character);
        }
    }
    rewritten
}

fn map_error(error: rusqlite::Error) -> StoreError {
    let message = error.to_string();
    match &error {
        rusqlite::Error::SqliteFailure(failure, detail) => {
            let detail = detail.clone().unwrap_or_else(|| message.clone());
            match failure.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    StoreError::UniqueViolation { constraint: detail }
                }
                ffi::SQLITE_CONSTRAINT_CHECK => StoreError::CheckViolation { constraint: detail },
                _ => match failure.code {
                    ErrorCode::ConstraintViolation => StoreError::Constraint { message: detail },
                    ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                        StoreError::Serialization { message: detail }
                    }
                    ErrorCode::NotADatabase => StoreError::NotADatabase { message: detail },
                    ErrorCode::CannotOpen | ErrorCode::ReadOnly => {
                        StoreError::Location { message: detail }
                    }
                    _ => StoreError::Other { message: detail },
                },
            }
        }
        _ => StoreError::Other { message },
    }
}

#[cfg(test)]
mod tests {
    use super::numbered_placeholders;

    #[test]
    fn placeholders_are_renumbered_for_sqlite() {
        assert_eq!(
            numbered_placeholders("SELECT $1, $12 FROM t WHERE a = $2"),
            "SELECT ?1, ?12 FROM t WHERE a = ?2"
        );
        assert_eq!(numbered_placeholders("SELECT '$'"), "SELECT '$'");
    }
}
