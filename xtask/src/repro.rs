//! `cargo xtask repro GATE --backend B --test NAME --seed HEX`: reruns one case with its
//! output shown, exactly as a failing run printed it.

use harness::book::Mutant;
use harness::protocol::CrashSite;
use harness::{Seed, SubjectKind};

use crate::{nextest, summary, verify, Backends};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gate the failure named.
    pub gate: String,
    /// The seed the failure printed.
    #[arg(long)]
    pub seed: Seed,
    #[arg(long, default_value = "sqlite", value_parser = crate::backend_parser())]
    pub backend: Backends,
    /// The scenario size the failure ran with, if it was not the default.
    #[arg(long)]
    pub steps: Option<u64>,
    /// The sweep size the failure ran with, if it was not the default (a sweep's parts
    /// take their seeds from it).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub seeds: Option<u64>,
    /// The crash site the failure named (crash gate).
    #[arg(long)]
    pub crash_at: Option<CrashSite>,
    /// The second crash site the failure named, inside the recovery (crash gate).
    #[arg(long, requires = "crash_at")]
    pub crash_in_recovery: Option<CrashSite>,
    /// The failure-cascade gate injects only this store fault (`FAULT@SITE`, as a failure
    /// prints it).
    #[arg(long)]
    pub fault_at: Option<harness::faults::FaultCase>,
    /// Run the case against this mutant (a deliberately broken book), to watch the gate
    /// catch it.
    #[arg(long, value_parser = mutant_parser())]
    pub mutant: Option<Mutant>,
    /// How the case runs the book, if the failure named one.
    #[arg(long, default_value = "in-process", value_parser = verify::subject_parser())]
    pub subject: SubjectKind,
    /// The case the failure named; all cases of the gate when left out.
    #[arg(long)]
    pub test: Option<String>,
}

fn mutant_parser() -> impl clap::builder::TypedValueParser<Value = Mutant> {
    use clap::builder::TypedValueParser as _;
    let names: Vec<&'static str> = Mutant::ALL.iter().map(|mutant| mutant.name()).collect();
    clap::builder::PossibleValuesParser::new(names)
        .map(|name| Mutant::parse(&name).unwrap_or(Mutant::ALL[0]))
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    let chosen = match crate::gates::resolve(std::slice::from_ref(&args.gate)) {
        Ok(chosen) => chosen,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(crate::exit::UNKNOWN_GATE);
        }
    };
    let require_postgres = args
        .backend
        .0
        .iter()
        .any(|backend| *backend != harness::Backend::embedded());
    let plan = nextest::Plan {
        test: args.test,
        seed: Some(args.seed),
        steps: args.steps,
        seeds: args.seeds,
        crash_at: args.crash_at,
        crash_in_recovery: args.crash_in_recovery,
        fault_at: args.fault_at,
        mutant: args.mutant,
        subject: args.subject,
        require_postgres,
        no_capture: true,
        ..nextest::Plan::new(false, chosen, args.backend)
    };
    let finished = nextest::run(&plan)?;
    summary::report(&finished, &plan)
}
