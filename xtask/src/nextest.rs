//! Runs test binaries through cargo-nextest (or `cargo test` when nextest is missing) with
//! the environment the harness reads (`harness::settings`), and owns the PostgreSQL server
//! for the whole run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use harness::book::Mutant;
use harness::database::postgres::Provider;
use harness::database::RunDatabases;
use harness::protocol::CrashSite;
use harness::report::CaseRecord;
use harness::settings;
use harness::{Seed, SubjectKind};

use crate::gates::{self, Gate};
use crate::Backends;

pub struct Plan {
    /// Every test of the workspace (CI), or only the chosen gates.
    pub workspace: bool,
    pub gates: Vec<&'static Gate>,
    pub backends: Backends,
    pub test: Option<String>,
    pub seed: Option<Seed>,
    pub seeds: Option<u64>,
    pub steps: Option<u64>,
    pub crash_at: Option<CrashSite>,
    pub crash_in_recovery: Option<CrashSite>,
    pub fault_at: Option<harness::faults::FaultCase>,
    pub crash_sites: Option<u64>,
    pub mutant: Option<Mutant>,
    pub subject: SubjectKind,
    pub require_postgres: bool,
    pub no_capture: bool,
    /// Only this shard of the cases (`--partition K/N`).
    pub partition: Option<Partition>,
    /// Where PostgreSQL must come from (`--postgres`); `None`: the first that answers.
    pub postgres: Option<Provider>,
    /// Only the crash gate's cases of this mode (`--crash-mode`).
    pub crash_mode: Option<harness::crash::CrashMode>,
}

impl Plan {
    /// `gates` on `backends` with every setting at its default.
    pub fn new(workspace: bool, gates: Vec<&'static Gate>, backends: Backends) -> Plan {
        Plan {
            workspace,
            gates,
            backends,
            test: None,
            seed: None,
            seeds: None,
            steps: None,
            crash_at: None,
            crash_in_recovery: None,
            fault_at: None,
            crash_sites: None,
            mutant: None,
            subject: SubjectKind::default(),
            require_postgres: false,
            no_capture: false,
            partition: None,
            postgres: None,
            crash_mode: None,
        }
    }
}

/// Shard `index` of `count` (1-based): nextest's `hash:K/N`, so a case's shard depends only
/// on its name, and the shards of one N together run every case exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for Partition {
    type Err = String;

    fn from_str(text: &str) -> Result<Partition, String> {
        let bad = || format!("bad partition {text:?}: expected K/N with 1 <= K <= N, as in 1/4");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: u64 = index.trim().parse().map_err(|_| bad())?;
        let count: u64 = count.trim().parse().map_err(|_| bad())?;
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Partition { index, count })
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}/{}", self.index, self.count)
    }
}

/// nextest's arguments for `partition`: the shard, and an empty shard is not a failure.
fn partition_arguments(partition: Option<Partition>) -> Vec<String> {
    partition.map_or_else(Vec::new, |partition| {
        vec![
            "--partition".to_owned(),
            format!("hash:{partition}"),
            "--no-tests".to_owned(),
            "pass".to_owned(),
        ]
    })
}

pub struct Finished {
    pub success: bool,
    pub records: Vec<CaseRecord>,
    pub elapsed: Duration,
    /// Where each backend's databases came from.
    pub sources: Vec<String>,
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
    harness::Settings::get()
        .out_dir
        .clone()
        .unwrap_or_else(|| target_dir().join("bookproof"))
}

pub fn run(plan: &Plan) -> anyhow::Result<Finished> {
    let results = out_dir().join("results");
    if results.exists() {
        std::fs::remove_dir_all(&results)
            .with_context(|| format!("clearing {}", results.display()))?;
    }
    std::fs::create_dir_all(&results).with_context(|| format!("creating {}", results.display()))?;
    build_book_binary()?;
    let nextest = nextest_available();
    anyhow::ensure!(
        nextest || plan.partition.is_none(),
        "--partition needs cargo-nextest (cargo install cargo-nextest --locked)"
    );
    let mut command = if nextest {
        nextest_command(plan)
    } else {
        eprintln!("notice: cargo-nextest is not installed; falling back to `cargo test` (no JUnit report). Install it with `cargo install cargo-nextest --locked`.");
        cargo_test_command(plan)
    };
    command
        .current_dir(workspace_root())
        .env(settings::RESULTS_DIR, &results);
    set_environment(&mut command, plan);
    // What the run's backends need (a PostgreSQL server), held until the tests are done:
    // dropping it stops a cluster we started, also when the tests failed.
    let databases = RunDatabases::prepare(&plan.backends.0, plan.postgres);
    for (variable, value) in &databases.environment {
        command.env(variable, value.expose());
    }
    let started = Instant::now();
    let mut success = command.status().context("running the tests")?.success();
    if plan.test.is_none() && plan.gates.iter().any(|gate| gate.models) {
        success &= model_command(&results, plan.partition)
            .status()
            .context("running the loom models")?
            .success();
    }
    let elapsed = started.elapsed();
    let sources = databases
        .sources
        .iter()
        .map(|(backend, source)| format!("{backend}: {source}"))
        .collect();
    drop(databases);
    keep_junit(profile(plan))?;
    Ok(Finished {
        success,
        records: read_records(&results)?,
        elapsed,
        sources,
    })
}

/// Copies nextest's JUnit file beside `report.json`, so each run's reports live together
/// (nextest writes it under the target dir, where the next run overwrites it).
fn keep_junit(profile: &str) -> anyhow::Result<()> {
    let junit = target_dir().join("nextest").join(profile).join("junit.xml");
    if junit.is_file() {
        let copy = out_dir().join("junit.xml");
        std::fs::copy(&junit, &copy)
            .with_context(|| format!("copying {} to {}", junit.display(), copy.display()))?;
    }
    Ok(())
}

/// The backend column of the loom models' row.
pub const MODELS: &str = "loom";

/// Builds (under `--cfg loom`, in a target dir of its own, optimised: loom explores
/// thousands of interleavings) and runs the loom models of the `latch` crate. Their case
/// records go to `results` like the gates'.
fn model_command(results: &Path, partition: Option<Partition>) -> Command {
    let mut command = Command::new("cargo");
    if nextest_available() {
        command.args(["nextest", "run", "--profile", "loom"]);
        command.args(partition_arguments(partition));
    } else {
        command.arg("test");
    }
    command
        .args(["--release", "--package", "latch", "--test", "loom"])
        .current_dir(workspace_root())
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", target_dir().join("loom"))
        .env(settings::RESULTS_DIR, results);
    command
}

/// The gates run the book as a real process too: build it first.
fn build_book_binary() -> anyhow::Result<()> {
    let built = Command::new("cargo")
        .args(["build", "--quiet", "--package", "book", "--bin", "book"])
        .current_dir(workspace_root())
        .status()
        .context("building the book binary")?;
    anyhow::ensure!(
        built.success(),
        "building the book binary failed (see above)"
    );
    Ok(())
}

/// The plan's flags as the `BOOKPROOF_*` variables `harness::settings` reads.
fn set_environment(command: &mut Command, plan: &Plan) {
    let values = [
        (settings::SEED, plan.seed.map(|seed| seed.to_string())),
        (settings::SEEDS, plan.seeds.map(|seeds| seeds.to_string())),
        (settings::STEPS, plan.steps.map(|steps| steps.to_string())),
        (
            settings::CRASH_AT,
            plan.crash_at.as_ref().map(ToString::to_string),
        ),
        (
            settings::CRASH_IN_RECOVERY,
            plan.crash_in_recovery.as_ref().map(ToString::to_string),
        ),
        (
            settings::FAULT_AT,
            plan.fault_at.as_ref().map(ToString::to_string),
        ),
        (
            settings::CRASH_SITES,
            plan.crash_sites.map(|sites| sites.to_string()),
        ),
        (
            settings::MUTANT,
            plan.mutant.map(|mutant| mutant.name().to_owned()),
        ),
        (settings::SUBJECT, Some(plan.subject.name().to_owned())),
        (
            settings::CRASH_MODE,
            plan.crash_mode.map(|mode| mode.name().to_owned()),
        ),
        (
            settings::REQUIRE_POSTGRES,
            plan.require_postgres.then(|| "1".to_owned()),
        ),
    ];
    for (variable, value) in values {
        if let Some(value) = value {
            command.env(variable, value);
        }
    }
}

/// The nextest profile: `sweep` (slow cases reported, never killed) when the plan sweeps
/// seeds, else `ci`.
fn profile(plan: &Plan) -> &'static str {
    if plan.seeds.is_some() {
        "sweep"
    } else {
        "ci"
    }
}

fn nextest_command(plan: &Plan) -> Command {
    let mut command = Command::new("cargo");
    command.args([
        "nextest",
        "run",
        "--profile",
        profile(plan),
        "--no-fail-fast",
    ]);
    if plan.workspace {
        command.arg("--workspace");
    } else {
        command.args(["--package", "gates"]);
        let backends = plan
            .backends
            .0
            .iter()
            .map(|backend| format!("test(/^{backend}::/)"))
            .collect::<Vec<_>>()
            .join(" | ");
        // A gate without a database runs once whatever the backends; the others on the
        // chosen ones.
        let gates = plan
            .gates
            .iter()
            .map(|gate| match (gate.database, plan.backends.is_all()) {
                (true, false) => format!("(binary(={}) & ({backends}))", gates::target(gate.name)),
                _ => format!("binary(={})", gates::target(gate.name)),
            })
            .collect::<Vec<_>>()
            .join(" | ");
        let mut filters = vec![format!("({gates})")];
        if let Some(test) = &plan.test {
            // A sweep's name picks all of its parts (`harness::sweep`).
            filters.push(format!("test(/::{test}(_part_[0-9]+_of_[0-9]+)?$/)"));
        }
        command.args(["-E", &filters.join(" & ")]);
    }
    command.args(partition_arguments(plan.partition));
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
        return command;
    }
    command.args(["--package", "gates"]);
    for gate in &plan.gates {
        command.args(["--test", &gates::target(gate.name)]);
    }
    command.arg("--");
    // libtest filters are substrings: `sqlite::` picks a backend's tests (its
    // differentials included), `::NAME` one case.
    let prefixes: Vec<String> = if plan.backends.is_all() {
        Vec::new()
    } else {
        plan.backends
            .0
            .iter()
            .map(|backend| format!("{backend}::"))
            .collect()
    };
    match (&plan.test, prefixes.is_empty()) {
        (Some(test), false) => {
            for prefix in &prefixes {
                command.arg(format!("{prefix}{test}"));
                command.arg(format!("{prefix}differential::{test}"));
            }
            command.arg("--exact");
        }
        (Some(test), true) => {
            command.arg(format!("::{test}"));
        }
        (None, _) => {
            command.args(&prefixes);
        }
    }
    if plan.no_capture {
        command.arg("--nocapture");
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
