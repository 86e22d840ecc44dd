//! PostgreSQL through the synchronous `postgres` client.
//!
//! Every statement runs under a `statement_timeout`; connecting is tried a bounded number of
//! times with exponential backoff; a connection that broke is replaced before the next
//! transaction. Statements are prepared once per connection and reused (the book runs a
//! fixed set of them; DDL or a new connection empties the cache). The password never
//! leaves this module: every message that could carry it
//! goes through [`redact`].

use std::collections::HashMap;
use std::error::Error as StdError;
use std::str::FromStr;
use std::time::Duration;

use bytes::BytesMut;
use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{Client, Config, IsolationLevel, NoTls, Statement};

use super::{Backend, Isolation, Rows, Store, StoreError, Transaction, Value};

/// Connection settings. Defaults: 5 s per statement, 3 connection attempts, 100 ms first
/// backoff (doubling).
#[derive(Clone)]
pub struct PostgresOptions {
    pub url: String,
    pub statement_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    pub connect_attempts_max: u32,
    pub backoff_initial_ms: u64,
}

impl PostgresOptions {
    pub fn new(url: impl Into<String>) -> PostgresOptions {
        PostgresOptions {
            url: url.into(),
            statement_timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
            connect_attempts_max: 3,
            backoff_initial_ms: 100,
        }
    }
}

// Hand-written so that `{:?}` can never print the password.
impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresOptions")
            .field("url", &redact_url(&self.url))
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("connect_attempts_max", &self.connect_attempts_max)
            .field("backoff_initial_ms", &self.backoff_initial_ms)
            .finish()
    }
}

pub struct PostgresStore {
    client: Client,
    /// Statements prepared on `client`, by their text.
    statements: HashMap<String, Statement>,
    config: Config,
    options: PostgresOptions,
    password: Option<String>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresStore")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, trying `connect_attempts_max` times with exponential backoff, then gives up
    /// with an error that names the (redacted) URL and the last failure.
    pub fn connect(options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let mut config = Config::from_str(&options.url).map_err(|error| StoreError::BadUrl {
            message: format!(
                "DATABASE URL {} does not parse: {}",
                redact_url(&options.url),
                redact_text(&error.to_string(), password_of(&options.url).as_deref())
            ),
        })?;
        config.connect_timeout(Duration::from_millis(options.connect_timeout_ms));
        config.options(&format!(
            "-c statement_timeout={}",
            options.statement_timeout_ms
        ));
        let password = config
            .get_password()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
        let client = connect_with_backoff(&config, &options, password.as_deref())?;
        Ok(PostgresStore {
            client,
            statements: HashMap::new(),
            config,
            options,
            password,
        })
    }

    /// Runs statements that PostgreSQL refuses inside a transaction block (CREATE
    /// DATABASE, DROP DATABASE). For administration, never for the book's own writes.
    pub fn execute_outside_transaction(&mut self, sql: &str) -> Result<(), StoreError> {
        self.reconnect_if_closed()?;
        self.statements.clear();
        let password = self.password.clone();
        self.client
            .batch_execute(sql)
            .map_err(|error| map_error(&error, password.as_deref()))
    }

    fn reconnect_if_closed(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            self.client =
                connect_with_backoff(&self.config, &self.options, self.password.as_deref())?;
            self.statements.clear();
        }
        Ok(())
    }
}

fn connect_with_backoff(
    config: &Config,
    options: &PostgresOptions,
    password: Option<&str>,
) -> Result<Client, StoreError> {
    assert!(options.connect_attempts_max >= 1);
    let mut backoff_ms = options.backoff_initial_ms;
    let mut last_error = String::new();
    for attempt in 1..=options.connect_attempts_max {
        match connect_once(config, options.connect_timeout_ms) {
            Ok(Ok(client)) => return Ok(client),
            Ok(Err(error)) => last_error = describe(&error, password),
            Err(timeout) => last_error = timeout,
        }
        if attempt < options.connect_attempts_max {
            // A real pause between attempts against a real server, bounded by the attempt
            // count: this is backoff, not synchronisation.
            std::thread::sleep(Duration::from_millis(backoff_ms));
            backoff_ms = backoff_ms.saturating_mul(2);
        }
    }
    Err(StoreError::Connection {
        message: format!(
            "could not connect to {} after {} attempts: {last_error}",
            redact_url(&options.url),
            options.connect_attempts_max
        ),
    })
}

/// One connection attempt, bounded as a whole. The driver's `connect_timeout` bounds only
/// the TCP connect; a server that accepts and then never answers the startup message
/// would block forever. The attempt runs on its own thread; on timeout that thread is left
/// to finish (or fail) on its own when the socket closes.
fn connect_once(
    config: &Config,
    timeout_ms: u64,
) -> Result<Result<Client, postgres::Error>, String> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let config = config.clone();
    std::thread::Builder::new()
        .name("bookproof-pg-connect".to_owned())
        .spawn(move || {
            // The receiver is gone after a timeout; the late result is dropped.
            let _ = sender.send(config.connect(NoTls));
        })
        .map_err(|error| format!("cannot start a connection thread: {error}"))?;
    receiver
        .recv_timeout(Duration::from_millis(timeout_ms))
        .map_err(|_| format!("the server accepted the connection but did not complete the handshake within {timeout_ms} ms"))
}

impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn transaction(
        &mut self,
        isolation: Isolation,
    ) -> Result<Box<dyn Transaction + '_>, StoreError> {
        self.reconnect_if_closed()?;
        let (level, read_only) = match isolation {
            // REPEATABLE READ: a dump sees one snapshot of every table.
            Isolation::Read => (IsolationLevel::RepeatableRead, true),
            Isolation::Write => (IsolationLevel::ReadCommitted, false),
            Isolation::Serializable => (IsolationLevel::Serializable, false),
        };
        let password = self.password.clone();
        let transaction = self
            .client
            .build_transaction()
            .isolation_level(level)
            .read_only(read_only)
            .start()
            .map_err(|error| map_error(&error, password.as_deref()))?;
        Ok(Box::new(PostgresTransaction {
            transaction,
            statements: &mut self.statements,
            password,
        }))
    }
}

struct PostgresTransaction<'client> {
    transaction: postgres::Transaction<'client>,
    statements: &'client mut HashMap<String, Statement>,
    password: Option<String>,
}

impl PostgresTransaction<'_> {
    /// `sql` prepared on this connection: from the cache, or prepared now and kept.
    fn prepared(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .transaction
            .prepare(sql)
            .map_err(|error| map_error(&error, self.password.as_deref()))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

impl Transaction for PostgresTransaction<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let statement = self.prepared(sql)?;
        let references = parameter_references(params);
        self.transaction
            .execute(&statement, &references)
            .map_err(|error| map_error(&error, self.password.as_deref()))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, StoreError> {
        let statement = self.prepared(sql)?;
        let password = self.password.as_deref();
        let columns: Vec<String> = statement
            .columns()
            .iter()
            .map(|column| column.name().to_owned())
            .collect();
        let references = parameter_references(params);
        let found = self
            .transaction
            .query(&statement, &references)
            .map_err(|error| map_error(&error, password))?;
        let mut rows = Vec::with_capacity(found.len());
        for row in &found {
            let mut values = Vec::with_capacity(columns.len());
            for (index, column) in row.columns().iter().enumerate() {
                values.push(read_value(row, index, column.type_(), column.name())?);
            }
            rows.push(values);
        }
        Ok(Rows { columns, rows })
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        // DDL may change what a cached statement returns.
        self.statements.clear();
        self.transaction
            .batch_execute(sql)
            .map_err(|error| map_error(&error, self.password.as_deref()))
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let password = self.password.clone();
        self.transaction.commit().map_err(|error| {
            match map_error(&error, password.as_deref()) {
                // The commit may or may not have reached the server: say so, never retry.
                StoreError::Connection { message } => StoreError::CommitOutcomeUnknown { message },
                other => other,
            }
        })
    }
}

fn parameter_references(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|value| value as &(dyn ToSql + Sync))
        .collect()
}

fn read_value(
    row: &postgres::Row,
    index: usize,
    column_type: &Type,
    column: &str,
) -> Result<Value, StoreError> {
    let data_error = |error: postgres::Error| StoreError::Data {
        message: format!("column {column}: {error}"),
    };
    let value = match *column_type {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(index)
            .map_err(data_error)?
            .map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(index)
            .map_err(data_error)?
            .map(|value| Value::Int(value.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(index)
            .map_err(data_error)?
            .map(|value| Value::Int(value.into())),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<String>>(index)
            .map_err(data_error)?
            .map(Value::Text),
        ref other => {
            return Err(StoreError::Data {
                message: format!(
                    "column {column} has type {other}; the book stores integers and text"
                ),
            })
        }
    };
    Ok(value.unwrap_or(Value::Null))
}

impl ToSql for Value {
    fn to_sql(
        &self,
        column_type: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(integer) => match *column_type {
                Type::INT8 => integer.to_sql(column_type, out),
                Type::INT4 => i32::try_from(*integer)?.to_sql(column_type, out),
                Type::INT2 => i16::try_from(*integer)?.to_sql(column_type, out),
                ref other => Err(format!("integer parameter for a {other} column").into()),
            },
            Value::Text(text) => match *column_type {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    text.as_str().to_sql(column_type, out)
                }
                ref other => Err(format!("text parameter for a {other} column").into()),
            },
        }
    }

    fn accepts(_column_type: &Type) -> bool {
        // Each variant checks the concrete type in `to_sql`; NULL fits every column.
        true
    }

    postgres::types::to_sql_checked!();
}

fn describe(error: &postgres::Error, password: Option<&str>) -> String {
    // The driver's Display hides the cause ("error connecting to server"); the source says
    // what happened (refused, timed out, bad password).
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    redact_text(&message, password)
}

fn map_error(error: &postgres::Error, password: Option<&str>) -> StoreError {
    let message = describe(error, password);
    if error.is_closed() {
        return StoreError::Connection { message };
    }
    let Some(database_error) = error.as_db_error() else {
        // No SQLSTATE: an I/O failure or a client-side conversion error. I/O means the
        // connection is gone.
        return if error
            .source()
            .is_some_and(|cause| cause.is::<std::io::Error>())
        {
            StoreError::Connection { message }
        } else {
            StoreError::Other { message }
        };
    };
    let constraint = database_error
        .constraint()
        .or(database_error.table())
        .unwrap_or("unnamed")
        .to_owned();
    let code = database_error.code();
    if *code == SqlState::UNIQUE_VIOLATION {
        StoreError::UniqueViolation { constraint }
    } else if *code == SqlState::CHECK_VIOLATION {
        StoreError::CheckViolation { constraint }
    } else if code.code().starts_with("23") {
        StoreError::Constraint { message }
    } else if *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
    {
        StoreError::Serialization { message }
    } else if code.code().starts_with("08")
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::QUERY_CANCELED
    {
        StoreError::Connection { message }
    } else {
        StoreError::Other { message }
    }
}

/// The user info of a URL: everything between the scheme and the last `@`. A password may
/// hold `@`, `:` and `/` unencoded (the URL is then malformed, but must still not leak), so
/// the last `@` is taken, never the first: at worst more than the password is hidden.
fn user_info(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (user_info, host_and_tail) = rest.rsplit_once('@')?;
    Some((scheme, user_info, host_and_tail))
}

fn password_of(url: &str) -> Option<String> {
    let (_, user_info, _) = user_info(url)?;
    let (_, password) = user_info.split_once(':')?;
    (!password.is_empty()).then(|| password.to_owned())
}

fn redact_text(text: &str, password: Option<&str>) -> String {
    match password {
        Some(password) if !password.is_empty() => text.replace(password, "***"),
        _ => text.to_owned(),
    }
}

/// The URL with its password replaced by `***` (also a `password=` query or key/value
/// parameter). Safe to print.
pub fn redact_url(url: &str) -> String {
    let mut redacted = match (user_info(url), password_of(url)) {
        (Some((scheme, user_info, host_and_tail)), Some(_)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!("{scheme}://{user}:***@{host_and_tail}")
        }
        _ => url.to_owned(),
    };
    // key=value forms: `password=secret` in a query string or a libpq keyword string.
    for separator in ["password=", "PASSWORD="] {
        let mut from = 0;
        while let Some(found) = redacted[from..].find(separator) {
            let value_start = from + found + separator.len();
            let value_end = redacted[value_start..]
                .find(['&', ' '])
                .map_or(redacted.len(), |offset| value_start + offset);
            redacted.replace_range(value_start..value_end, "***");
            from = value_start + 3;
        }
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("postgres://trader:s3cret@db.example:5432/book?sslmode=require"),
            "postgres://trader:***@db.example:5432/book?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://trader@db:5432/book?password=s3cret&sslmode=require"),
            "postgresql://trader@db:5432/book?password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("host=db user=trader password=s3cret dbname=book"),
            "host=db user=trader password=*** dbname=book"
        );
        assert_eq!(
            redact_url("postgres://trader@db/book"),
            "postgres://trader@db/book"
        );
    }

    #[test]
    fn a_password_with_unencoded_separators_is_hidden_whole() {
        let redacted = redact_url("postgres://trader:p@ss:w/rd@db:5432/book");
        assert_eq!(redacted, "postgres://trader:***@db:5432/book");
        let redacted = redact_url("postgres://trader:s3cret@db/book?application_name=a@b");
        assert!(!redacted.contains("s3cret"), "{redacted}");
        let redacted = redact_url("host=db password=one password=two");
        assert_eq!(redacted, "host=db password=*** password=***");
    }
}
