//! `book`: the reference book as a process, driven over the line protocol documented in
//! the `protocol` crate. The harness runs it to crash a real process (an armed crash point
//! aborts it; or the harness sends SIGKILL) and restart it on the same database.

use std::process::ExitCode;

use book::process::{self, LineVenue};
use book::store::{PostgresOptions, PostgresStore, SqliteStore, Store};
use book::{Book, BookOptions, CrashPlan, Firing, Limits, ManualClock, Mode, Mutant, RunSpec};
use protocol::{BookLine, CrashSite, PROTOCOL_VERSION};

const USAGE: &str = "usage: book (--sqlite PATH | --postgres) --run-id ID --seed HEX \
[--dataset-sha SHA] [--config-sha SHA] [--mode paper|live] [--max-open N] [--max-exposure N] \
[--max-daily-loss N] [--stop-loss MILLIONTHS] [--take-profit MILLIONTHS] [--mutant NAME] \
[--crash-at POINT#HIT]

Speaks the line protocol of the `protocol` crate on stdin/stdout: one JSON request per
line, answered by venue calls and one `ok` or `error` line. With --postgres the URL comes
from BOOK_POSTGRES_URL (never from the command line, where other users could read its
password). --crash-at aborts the process at that crash point (crash tests).
Exit codes: 0 stdin closed, 1 the book could not open or stdout broke, 2 bad usage.";

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

fn parse(mut arguments: impl Iterator<Item = String>) -> Result<Arguments, String> {
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
                .ok_or_else(|| format!("{flag} needs a value"))
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
            "--mode" => {
                parsed.mode = match value()?.as_str() {
                    "paper" => Mode::Paper,
                    "live" => Mode::Live,
                    other => return Err(format!("--mode {other:?}: expected paper or live")),
                }
            }
            "--mutant" => {
                let name = value()?;
                parsed.mutant =
                    Some(Mutant::parse(&name).ok_or_else(|| format!("unknown mutant {name:?}"))?);
            }
            "--crash-at" => parsed.crash_at = Some(value()?.parse()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if parsed.sqlite.is_some() == parsed.postgres {
        return Err("give exactly one of --sqlite PATH and --postgres".to_owned());
    }
    Ok(parsed)
}

fn parse_amount(flag: &str, text: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .ok()
        .filter(|amount| *amount >= 0)
        .ok_or_else(|| format!("{flag} {text:?}: expected a whole number, 0 or more"))
}

fn parse_seed(text: &str) -> Result<u64, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    u64::from_str_radix(digits, 16).map_err(|_| format!("bad seed {text:?}: expected hex"))
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
    let parsed = match parse(arguments.into_iter()) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn open_store(arguments: &Arguments) -> Result<Box<dyn Store>, String> {
    match &arguments.sqlite {
        Some(path) => Ok(Box::new(
            SqliteStore::open(std::path::Path::new(path)).map_err(|error| error.to_string())?,
        )),
        None => {
            let url = std::env::var("BOOK_POSTGRES_URL")
                .map_err(|_| "--postgres needs BOOK_POSTGRES_URL".to_owned())?;
            Ok(Box::new(
                PostgresStore::connect(PostgresOptions::new(url))
                    .map_err(|error| error.to_string())?,
            ))
        }
    }
}

fn run(arguments: Arguments) -> Result<(), String> {
    let (Some(run_id), Some(seed)) = (arguments.run_id.clone(), arguments.seed) else {
        return Err(format!("--run-id and --seed are required\n\n{USAGE}"));
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
    };
    let mut stdout = std::io::stdout();
    let mut book = match Book::open(store, Box::new(LineVenue), Box::new(clock.clone()), options) {
        Ok(book) => book,
        Err(error) => {
            let problem = book::serve::problem(error);
            let message = problem.message.clone();
            process::write(&mut stdout, &BookLine::Error { problem })?;
            return Err(format!("the book did not open: {message}"));
        }
    };
    process::write(
        &mut stdout,
        &BookLine::Ready {
            protocol_version: PROTOCOL_VERSION,
        },
    )?;
    process::serve_lines(&mut book, &clock)
}
