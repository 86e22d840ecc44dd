//! `cargo xtask repro GATE --backend B --test NAME --seed HEX`: reruns one case with its
//! output shown, exactly as a failing run printed it.

use crate::{verify, BackendChoice};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gate the failure named.
    pub gate: String,
    /// The seed the failure printed.
    #[arg(long)]
    pub seed: harness::Seed,
    #[arg(long, value_enum, default_value = "sqlite")]
    pub backend: BackendChoice,
    /// The scenario size the failure ran with, if it was not the default.
    #[arg(long)]
    pub steps: Option<u64>,
    /// The crash site the failure named (crash gate).
    #[arg(long)]
    pub crash_at: Option<harness::book::CrashSite>,
    /// Run the case against this mutant (a deliberately broken book), to watch the gate
    /// catch it.
    #[arg(long)]
    pub mutant: Option<String>,
    /// The case the failure named; all cases of the gate when left out.
    #[arg(long)]
    pub test: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    if let Some(mutant) = &args.mutant {
        let Some(mutant) = harness::book::Mutant::parse(mutant) else {
            let known: Vec<&str> = harness::book::Mutant::ALL
                .iter()
                .map(|mutant| mutant.name())
                .collect();
            eprintln!(
                "error: unknown mutant `{mutant}`; known mutants: {}",
                known.join(", ")
            );
            return Ok(crate::exit::USAGE);
        };
        // Read by the harness in the test processes xtask starts.
        std::env::set_var(harness::case::MUTANT_ENV, mutant.name());
    }
    verify::run(verify::Args {
        gates: vec![args.gate],
        backend: args.backend,
        seed: Some(args.seed),
        seeds: None,
        steps: args.steps,
        crash_at: args.crash_at,
        crash_sites: None,
        test: args.test,
        require_postgres: args.backend != BackendChoice::Sqlite,
        no_capture: true,
    })
}
