//! The book's configuration (SPEC §2.11): a pure function of an environment map, frozen
//! once built (no field is public, nothing takes `&mut self`).
//!
//! - `TRADING_MODE`: `paper` or `live`, case-insensitive, trimmed. Missing: paper, with a
//!   warning. Anything else: an error.
//! - `CONFIRM_LIVE_TRADING`: live needs exactly `true` (case-insensitive, trimmed); `1`,
//!   `yes`, `false`, empty or missing are errors.
//! - `DATABASE_URL`: `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE[?PARAMS]` with every
//!   part present (user, password and database percent-decoded); live needs
//!   `sslmode=require`.
//!
//! No error, `Debug` or `Display` ever shows the password: errors name the variable and
//! show the URL redacted, or not at all.

use std::collections::BTreeMap;
use std::fmt;

use crate::book::Mode;
use crate::mutant::Mutant;
use crate::store::redact_url;

pub const TRADING_MODE: &str = "TRADING_MODE";
pub const CONFIRM_LIVE_TRADING: &str = "CONFIRM_LIVE_TRADING";
pub const DATABASE_URL: &str = "DATABASE_URL";

/// A valid configuration. Built only by [`Config::from_env`]; read-only afterwards.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    mode: Mode,
    database: DatabaseUrl,
    warnings: Vec<String>,
}

/// The parts of `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    url: String,
    pub user: String,
    password: Option<String>,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub params: BTreeMap<String, String>,
}

impl DatabaseUrl {
    /// The URL as given, password included: for a connection only, never to print.
    pub fn expose(&self) -> &str {
        &self.url
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "DatabaseUrl({})", redact_url(&self.url))
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Config")
            .field("mode", &self.mode)
            .field("database", &self.database)
            .field("warnings", &self.warnings)
            .finish()
    }
}

/// What is wrong with the environment: the variable, and what it accepts. Never the
/// password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

fn error(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

impl Config {
    /// The configuration `env` describes, or the first thing wrong with it.
    pub fn from_env(env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        Config::from_env_as(env, None)
    }

    /// [`Config::from_env`], with a mutant's bug (tests only).
    pub fn from_env_as(
        env: &BTreeMap<String, String>,
        mutant: Option<Mutant>,
    ) -> Result<Config, ConfigError> {
        let mut warnings = Vec::new();
        let mode = match env
            .get(TRADING_MODE)
            .map(|mode| mode.trim().to_ascii_lowercase())
        {
            None => {
                warnings.push(format!("{TRADING_MODE} is not set: running in paper mode"));
                Mode::Paper
            }
            Some(mode) if mode == "paper" => Mode::Paper,
            Some(mode) if mode == "live" => Mode::Live,
            Some(_) => {
                return Err(error(
                    TRADING_MODE,
                    "must be paper or live (case-insensitive)",
                ))
            }
        };
        if mode == Mode::Live {
            confirm_live(env.get(CONFIRM_LIVE_TRADING), mutant)?;
        }
        let url = env.get(DATABASE_URL).ok_or_else(|| {
            error(
                DATABASE_URL,
                "is not set: give postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            )
        })?;
        let database = parse_url(url, mutant)?;
        if mode == Mode::Live
            && database.params.get("sslmode").map(String::as_str) != Some("require")
        {
            return Err(error(
                DATABASE_URL,
                format!("live trading needs ?sslmode=require in {}", redact_url(url)),
            ));
        }
        Ok(Config {
            mode,
            database,
            warnings,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn database(&self) -> &DatabaseUrl {
        &self.database
    }

    /// What was defaulted, for the log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

fn confirm_live(value: Option<&String>, mutant: Option<Mutant>) -> Result<(), ConfigError> {
    let confirmed = value.map(|value| value.trim().to_ascii_lowercase());
    match confirmed.as_deref() {
        Some("true") => Ok(()),
        Some("1") if mutant == Some(Mutant::ConfirmLiveAcceptsOne) => Ok(()),
        Some(_) => Err(error(
            CONFIRM_LIVE_TRADING,
            "must be exactly true (case-insensitive) to trade live; 1, yes, false and empty are refused",
        )),
        None => Err(error(CONFIRM_LIVE_TRADING, "is not set: live trading needs CONFIRM_LIVE_TRADING=true")),
    }
}

/// `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE[?KEY=VALUE&...]`. The user info runs to
/// the last `@` (a password may hold `@`), the rest must be well formed. Errors show the
/// URL redacted.
fn parse_url(url: &str, mutant: Option<Mutant>) -> Result<DatabaseUrl, ConfigError> {
    let shown = if mutant == Some(Mutant::UrlErrorShowsPassword) {
        url.to_owned()
    } else if url.contains("://") {
        redact_url(url)
    } else {
        // Not a URL: nothing tells where a password would be, so nothing is shown.
        "the value (not shown: it is not a URL)".to_owned()
    };
    let bad = |problem: &str| error(DATABASE_URL, format!("{problem} in {shown}"));
    let rest = ["postgres://", "postgresql://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or_else(|| bad("the scheme is not postgres:// or postgresql://"))?;
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (user_info, location) = before_query
        .rsplit_once('@')
        .ok_or_else(|| bad("no user (USER@HOST)"))?;
    let (user, password) = match user_info.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (user_info, None),
    };
    let user = decode(user).ok_or_else(|| bad("the user is not valid percent-encoding"))?;
    let password = password
        .map(|password| {
            decode(password).ok_or_else(|| bad("the password is not valid percent-encoding"))
        })
        .transpose()?;
    let (host_port, database) = location
        .split_once('/')
        .ok_or_else(|| bad("no database (HOST:PORT/DATABASE)"))?;
    let database = decode(database)
        .filter(|database| !database.is_empty() && !database.contains('/'))
        .ok_or_else(|| bad("no database name"))?;
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| bad("no port (HOST:PORT)"))?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|port| *port > 0)
        .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
    if user.is_empty() || host.is_empty() || host.contains(['@', ' ']) {
        return Err(bad(if user.is_empty() {
            "no user"
        } else {
            "no valid host"
        }));
    }
    let mut params = BTreeMap::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| bad("a parameter is not KEY=VALUE"))?;
        params.insert(key.to_owned(), value.to_owned());
    }
    Ok(DatabaseUrl {
        url: url.to_owned(),
        user,
        password,
        host: host.to_owned(),
        port,
        database,
        params,
    })
}

/// Percent-decoding; `None` for a malformed escape or bytes that are not UTF-8.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}
