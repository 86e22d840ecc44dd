//! Runs test binaries through cargo-nextest (or `cargo test` when nextest is missing) with
//! the environment the harness reads, and owns the PostgreSQL server for the whole run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use harness::report::{CaseRecord, RESULTS_DIR_ENV};

use crate::gates::{self, Gate};

pub struct Plan {
    /// Every test of the workspace (CI), or only the chosen gates.
    pub workspace: bool,
    pub gates: Vec<&'static Gate>,
    pub backends: &'static [&'static str],
    pub test: Option<String>,
    pub seed: Option<harness::Seed>,
    pub seeds: Option<u64>,
    pub steps: Option<u64>,
    pub crash_at: Option<harness::book::CrashSite>,
    pub crash_sites: Option<u64>,
    pub require_postgres: bool,
    pub no_capture: bool,
}

pub struct Finished {
    pub success: bool,
    pub records: Vec<CaseRecord>,
    pub elapsed: Duration,
    pub postgres_source: Option<String>,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from)
}

fn nextest_available() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Where reports go: `$BOOKPROOF_OUT_DIR`, else `target/bookproof`.
pub fn out_dir() -> PathBuf {
    std::env::var_os("BOOKPROOF_OUT_DIR")
        .map_or_else(|| target_dir().join("bookproof"), PathBuf::from)
}

pub fn run(plan: &Plan) -> anyhow::Result<Finished> {
    let results = out_dir().join("results");
    if results.exists() {
        std::fs::remove_dir_all(&results)
            .with_context(|| format!("clearing {}", results.display()))?;
    }
    std::fs::create_dir_all(&results).with_context(|| format!("creating {}", results.display()))?;

    // The crash gate runs the book as a real process: build it first.
    let built = Command::new("cargo")
        .args(["build", "--quiet", "--package", "book", "--bin", "book"])
        .current_dir(workspace_root())
        .status()
        .context("building the book binary")?;
    anyhow::ensure!(
        built.success(),
        "building the book binary failed (see above)"
    );

    let mut command = if nextest_available() {
        nextest_command(plan)
    } else {
        eprintln!("notice: cargo-nextest is not installed; falling back to `cargo test` (no JUnit report). Install it with `cargo install cargo-nextest --locked`.");
        cargo_test_command(plan)
    };
    command
        .current_dir(workspace_root())
        .env(RESULTS_DIR_ENV, &results);
    if let Some(seed) = plan.seed {
        command.env(harness::case::SEED_ENV, seed.to_string());
    }
    if let Some(seeds) = plan.seeds {
        command.env("BOOKPROOF_SEEDS", seeds.to_string());
    }
    if let Some(steps) = plan.steps {
        command.env(harness::scenario::STEPS_ENV, steps.to_string());
    }
    if let Some(site) = &plan.crash_at {
        command.env(harness::crash::CRASH_AT_ENV, site.to_string());
    }
    if let Some(sites) = plan.crash_sites {
        command.env(harness::crash::CRASH_SITES_ENV, sites.to_string());
    }
    if plan.require_postgres {
        command.env(harness::case::REQUIRE_POSTGRES_ENV, "1");
    }
    // One server for the whole run, held until the tests are done (dropping it stops a
    // cluster we started, also when the tests failed).
    let mut server: Option<Arc<harness::pg::Server>> = None;
    let mut postgres_source = None;
    if plan.backends.contains(&"postgres") {
        match harness::pg::server() {
            Ok(found) => {
                command.env(harness::pg::URL_ENV, found.admin_url());
                postgres_source = Some(found.source.clone());
                server = Some(found);
            }
            Err(unavailable) => {
                command.env(harness::pg::UNAVAILABLE_ENV, &unavailable.reason);
                postgres_source = Some(format!("unavailable: {}", unavailable.reason));
            }
        }
    }
    let started = Instant::now();
    let status = command.status().context("running the tests")?;
    let elapsed = started.elapsed();
    drop(server);
    Ok(Finished {
        success: status.success(),
        records: read_records(&results)?,
        elapsed,
        postgres_source,
    })
}

fn nextest_command(plan: &Plan) -> Command {
    let mut command = Command::new("cargo");
    command.args(["nextest", "run", "--profile", "ci", "--no-fail-fast"]);
    if plan.workspace {
        command.arg("--workspace");
    } else {
        command.args(["--package", "gates"]);
        let mut filters = vec![format!(
            "({})",
            plan.gates
                .iter()
                .map(|gate| format!("binary(={})", gates::target(gate.name)))
                .collect::<Vec<_>>()
                .join(" | ")
        )];
        // `^postgres` also takes the `postgres_vs_sqlite::` differentials.
        match plan.backends {
            ["sqlite"] => filters.push("test(/^sqlite::/)".to_owned()),
            ["postgres"] => filters.push("test(/^postgres/)".to_owned()),
            _ => {}
        }
        if let Some(test) = &plan.test {
            filters.push(format!("test(/::{test}$/)"));
        }
        command.args(["-E", &filters.join(" & ")]);
    }
    if plan.no_capture {
        command.arg("--no-capture");
    }
    command
}

fn cargo_test_command(plan: &Plan) -> Command {
    let mut command = Command::new("cargo");
    command.arg("test");
    if plan.workspace {
        command.arg("--workspace");
    } else {
        command.args(["--package", "gates"]);
        for gate in &plan.gates {
            command.args(["--test", &gates::target(gate.name)]);
        }
        command.arg("--");
        // libtest filters are substrings, or exact paths with --exact.
        let prefixes: &[&str] = match plan.backends {
            ["sqlite"] => &["sqlite::"],
            ["postgres"] => &["postgres::", "postgres_vs_sqlite::"],
            _ => &[],
        };
        match &plan.test {
            Some(test) if !prefixes.is_empty() => {
                command.args(prefixes.iter().map(|prefix| format!("{prefix}{test}")));
                command.arg("--exact");
            }
            Some(test) => {
                command.arg(format!("::{test}"));
            }
            None => {
                command.args(prefixes.iter().copied());
            }
        }
        if plan.no_capture {
            command.arg("--nocapture");
        }
    }
    command
}

fn read_records(directory: &Path) -> anyhow::Result<Vec<CaseRecord>> {
    let mut records = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(directory)
        .with_context(|| format!("reading {}", directory.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let record: CaseRecord = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a case record; delete it and rerun",
                path.display()
            )
        })?;
        records.push(record);
    }
    Ok(records)
}
