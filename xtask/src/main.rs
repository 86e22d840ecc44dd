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

use clap::{Parser, Subcommand, ValueEnum};

/// Exit codes, one per failure class.
pub mod exit {
    /// Every case passed (skips allowed unless PostgreSQL was required).
    pub const OK: u8 = 0;
    /// A gate or test failed: the table and the repro commands say which.
    pub const GATE_FAILED: u8 = 1;
    /// Bad usage: an unknown gate, a bad seed.
    pub const USAGE: u8 = 2;
    /// The harness itself could not run (cargo or nextest missing, a report unreadable).
    pub const HARNESS: u8 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "bookproof: deterministic verification of a trading book's persistence layer",
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

/// Which backends to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Sqlite,
    Postgres,
    All,
}

impl BackendChoice {
    pub fn names(self) -> &'static [&'static str] {
        match self {
            BackendChoice::Sqlite => &["sqlite"],
            BackendChoice::Postgres => &["postgres"],
            BackendChoice::All => &["sqlite", "postgres"],
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
