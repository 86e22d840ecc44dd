//! `book`: the reference book as a process, driven over the line protocol documented in
//! the `protocol` crate. The harness runs it to crash a real process (an armed crash point
//! aborts it; or the harness sends SIGKILL) and restart it on the same database.

use std::process::ExitCode;

use book::migrate::MigrateError;
use book::process::{self, LineVenue};
use book::store::{PostgresOptions, PostgresStore, SqliteStore, Store, StoreError};
use book::{
    Book, BookError, BookOptions, CrashPlan, Firing, Limits, ManualClock, Mode, Mutant, RunSpec,
};
use protocol::{BookLine, CrashSite, PROTOCOL_VERSION};

const USAGE: &str = "usage: book (--sqlite PATH | --postgres) --run-id ID --seed HEX \
[--dataset-sha SHA] [--config-sha SHA] [--mode paper|live] [--max-open N] [--max-exposure N] \
[--max-daily-loss N] [--stop-loss MILLIONTHS] [--take-profit MILLIONTHS] [--mutant NAME] \
[--crash-at POINT#HIT]

Speaks the line protocol of the `protocol` crate on stdin/stdout: one JSON request per
line, answered by venue calls and one `ok` or `error` line. With --postgres the URL comes
from BOOK_POSTGRES_URL (never from the command line, where other users could read its
password). --crash-at aborts the process at that crash point (crash tests).

A database is reopened only as the run it was started for: the same --run-id with another
--seed, --dataset-sha, --config-sha or --mode is refused (every intent id would change);
start a new run under a new --run-id instead.

Exit codes: 0 stdin closed; 1 the book failed while running (stdout broke, the database
failed); 2 bad usage; 5 malformed seed; 6 unknown mutant; 7 malformed crash site; 8 bad
environment (BOOK_POSTGRES_URL missing or malformed); 9 the file is not a database; 10 the
database is from a newer build or its migrations drifted; 11 the database's directory is
missing or read-only; 12 the database belongs to a run of another identity. Whatever the
code, nothing in the database was changed.";

/// Exit codes, numbered as `cargo xtask` numbers the classes they share.
mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const BAD_SEED: u8 = 5;
    pub const UNKNOWN_MUTANT: u8 = 6;
    pub const BAD_SITE: u8 = 7;
    pub const BAD_ENVIRONMENT: u8 = 8;
    pub const NOT_A_DATABASE: u8 = 9;
    pub const NEWER_DATABASE: u8 = 10;
    pub const LOCATION: u8 = 11;
    pub const WRONG_RUN: u8 = 12;
}

/// Why the process stops: its exit code and what to tell the user.
struct Exit {
    code: u8,
    message: String,
}

impl Exit {
    fn new(code: u8, message: impl Into<String>) -> Exit {
        Exit {
            code,
            message: message.into(),
        }
    }

    fn usage(message: impl Into<String>) -> Exit {
        Exit::new(exit::USAGE, message)
    }
}

impl From<String> for Exit {
    fn from(message: String) -> Exit {
        Exit::new(exit::FAILED, message)
    }
}

struct Arguments {
    sqlite: Option<String>,
    postgres: bool,
    run_id: Option<String>,
    seed: Option<u64>,
    dataset_sha: String,
    config_sha: String,
    mode: Mode,
    limits: Limits,
    mutant: Option<Mutant>,
    crash_at: Option<CrashSite>,
}

fn parse(mut arguments: impl Iterator<Item = String>) -> Result<Arguments, Exit> {
    let mut parsed = Arguments {
        sqlite: None,
        postgres: false,
        run_id: None,
        seed: None,
        dataset_sha: "dataset".to_owned(),
        config_sha: "config".to_owned(),
        mode: Mode::Paper,
        limits: Limits::default(),
        mutant: None,
        crash_at: None,
    };
    while let Some(flag) = arguments.next() {
        let mut value = || {
            arguments
                .next()
                .ok_or_else(|| Exit::usage(format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--sqlite" => parsed.sqlite = Some(value()?),
            "--postgres" => parsed.postgres = true,
            "--run-id" => parsed.run_id = Some(value()?),
            "--seed" => parsed.seed = Some(parse_seed(&value()?)?),
            "--dataset-sha" => parsed.dataset_sha = value()?,
            "--config-sha" => parsed.config_sha = value()?,
            "--max-open" => parsed.limits.max_open = parse_amount(&flag, &value()?)?,
            "--max-exposure" => parsed.limits.max_exposure = parse_amount(&flag, &value()?)?,
            "--max-daily-loss" => parsed.limits.max_daily_loss = parse_amount(&flag, &value()?)?,
            "--stop-loss" => parsed.limits.stop_loss = parse_amount(&flag, &value()?)?,
            "--take-profit" => parsed.limits.take_profit = parse_amount(&flag, &value()?)?,
            "--mode" => parsed.mode = parse_mode(&value()?)?,
            "--mutant" => parsed.mutant = Some(parse_mutant(&value()?)?),
            "--crash-at" => {
                let text = value()?;
                let site = text.parse().map_err(|error| {
                    Exit::new(exit::BAD_SITE, format!("--crash-at {text:?}: {error}"))
                })?;
                parsed.crash_at = Some(site);
            }
            other => return Err(Exit::usage(format!("unknown argument {other:?}"))),
        }
    }
    if parsed.sqlite.is_some() == parsed.postgres {
        return Err(Exit::usage(
            "give exactly one of --sqlite PATH and --postgres",
        ));
    }
    Ok(parsed)
}

fn parse_amount(flag: &str, text: &str) -> Result<i64, Exit> {
    text.parse::<i64>()
        .ok()
        .filter(|amount| *amount >= 0)
        .ok_or_else(|| {
            Exit::usage(format!(
                "{flag} {text:?}: expected a whole number, 0 or more"
            ))
        })
}

fn parse_seed(text: &str) -> Result<u64, Exit> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    u64::from_str_radix(digits, 16).map_err(|_| {
        Exit::new(
            exit::BAD_SEED,
            format!("--seed {text:?} is not a seed: expected 1 to 16 hex digits, as in 0x5eedb00c00000001"),
        )
    })
}

fn parse_mode(text: &str) -> Result<Mode, Exit> {
    match text {
        "paper" => Ok(Mode::Paper),
        "live" => Ok(Mode::Live),
        other => Err(Exit::usage(format!(
            "--mode {other:?}: expected paper or live"
        ))),
    }
}

fn parse_mutant(name: &str) -> Result<Mutant, Exit> {
    Mutant::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Mutant::ALL.iter().map(|mutant| mutant.name()).collect();
        Exit::new(
            exit::UNKNOWN_MUTANT,
            format!(
                "unknown mutant {name:?}; known mutants: {}",
                known.join(", ")
            ),
        )
    })
}

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    if arguments
        .iter()
        .any(|argument| argument == "--help" || argument == "-h")
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let stopped = parse(arguments.into_iter()).and_then(run);
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(stop) => {
            if stop.code == exit::USAGE {
                eprintln!("error: {}\n\n{USAGE}", stop.message);
            } else {
                eprintln!("error: {}", stop.message);
            }
            ExitCode::from(stop.code)
        }
    }
}

/// The exit code for a database that could not be opened as this run.
fn store_code(error: &StoreError) -> u8 {
    match error {
        StoreError::NotADatabase { .. } => exit::NOT_A_DATABASE,
        StoreError::Location { .. } => exit::LOCATION,
        StoreError::BadUrl { .. } => exit::BAD_ENVIRONMENT,
        _ => exit::FAILED,
    }
}

fn book_code(error: &BookError) -> u8 {
    match error {
        BookError::Store(error) | BookError::Migrate(MigrateError::Store(error)) => {
            store_code(error)
        }
        BookError::Migrate(
            MigrateError::SchemaAhead { .. }
            | MigrateError::ChecksumDrift { .. }
            | MigrateError::UnknownVersion { .. },
        ) => exit::NEWER_DATABASE,
        BookError::Migrate(MigrateError::Step { source, .. }) => store_code(source),
        BookError::WrongRun { .. } => exit::WRONG_RUN,
        _ => exit::FAILED,
    }
}

fn open_store(arguments: &Arguments) -> Result<Box<dyn Store>, Exit> {
    let opened: Result<Box<dyn Store>, StoreError> = match &arguments.sqlite {
        Some(path) => {
            SqliteStore::open(std::path::Path::new(path)).map(|store| Box::new(store) as _)
        }
        None => {
            let url = std::env::var("BOOK_POSTGRES_URL").map_err(|_| {
                Exit::new(
                    exit::BAD_ENVIRONMENT,
                    "--postgres needs BOOK_POSTGRES_URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)",
                )
            })?;
            PostgresStore::connect(PostgresOptions::new(url)).map(|store| Box::new(store) as _)
        }
    };
    opened.map_err(|error| Exit::new(store_code(&error), error.to_string()))
}

fn run(arguments: Arguments) -> Result<(), Exit> {
    let (Some(run_id), Some(seed)) = (arguments.run_id.clone(), arguments.seed) else {
        return Err(Exit::usage("--run-id and --seed are required"));
    };
    let store = open_store(&arguments)?;
    let clock = ManualClock::starting_at(0);
    let options = BookOptions {
        run: RunSpec {
            run_id,
            mode: arguments.mode,
            dataset_sha: arguments.dataset_sha,
            config_sha: arguments.config_sha,
            seed,
        },
        limits: arguments.limits,
        mutant: arguments.mutant,
        crash_plan: arguments
            .crash_at
            .map(|site| CrashPlan::armed(site, Firing::Abort)),
        latch: None,
        sync_points: None,
    };
    let mut stdout = std::io::stdout();
    let mut book = match Book::open(store, Box::new(LineVenue), Box::new(clock.clone()), options) {
        Ok(book) => book,
        Err(error) => {
            let code = book_code(&error);
            let problem = book::serve::problem(error);
            let message = problem.message.clone();
            process::write(&mut stdout, &BookLine::Error { problem })?;
            return Err(Exit::new(code, format!("the book did not open: {message}")));
        }
    };
    process::write(
        &mut stdout,
        &BookLine::Ready {
            protocol_version: PROTOCOL_VERSION,
        },
    )?;
    process::serve_lines(&mut book, &clock)?;
    Ok(())
}
