//! `cargo xtask test`: everything CI runs. Every test of the workspace (unit tests,
//! repository checks, every gate on every backend) under nextest's `ci` profile.
//! PostgreSQL is required when `--require-postgres` is given or `CI=true`.

use crate::{gates, nextest, summary, Backends};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Fail instead of skipping the PostgreSQL rows when no server can be had (implied by
    /// CI=true).
    #[arg(long)]
    pub require_postgres: bool,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let require_postgres =
        args.require_postgres || std::env::var("CI").is_ok_and(|value| value == "true");
    let plan = nextest::Plan {
        workspace: true,
        gates: gates::GATES.iter().collect(),
        backends: Backends::all(),
        test: None,
        seed: None,
        seeds: None,
        steps: None,
        crash_at: None,
        crash_in_recovery: None,
        fault_at: None,
        crash_sites: None,
        mutant: None,
        subject: harness::SubjectKind::default(),
        require_postgres,
        no_capture: false,
        partition: None,
    };
    let finished = nextest::run(&plan)?;
    summary::report(&finished, &plan)
}
