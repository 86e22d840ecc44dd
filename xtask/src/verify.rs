//! `cargo xtask verify [GATE...]`

use harness::protocol::CrashSite;
use harness::{Seed, SubjectKind};

use crate::{gates, nextest, summary, Backends};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Gates to run (default: every gate). `cargo xtask list` names them.
    pub gates: Vec<String>,
    /// Backends to run on. SQLite is embedded and always available; PostgreSQL comes from
    /// BOOKPROOF_PG_URL, else a throwaway local cluster (initdb/pg_ctl on PATH), else it is
    /// skipped with the reason.
    #[arg(long, default_value = "sqlite", value_parser = crate::backend_parser())]
    pub backend: Backends,
    /// Run every case with this seed (hex, as a failure prints it).
    #[arg(long)]
    pub seed: Option<Seed>,
    /// Seeds for sweeps (the determinism gate's `seed_sweep`), with a progress bar.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: Option<u64>,
    /// The most steps a generated scenario has (default 40; 12 for the crash gate, whose
    /// every crash site is a full rerun).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub steps: Option<u64>,
    /// The crash gate crashes only here (`POINT#HIT`, as a failure prints it).
    #[arg(long)]
    pub crash_at: Option<CrashSite>,
    /// With --crash-at: the recovery after that crash crashes again, here.
    #[arg(long, requires = "crash_at")]
    pub crash_in_recovery: Option<CrashSite>,
    /// The failure-cascade gate injects only this store fault (`FAULT@SITE`, as a failure
    /// prints it).
    #[arg(long)]
    pub fault_at: Option<harness::faults::FaultCase>,
    /// The crash gate crashes at most this many sites per scenario, evenly spread.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub crash_sites: Option<u64>,
    /// How every case runs the book: in this process, or as `book` processes over the
    /// line protocol (BOOKPROOF_BOOK_BIN names another program that speaks it).
    #[arg(long, default_value = "in-process", value_parser = subject_parser())]
    pub subject: SubjectKind,
    /// Only the case with this name (as a failure prints it).
    #[arg(long)]
    pub test: Option<String>,
    /// Turn "PostgreSQL skipped" into a failure (CI sets this).
    #[arg(long)]
    pub require_postgres: bool,
    /// Show the cases' output as they run.
    #[arg(long)]
    pub no_capture: bool,
    /// Run the selected gates this many times in a row; stop at the first run that fails
    /// or whose cases' outcomes differ from the first run's (a flake hunter).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub repeat: Option<u64>,
    /// Run only shard K of N (`1/4`): a stable share of the cases, by name (nextest's
    /// hash partitioning), so that N machines together run each case once. Merge the
    /// shards' reports with `cargo xtask report merge`.
    #[arg(long)]
    pub partition: Option<nextest::Partition>,
    /// Where PostgreSQL must come from: url (BOOKPROOF_PG_URL), docker (a container from
    /// BOOKPROOF_PG_IMAGE, default the official image; `cargo xtask pg-image` builds one
    /// here), local (a throwaway cluster). Implies --require-postgres. Default: the first
    /// that answers, in that order.
    #[arg(long, value_parser = crate::provider_parser())]
    pub postgres: Option<harness::database::postgres::Provider>,
    /// The crash gate runs only its cases of this mode: unwind (in process), abort and
    /// sigkill (a `book` process), server (the PostgreSQL server is killed under the book
    /// and restarted, fsync on). The others are reported as not applicable.
    #[arg(long, value_parser = crate::crash_mode_parser())]
    pub crash_mode: Option<harness::crash::CrashMode>,
}

pub fn subject_parser() -> impl clap::builder::TypedValueParser<Value = SubjectKind> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(["in-process", "process"])
        .map(|name| SubjectKind::parse(&name).unwrap_or_default())
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let chosen = match gates::resolve(&args.gates) {
        Ok(chosen) => chosen,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(crate::exit::UNKNOWN_GATE);
        }
    };
    // `--require-postgres` alone means every backend; with `--backend postgres`, that one.
    // `--require-postgres` (or `--postgres`) alone means every backend; with `--backend
    // postgres`, that one.
    let require_postgres = args.require_postgres || args.postgres.is_some();
    let backends = if require_postgres && !args.backend.0.contains(&harness::Backend::Postgres) {
        Backends::all()
    } else {
        args.backend
    };
    let plan = nextest::Plan {
        test: args.test,
        seed: args.seed,
        seeds: args.seeds,
        steps: args.steps,
        crash_at: args.crash_at,
        crash_in_recovery: args.crash_in_recovery,
        fault_at: args.fault_at,
        crash_sites: args.crash_sites,
        subject: args.subject,
        require_postgres,
        // A sweep shows its progress bar.
        no_capture: args.no_capture || args.seeds.is_some(),
        partition: args.partition,
        postgres: args.postgres,
        crash_mode: args.crash_mode,
        ..nextest::Plan::new(false, chosen, backends)
    };
    match args.repeat {
        Some(times) if times > 1 => repeated(&plan, times),
        _ => {
            let finished = nextest::run(&plan)?;
            summary::report(&finished, &plan)
        }
    }
}

/// `--repeat N`: the plan N times; the report of the first run that fails or differs
/// from the first, else of the last.
fn repeated(plan: &nextest::Plan, times: u64) -> anyhow::Result<u8> {
    let mut baseline = None;
    for number in 1..=times {
        let finished = nextest::run(plan)?;
        let outcomes = summary::outcomes(&finished.records);
        let difference = baseline
            .as_ref()
            .and_then(|first| summary::first_difference(first, &outcomes));
        if !finished.success || difference.is_some() || number == times {
            let code = summary::report(&finished, plan)?;
            if let Some(difference) = difference {
                println!("\nrun {number} of {times} differs from run 1: {difference}");
                return Ok(crate::exit::GATE_FAILED);
            }
            if finished.success {
                println!("\n{times} runs in a row: every case had the same outcome each time");
            } else {
                println!("\nrun {number} of {times} failed");
            }
            return Ok(code);
        }
        println!(
            "\nrun {number} of {times}: {} cases, {}",
            outcomes.len(),
            if number == 1 {
                "the baseline"
            } else {
                "the same outcomes as run 1"
            }
        );
        baseline.get_or_insert(outcomes);
    }
    Ok(crate::exit::OK)
}
