//! `cargo xtask report merge DIR...`: the reports of the shards of one partitioned run
//! (`verify --partition K/N`, each with its own `BOOKPROOF_OUT_DIR`) merged into one: the
//! table, `report.json` and a JUnit file, as one unpartitioned run would have written
//! them apart from timings. A case reported by two shards is an error (the shards
//! overlap), as is a directory without a report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use harness::report::{CaseRecord, Outcome};
use serde::Deserialize;

use crate::nextest::{Finished, Plan};
use crate::{gates, summary, Backends};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ReportCommand {
    /// Merge the reports of a partitioned run's shards into one table, report.json and
    /// junit.xml (written to BOOKPROOF_OUT_DIR, else target/bookproof).
    Merge {
        /// The shards' report directories (each holding a report.json).
        #[arg(required = true)]
        directories: Vec<PathBuf>,
    },
}

/// What merging reads of a shard's `report.json`.
#[derive(Debug, Deserialize)]
struct ShardReport {
    passed: bool,
    databases: Vec<String>,
    cases: Vec<CaseRecord>,
}

pub fn run(args: &Args) -> anyhow::Result<u8> {
    let ReportCommand::Merge { directories } = &args.command;
    let (finished, plan) = merged(directories)?;
    let code = summary::report(&finished, &plan)?;
    let junit = crate::nextest::out_dir().join("junit.xml");
    std::fs::write(&junit, junit_xml(&finished.records))
        .with_context(|| format!("writing {}", junit.display()))?;
    println!("JUnit: {}", junit.display());
    Ok(code)
}

/// The shards' cases as one run: every case once, sorted by (gate, backend, test); the
/// plan covers every gate and backend a shard reported, so a row no shard reported at
/// all fails the table.
fn merged(directories: &[PathBuf]) -> anyhow::Result<(Finished, Plan)> {
    let mut cases: BTreeMap<(String, String, String), (CaseRecord, &Path)> = BTreeMap::new();
    let (mut success, mut sources) = (true, Vec::new());
    for directory in directories {
        let path = directory.join("report.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (is it a shard's report directory?)",
                path.display()
            )
        })?;
        let shard: ShardReport = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a bookproof report", path.display()))?;
        success &= shard.passed;
        for source in shard.databases {
            if !sources.contains(&source) {
                sources.push(source);
            }
        }
        for record in shard.cases {
            let key = (
                record.gate.clone(),
                record.backend.clone(),
                record.test.clone(),
            );
            if let Some((_, first)) = cases.get(&key) {
                anyhow::bail!(
                    "the shards overlap: {} on {}: {} is in {} and in {}",
                    key.0,
                    key.1,
                    key.2,
                    first.display(),
                    directory.display()
                );
            }
            cases.insert(key, (record, directory));
        }
    }
    let records: Vec<CaseRecord> = cases.into_values().map(|(record, _)| record).collect();
    let plan = plan_for(&records);
    let elapsed = Duration::from_millis(records.iter().map(|record| record.millis).sum());
    Ok((
        Finished {
            success,
            records,
            elapsed,
            sources,
        },
        plan,
    ))
}

fn plan_for(records: &[CaseRecord]) -> Plan {
    let gates = gates::GATES
        .iter()
        .filter(|gate| records.iter().any(|record| record.gate == gate.name))
        .collect();
    let backends = harness::Backend::ALL
        .iter()
        .copied()
        .filter(|backend| {
            records
                .iter()
                .any(|record| record.backend == backend.name())
        })
        .collect();
    Plan::new(false, gates, Backends(backends))
}

/// One `<testsuite>` per (gate, backend), one `<testcase>` per case.
pub fn junit_xml(records: &[CaseRecord]) -> String {
    let mut suites: BTreeMap<(&str, &str), Vec<&CaseRecord>> = BTreeMap::new();
    for record in records {
        suites
            .entry((record.gate.as_str(), record.backend.as_str()))
            .or_default()
            .push(record);
    }
    let count = |outcome| {
        records
            .iter()
            .filter(|record| record.outcome == outcome)
            .count()
    };
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"bookproof\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
        records.len(),
        count(Outcome::Fail),
        count(Outcome::Skip)
    );
    for ((gate, backend), cases) in suites {
        let failures = cases
            .iter()
            .filter(|case| case.outcome == Outcome::Fail)
            .count();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
            escape(&format!("{gate} on {backend}")),
            cases.len()
        ));
        for case in cases {
            xml.push_str(&testcase(gate, backend, case));
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn testcase(gate: &str, backend: &str, case: &CaseRecord) -> String {
    let open = format!(
        "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
        escape(&format!("gates::{}::{backend}", gates::target(gate))),
        escape(&case.test),
        case.millis as f64 / 1000.0
    );
    let detail = escape(case.detail.as_deref().unwrap_or_default());
    match case.outcome {
        Outcome::Pass => format!("{open}/>\n"),
        Outcome::Skip => format!("{open}>\n      <skipped message=\"{detail}\"/>\n    </testcase>\n"),
        Outcome::Fail => format!(
            "{open}>\n      <failure message=\"{}\">seed: {}\nreproduce: {}\n{detail}</failure>\n    </testcase>\n",
            escape(&case.checks.join(", ")),
            escape(&case.seed),
            escape(&case.repro)
        ),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
