//! Storage behind one narrow seam.
//!
//! The book speaks one portable SQL dialect (PostgreSQL-style `$1` placeholders, `ON
//! CONFLICT`, `RETURNING`, integers and text only) through [`Store`] and [`Transaction`].
//! Each backend translates what it must and maps its errors onto [`StoreError`], so nothing
//! above this module knows which database it is talking to.

mod postgres;
mod sqlite;

pub use self::postgres::{redact_url, PostgresOptions, PostgresStore};
pub use self::sqlite::SqliteStore;

use std::fmt;

/// A column value. The book persists no floats and no blobs: money, quantities and time
/// are integers, everything else is text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(value) => Some(*value),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(value) => Some(value),
            _ => None,
        }
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}

impl From<&String> for Value {
    fn from(value: &String) -> Self {
        Value::Text(value.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Self {
        value.map_or(Value::Null, Into::into)
    }
}

/// The result of a query: column names (also when no row matched) and the rows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// Calls a macro with every backend, once each as `module Variant`: the one list that
/// [`Backend`], [`Backend::ALL`] and the harness's per-backend tests (`gate_tests!`) are
/// generated from. A new backend is a line here, its store, its migrations and its provider.
///
/// `with_backends!(some_macro! { ARGS })` expands to
/// `some_macro! { backends: [sqlite Sqlite, postgres Postgres]; ARGS }`.
#[macro_export]
macro_rules! with_backends {
    ($($callback:tt)*) => {
        $crate::__with_backends_list!([sqlite Sqlite, postgres Postgres] $($callback)*);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __with_backends_list {
    ([$($list:tt)*] $($callback:ident)::+ ! { $($args:tt)* }) => {
        $($callback)::+ ! { backends: [$($list)*]; $($args)* }
    };
    ([$($list:tt)*] $crate_:tt :: $($callback:ident)::+ ! { $($args:tt)* }) => {
        $crate_ :: $($callback)::+ ! { backends: [$($list)*]; $($args)* }
    };
}

macro_rules! define_backends {
    (backends: [$($module:ident $variant:ident),*];) => {
        /// Which backend a store talks to. Used for reports, providers and picking
        /// migrations, never for branching business logic.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Backend {
            $($variant),*
        }

        impl Backend {
            /// Every backend, the embedded one (SQLite) first.
            pub const ALL: &'static [Backend] = &[$(Backend::$variant),*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Backend::$variant => stringify!($module)),*
                }
            }
        }
    };
}

with_backends!(define_backends! {});

impl Backend {
    /// The backend with this [`Backend::name`].
    pub fn parse(name: &str) -> Option<Backend> {
        Backend::ALL
            .iter()
            .copied()
            .find(|backend| backend.name() == name)
    }

    /// The backend that needs no server and always runs: the reference for differentials.
    pub fn embedded() -> Backend {
        Backend::ALL[0]
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// How a transaction isolates itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A read-only snapshot (dumps, inspections): takes no write lock.
    Read,
    /// A read-write transaction with the backend's usual guarantees (SQLite takes the write
    /// lock up front with `BEGIN IMMEDIATE`; PostgreSQL uses READ COMMITTED).
    Write,
    /// The entry transaction: SERIALIZABLE on PostgreSQL, `BEGIN IMMEDIATE` on SQLite
    /// (SQLite serialises every writer).
    Serializable,
}

/// What went wrong in the database, classified so that callers can decide what to retry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLSTATE 23505 / SQLITE_CONSTRAINT_UNIQUE or _PRIMARYKEY. `constraint` names the table
    /// or constraint as the backend reported it.
    #[error("unique constraint violated ({constraint})")]
    UniqueViolation { constraint: String },
    /// SQLSTATE 23514 / SQLITE_CONSTRAINT_CHECK.
    #[error("check constraint violated ({constraint})")]
    CheckViolation { constraint: String },
    /// Any other integrity violation (foreign key, not null).
    #[error("integrity constraint violated: {message}")]
    Constraint { message: String },
    /// SQLSTATE 40001 (or 40P01): the transaction lost a serialization race and may be
    /// retried as a whole.
    #[error("serialization failure: {message}")]
    Serialization { message: String },
    /// The connection failed, was reset, shut down by an administrator or timed out. The
    /// transaction did not commit, unless the failure hit the commit itself.
    #[error("connection failed: {message}")]
    Connection { message: String },
    /// The connection failed while committing: the transaction may or may not have been
    /// applied. Never retried; the caller must treat the outcome as unknown.
    #[error("commit outcome unknown: {message}")]
    CommitOutcomeUnknown { message: String },
    /// The database's contents do not fit the book (a float or blob column, say).
    #[error("unexpected data: {message}")]
    Data { message: String },
    /// The file is not a database of this backend: refused, and left as it is.
    #[error("{message}")]
    NotADatabase { message: String },
    /// The database URL does not parse (its text redacted).
    #[error("{message}")]
    BadUrl { message: String },
    /// The database cannot be opened or written where it is: its directory is missing or
    /// read-only.
    #[error("{message}")]
    Location { message: String },
    /// Anything else the backend reported (syntax errors, missing tables).
    #[error("database error: {message}")]
    Other { message: String },
}

/// A database connection the book owns.
pub trait Store: Send {
    fn backend(&self) -> Backend;

    /// Starts a transaction. Dropping it without [`Transaction::commit`] rolls it back, which
    /// is exactly what a crash does.
    fn transaction(
        &mut self,
        isolation: Isolation,
    ) -> Result<Box<dyn Transaction + '_>, StoreError>;
}

/// One open transaction. Statements use `$1`, `$2`, ... placeholders.
pub trait Transaction {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, StoreError>;
    /// Runs several statements without parameters (migrations).
    fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError>;
    fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

impl dyn Transaction + '_ {
    /// The rows of a query that must return at most one row.
    pub fn query_optional(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Option<Vec<Value>>, StoreError> {
        let mut rows = self.query(sql, params)?.rows;
        if rows.len() > 1 {
            return Err(StoreError::Data {
                message: format!("expected at most one row, got {}: {sql}", rows.len()),
            });
        }
        Ok(rows.pop())
    }

    /// The single integer a query must return (`SELECT COUNT(*) ...`).
    pub fn query_int(&mut self, sql: &str, params: &[Value]) -> Result<i64, StoreError> {
        let row = self.query_optional(sql, params)?;
        match row.as_deref() {
            Some([Value::Int(value)]) => Ok(*value),
            other => Err(StoreError::Data {
                message: format!("expected one integer, got {other:?}: {sql}"),
            }),
        }
    }
}
