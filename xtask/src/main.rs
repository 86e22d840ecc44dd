//! `cargo xtask`: the one entry point for people and CI. One `match` over the commands;
//! each command lives in its own module with a `run`.

mod gates;
mod list;
mod nextest;
mod repro;
mod summary;
mod test;
mod verify;

use std::process::ExitCode;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use harness::{Backend, Settings};

/// Exit codes, one per failure class.
pub mod exit {
    /// Every case passed (skips allowed unless PostgreSQL was required).
    pub const OK: u8 = 0;
    /// A gate or test failed: the table and the repro commands say which.
    pub const GATE_FAILED: u8 = 1;
    /// Bad usage: an unknown gate, a bad seed, a bad BOOKPROOF_* variable.
    pub const USAGE: u8 = 2;
    /// The harness itself could not run (cargo or nextest missing, a report unreadable).
    pub const HARNESS: u8 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "bookproof: deterministic verification of a trading book's persistence layer.\n\
             `verify` runs gates, `repro` reruns one failing case, `test` runs what CI runs.",
    after_help = "Exit codes: 0 all passed, 1 a gate failed, 2 bad usage, 3 harness error.\n\
                  Reports: target/bookproof/report.json and target/nextest/ci/junit.xml."
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A bad BOOKPROOF_* variable in the user's shell would fail every case the same way:
    // say so once, before anything runs.
    if let Err(error) = Settings::from_lookup(|name| std::env::var(name).ok()) {
        eprintln!("error: {error}");
        return ExitCode::from(exit::USAGE);
    }
    let result = match cli.command {
        Command::Verify(args) => verify::run(args),
        Command::List => list::run(),
        Command::Repro(args) => repro::run(args),
        Command::Test(args) => test::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(exit::HARNESS)
        }
    }
}
