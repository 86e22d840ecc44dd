//! `cargo xtask`: the one entry point for people and CI. One `match` over the commands;
//! each command lives in its own module with a `run`.

mod bench;
mod gates;
mod list;
mod nextest;
mod pg_image;
mod report;
mod repro;
mod summary;
mod test;
mod verify;

use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use harness::{Backend, Settings};

/// Exit codes, one per failure class (the `book` binary numbers the classes it shares the
/// same way). Bad input is refused before anything runs or is written, except a crash or
/// fault site that is well formed but never reached, which only a run can tell.
pub mod exit {
    /// Every case passed (skips allowed unless PostgreSQL was required).
    pub const OK: u8 = 0;
    /// A gate or test failed: the table and the repro commands say which.
    pub const GATE_FAILED: u8 = 1;
    /// Bad usage clap refuses: an unknown flag, a missing value.
    pub const USAGE: u8 = 2;
    /// The harness itself could not run (cargo or nextest missing, a report unreadable).
    pub const HARNESS: u8 = 3;
    /// A gate name that is not a gate.
    pub const UNKNOWN_GATE: u8 = 4;
    /// A seed that is not 1 to 16 hex digits.
    pub const BAD_SEED: u8 = 5;
    /// A mutant name that is not a mutant.
    pub const UNKNOWN_MUTANT: u8 = 6;
    /// A crash or fault site that is malformed, or that the case never reaches.
    pub const UNKNOWN_SITE: u8 = 7;
    /// A BOOKPROOF_* variable that does not parse.
    pub const BAD_ENVIRONMENT: u8 = 8;
}

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "bookproof: deterministic verification of a trading book's persistence layer.\n\
             `verify` runs gates, `repro` reruns one failing case, `test` runs what CI runs,\n\
             `bench` measures the book against its floors.",
    after_help = "Exit codes: 0 all passed, 1 a gate failed, 2 bad usage, 3 harness error, 4 unknown\n\
                  gate, 5 malformed seed, 6 unknown mutant, 7 unknown crash or fault site, 8 bad\n\
                  BOOKPROOF_* variable.\n\
                  Reports: target/bookproof/report.json and target/bookproof/junit.xml."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run gates on one or more backends and print the gate x backend table.
    Verify(verify::Args),
    /// Name every gate with one line on what it proves.
    List,
    /// Rerun one case verbosely, exactly as a failure printed it.
    Repro(repro::Args),
    /// Run everything CI runs: every test of the workspace, every gate on every backend.
    Test(test::Args),
    /// Run the criterion benches and print each book figure beside its floor, with the
    /// ratio, and the harness's rates against their targets (see BENCHMARKS.md).
    Bench(bench::Args),
    /// Work with reports: `report merge DIR...` merges a partitioned run's shards.
    Report(report::Args),
    /// Build a PostgreSQL image from this machine's own server (no registry needed), for
    /// the Docker provider: BOOKPROOF_PG_IMAGE=bookproof/postgres:local.
    PgImage(pg_image::Args),
}

/// The backends a run covers: one, or all of `Backend::ALL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backends(pub Vec<Backend>);

impl Backends {
    pub fn all() -> Backends {
        Backends(Backend::ALL.to_vec())
    }

    pub fn is_all(&self) -> bool {
        self.0 == Backend::ALL
    }
}

/// `--backend`: every backend's name, or `all`.
pub fn backend_parser() -> impl TypedValueParser<Value = Backends> {
    let names: Vec<&'static str> = Backend::ALL
        .iter()
        .map(|backend| backend.name())
        .chain(["all"])
        .collect();
    PossibleValuesParser::new(names).map(|name| {
        Backend::parse(&name).map_or_else(Backends::all, |backend| Backends(vec![backend]))
    })
}

/// `--postgres`: url, docker or local.
pub fn provider_parser() -> impl TypedValueParser<Value = harness::database::postgres::Provider> {
    use harness::database::postgres::Provider;
    let names: Vec<&'static str> = Provider::ALL
        .iter()
        .map(|provider| provider.name())
        .collect();
    PossibleValuesParser::new(names).map(|name| Provider::parse(&name).unwrap_or(Provider::Local))
}

/// `--crash-mode`: unwind, abort, sigkill or server.
pub fn crash_mode_parser() -> impl TypedValueParser<Value = harness::crash::CrashMode> {
    use harness::crash::CrashMode;
    let names: Vec<&'static str> = CrashMode::ALL.iter().map(|mode| mode.name()).collect();
    PossibleValuesParser::new(names)
        .map(|name| CrashMode::parse(&name).unwrap_or(CrashMode::Unwind))
}

/// The exit code for an argument clap refused: the class of the argument it names.
fn refused_argument(error: &clap::Error) -> u8 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return exit::USAGE;
    }
    let argument = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(argument)) => argument.as_str(),
        _ => "",
    };
    let flag = argument.split_whitespace().next().unwrap_or_default();
    match flag {
        "--seed" => exit::BAD_SEED,
        "--mutant" => exit::UNKNOWN_MUTANT,
        "--crash-at" | "--crash-in-recovery" | "--fault-at" => exit::UNKNOWN_SITE,
        _ => exit::USAGE,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                refused_argument(&error)
            } else {
                exit::OK
            };
            // Help and version go to stdout; refusals to stderr.
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    // A bad BOOKPROOF_* variable in the user's shell would fail every case the same way:
    // say so once, before anything runs.
    if let Err(error) = Settings::from_lookup(|name| std::env::var(name).ok()) {
        eprintln!("error: {error}");
        return ExitCode::from(exit::BAD_ENVIRONMENT);
    }
    let result = match cli.command {
        Command::Verify(args) => verify::run(args),
        Command::List => list::run(),
        Command::Repro(args) => repro::run(args),
        Command::Test(args) => test::run(args),
        Command::Bench(args) => bench::run(&args),
        Command::Report(args) => report::run(&args),
        Command::PgImage(args) => pg_image::run(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit::HARNESS)
        }
    }
}
