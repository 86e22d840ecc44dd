//! `book`: the reference book as a process, driven over the line protocol of
//! `book::protocol` on stdin and stdout. The harness runs it to crash a real process
//! (an armed crash point aborts it; or the harness sends SIGKILL) and restart it on the
//! same database.

use std::process::ExitCode;

use book::protocol::{self, BookLine, Request};
use book::store::{PostgresOptions, PostgresStore, SqliteStore, Store};
use book::{Book, BookOptions, CrashPlan, CrashSite, Limits, ManualClock, Mode, Mutant, RunSpec};

const USAGE: &str = "usage: book (--sqlite PATH | --postgres) --run-id ID --seed HEX \
[--dataset-sha SHA] [--config-sha SHA] [--mutant NAME] [--crash-at POINT#HIT]

Speaks book::protocol on stdin/stdout: one JSON request per line, answered by venue calls
and one `done` line. With --postgres the URL comes from BOOK_POSTGRES_URL (never from the
command line, where other users could read its password).
Exit codes: 0 stdin closed, 1 the book could not open or the protocol broke, 2 bad usage.";

struct Arguments {
    sqlite: Option<String>,
    postgres: bool,
    run_id: Option<String>,
    seed: Option<u64>,
    dataset_sha: String,
    config_sha: String,
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
            "--seed" => {
                let text = value()?;
                let digits = text.trim_start_matches("0x");
                parsed.seed = Some(
                    u64::from_str_radix(digits, 16)
                        .map_err(|_| format!("bad seed {text:?}: expected hex"))?,
                );
            }
            "--dataset-sha" => parsed.dataset_sha = value()?,
            "--config-sha" => parsed.config_sha = value()?,
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

fn run(arguments: Arguments) -> Result<(), String> {
    let (Some(run_id), Some(seed)) = (arguments.run_id, arguments.seed) else {
        return Err(format!("--run-id and --seed are required\n\n{USAGE}"));
    };
    let store: Box<dyn Store> = match &arguments.sqlite {
        Some(path) => Box::new(
            SqliteStore::open(std::path::Path::new(path)).map_err(|error| error.to_string())?,
        ),
        None => {
            let url = std::env::var("BOOK_POSTGRES_URL")
                .map_err(|_| "--postgres needs BOOK_POSTGRES_URL".to_owned())?;
            Box::new(
                PostgresStore::connect(PostgresOptions::new(url))
                    .map_err(|error| error.to_string())?,
            )
        }
    };
    let clock = ManualClock::starting_at(0);
    let options = BookOptions {
        run: RunSpec {
            run_id,
            mode: Mode::Paper,
            dataset_sha: arguments.dataset_sha,
            config_sha: arguments.config_sha,
            seed,
        },
        limits: Limits::default(),
        mutant: arguments.mutant,
        crash_plan: arguments.crash_at.map(CrashPlan::aborting),
    };
    let mut stdout = std::io::stdout();
    let mut book = match Book::open(
        store,
        Box::new(protocol::LineVenue),
        Box::new(clock.clone()),
        options,
    ) {
        Ok(book) => book,
        Err(error) => {
            let _ = protocol::write_line(&mut stdout, &BookLine::Done(Err(error)));
            return Err("the book did not open".to_owned());
        }
    };
    protocol::write_line(&mut stdout, &BookLine::Ready).map_err(|error| error.to_string())?;
    loop {
        let request: Request = match protocol::read_line(&mut std::io::stdin().lock()) {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(error) => return Err(error.to_string()),
        };
        if request.now_ms() < book::Clock::now_ms(&clock) {
            return Err(format!(
                "time went backwards: request at {} ms",
                request.now_ms()
            ));
        }
        clock.set(request.now_ms());
        let result = protocol::serve(&mut book, request);
        protocol::write_line(&mut stdout, &BookLine::Done(result))
            .map_err(|error| error.to_string())?;
    }
}
