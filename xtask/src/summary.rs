//! The gate x backend table, the failures with their repro commands, and the JSON report.

use std::collections::BTreeMap;

use anyhow::Context as _;
use harness::report::{CaseRecord, Outcome};
use serde::Serialize;

use crate::nextest::{self, out_dir, Finished, Plan};

#[derive(Debug, Serialize)]
struct Row {
    gate: String,
    backend: String,
    result: &'static str,
    cases: usize,
    millis: u64,
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    passed: bool,
    databases: &'a [String],
    rows: &'a [Row],
    /// Summed over every case: how often each invariant had something to check, each crash
    /// point was crashed at, each venue fault took effect, each answer was given.
    coverage: &'a BTreeMap<String, u64>,
    /// `K/N` when this report is one shard's.
    partition: Option<String>,
    cases: &'a [CaseRecord],
}

/// Prints the table for every (gate, backend) the plan asked for plus any others that
/// reported, the failures, writes the report, and returns the exit code.
pub fn report(finished: &Finished, plan: &Plan) -> anyhow::Result<u8> {
    let rows = rows(finished, plan);
    print_table(&rows);
    for source in &finished.sources {
        println!("\n{source}");
    }
    let coverage = coverage(&finished.records);
    // A zero means a gap only when the run covers what a default run covers.
    let whole = plan.gates.len() == crate::gates::GATES.len()
        && plan.test.is_none()
        && plan.partition.is_none();
    print_coverage(&coverage, whole);
    let failed = print_failures(&finished.records);
    let required_skip = plan.require_postgres && rows.iter().any(|row| row.result == "skipped");
    let rows_pass = rows
        .iter()
        .all(|row| row.result == "pass" || (row.result == "skipped" && !plan.require_postgres));
    let passed = finished.success && rows_pass && !required_skip;
    if !finished.success && failed == 0 {
        println!("\nThe test run failed outside the gates' cases (see the test output above).");
    }
    if required_skip {
        println!("\nPostgreSQL was required (--require-postgres) but skipped.");
    }
    let path = out_dir().join("report.json");
    let report = Report {
        passed,
        databases: &finished.sources,
        rows: &rows,
        coverage: &coverage,
        partition: plan.partition.map(|partition| partition.to_string()),
        cases: &finished.records,
    };
    std::fs::write(&path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "\n{} in {:.1}s. Report: {}",
        if passed { "All gates passed" } else { "FAILED" },
        finished.elapsed.as_secs_f64(),
        path.display()
    );
    Ok(exit_code(passed, &finished.records))
}

/// OK, or a gate failed; unless a case failed only because a crash or fault site given by
/// hand is never reached: bad input, with its own code.
fn exit_code(passed: bool, records: &[CaseRecord]) -> u8 {
    if passed {
        return crate::exit::OK;
    }
    let unknown_site = records.iter().find(|record| {
        record.outcome == Outcome::Fail && record.checks == [harness::check::UNKNOWN_SITE]
    });
    match unknown_site {
        Some(record) => {
            let detail = record.detail.as_deref().unwrap_or_default();
            eprintln!("error: {}", detail.trim_start_matches("[unknown_site] "));
            crate::exit::UNKNOWN_SITE
        }
        None => crate::exit::GATE_FAILED,
    }
}

/// Each case's outcome, by (gate, backend, test).
pub type Outcomes = BTreeMap<(String, String, String), Outcome>;

pub fn outcomes(records: &[CaseRecord]) -> Outcomes {
    records
        .iter()
        .map(|record| {
            (
                (
                    record.gate.clone(),
                    record.backend.clone(),
                    record.test.clone(),
                ),
                record.outcome,
            )
        })
        .collect()
}

/// The first case whose outcome differs between `first` and `later` (or that only one
/// of them ran).
pub fn first_difference(first: &Outcomes, later: &Outcomes) -> Option<String> {
    let keys: std::collections::BTreeSet<_> = first.keys().chain(later.keys()).collect();
    keys.into_iter().find_map(|key| {
        let (before, after) = (first.get(key), later.get(key));
        (before != after).then(|| {
            format!(
                "{} on {}: {} {} in run 1, {} now",
                key.0,
                key.1,
                key.2,
                said(before),
                said(after)
            )
        })
    })
}

fn said(outcome: Option<&Outcome>) -> &'static str {
    match outcome {
        Some(Outcome::Pass) => "passed",
        Some(Outcome::Fail) => "failed",
        Some(Outcome::Skip) => "was skipped",
        None => "did not run",
    }
}

fn rows(finished: &Finished, plan: &Plan) -> Vec<Row> {
    let mut grouped: BTreeMap<(String, String), Vec<&CaseRecord>> = BTreeMap::new();
    // A shard may hold no case of a row: only the rows it reported.
    let expected = if plan.partition.is_none() {
        plan.gates.as_slice()
    } else {
        &[]
    };
    for gate in expected {
        // A gate without a database has one row, on the embedded backend.
        let backends = if gate.database {
            plan.backends.0.clone()
        } else {
            vec![harness::Backend::embedded()]
        };
        for backend in backends {
            grouped.insert(
                (gate.name.to_owned(), backend.name().to_owned()),
                Vec::new(),
            );
        }
        // Its loom models, a row of their own (when the whole gate runs).
        if gate.models && plan.test.is_none() {
            grouped.insert(
                (gate.name.to_owned(), nextest::MODELS.to_owned()),
                Vec::new(),
            );
        }
    }
    for record in &finished.records {
        grouped
            .entry((record.gate.clone(), record.backend.clone()))
            .or_default()
            .push(record);
    }
    grouped
        .iter()
        .map(|((gate, backend), records)| row(gate, backend, records))
        .collect()
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "{:<18} {:<9} {:<8} {:>6} {:>9}",
        "gate", "backend", "result", "cases", "time"
    );
    for row in rows {
        let reason = row
            .reason
            .as_deref()
            .map(|reason| format!("  {reason}"))
            .unwrap_or_default();
        println!(
            "{:<18} {:<9} {:<8} {:>6} {:>8.2}s{reason}",
            row.gate,
            row.backend,
            row.result,
            row.cases,
            row.millis as f64 / 1000.0
        );
    }
}

/// Every case's coverage, summed; every row a default run must fill is listed, at zero if
/// nothing covered it.
fn coverage(records: &[CaseRecord]) -> BTreeMap<String, u64> {
    let mut total: BTreeMap<String, u64> = harness::coverage::Coverage::expected_rows()
        .into_iter()
        .map(|row| (row, 0))
        .collect();
    for record in records {
        for (row, count) in &record.coverage {
            *total.entry(row.clone()).or_default() += count;
        }
    }
    total
}

/// The coverage table; a zero in an expected row is a gap in the scenarios.
fn print_coverage(coverage: &BTreeMap<String, u64>, whole: bool) {
    if coverage.values().all(|count| *count == 0) {
        return;
    }
    let expected = harness::coverage::Coverage::expected_rows();
    println!("\ncoverage (invariants: evaluations with something to check; crash points: crashes; faults: times they took effect; answers: times given)");
    if !whole {
        println!("  (only some gates ran: rows at zero are not gaps of the default run)");
    }
    for (row, count) in coverage {
        let gap = if whole && *count == 0 && expected.contains(row) {
            "  <- gap"
        } else {
            ""
        };
        println!("  {row:<58} {count:>9}{gap}");
    }
}

/// Each failure with its first line, seed and repro command. Returns how many.
fn print_failures(records: &[CaseRecord]) -> usize {
    let failed: Vec<&CaseRecord> = records
        .iter()
        .filter(|record| record.outcome == Outcome::Fail)
        .collect();
    for record in &failed {
        let first_line = record
            .detail
            .as_deref()
            .and_then(|detail| detail.lines().next())
            .unwrap_or("");
        println!(
            "\nFAILED {} on {}: {}\n  {first_line}\n  seed: {}\n  reproduce: {}",
            record.gate, record.backend, record.test, record.seed, record.repro
        );
    }
    failed.len()
}

fn row(gate: &str, backend: &str, records: &[&CaseRecord]) -> Row {
    let ran = records
        .iter()
        .filter(|record| record.outcome != Outcome::Skip)
        .count();
    let failed = records
        .iter()
        .filter(|record| record.outcome == Outcome::Fail)
        .count();
    let millis = records.iter().map(|record| record.millis).sum();
    let (result, reason) = if records.is_empty() {
        (
            "fail",
            Some("no case reported (did the tests build and run?)".to_owned()),
        )
    } else if failed > 0 {
        ("fail", Some(format!("{failed} case(s) failed")))
    } else if ran == 0 {
        ("skipped", records[0].detail.clone())
    } else {
        ("pass", None)
    };
    Row {
        gate: gate.to_owned(),
        backend: backend.to_owned(),
        result,
        cases: ran,
        millis,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(cases: &[(&str, Outcome)]) -> Outcomes {
        cases
            .iter()
            .map(|(test, outcome)| {
                (
                    ("race".to_owned(), "sqlite".to_owned(), (*test).to_owned()),
                    *outcome,
                )
            })
            .collect()
    }

    #[test]
    fn the_same_outcomes_are_no_difference() {
        let run = outcomes(&[("a", Outcome::Pass), ("b", Outcome::Skip)]);
        assert_eq!(first_difference(&run, &run.clone()), None);
    }

    #[test]
    fn a_case_that_flipped_is_named_with_both_outcomes() {
        let first = outcomes(&[("a", Outcome::Pass), ("b", Outcome::Pass)]);
        let later = outcomes(&[("a", Outcome::Pass), ("b", Outcome::Fail)]);
        assert_eq!(
            first_difference(&first, &later).as_deref(),
            Some("race on sqlite: b passed in run 1, failed now")
        );
    }

    #[test]
    fn a_case_only_one_run_has_is_a_difference() {
        let first = outcomes(&[("a", Outcome::Pass)]);
        let later = outcomes(&[("a", Outcome::Pass), ("b", Outcome::Pass)]);
        assert_eq!(
            first_difference(&first, &later).as_deref(),
            Some("race on sqlite: b did not run in run 1, passed now")
        );
    }
}
