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
    /// Where PostgreSQL must come from: url (BOOKPROOF_PG_URL), docker (a container from
    /// BOOKPROOF_PG_IMAGE), local (a throwaway cluster). Fails, not skips, without it.
    #[arg(long, value_parser = crate::provider_parser())]
    pub postgres: Option<harness::database::postgres::Provider>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let require_postgres =
        args.require_postgres || std::env::var("CI").is_ok_and(|value| value == "true");
    let plan = nextest::Plan {
        require_postgres: require_postgres || args.postgres.is_some(),
        postgres: args.postgres,
        ..nextest::Plan::new(true, gates::GATES.iter().collect(), Backends::all())
    };
    let finished = nextest::run(&plan)?;
    summary::report(&finished, &plan)
}
