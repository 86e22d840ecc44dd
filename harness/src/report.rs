//! Per-case results. Every case a gate runs writes one JSON file into
//! `$BOOKPROOF_RESULTS_DIR` (`Settings::results_dir`) (set by `cargo xtask verify`); xtask reads them to print the
//! gate x backend table and write the run's report. Without the variable nothing is
//! written and the test outcome alone tells.
//!
//! Format (one object per file): `{"gate", "backend", "test", "kind": "check"|"mutant",
//! "outcome": "pass"|"fail"|"skip", "detail", "checks", "seed", "millis", "repro",
//! "coverage"}`.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::coverage::Coverage;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Check,
    Mutant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRecord {
    pub gate: String,
    pub backend: String,
    pub test: String,
    pub kind: Kind,
    pub outcome: Outcome,
    /// Why it failed or was skipped; what the mutant was caught by.
    pub detail: Option<String>,
    /// The checks that failed (see `harness::check`).
    #[serde(default)]
    pub checks: Vec<String>,
    pub seed: String,
    pub millis: u64,
    /// The one command that reruns this case.
    pub repro: String,
    /// What the case's runs covered (see `harness::coverage`).
    #[serde(default)]
    pub coverage: BTreeMap<String, u64>,
}

thread_local! {
    /// The coverage of the case running on this thread (a case runs on one thread: its
    /// own process under nextest, its own thread under `cargo test`).
    static COVERAGE: RefCell<Coverage> = RefCell::new(Coverage::default());
}

/// Adds a run's coverage to the running case's.
pub fn coverage(coverage: &Coverage) {
    COVERAGE.with(|total| total.borrow_mut().merge(coverage));
}

/// The running case's coverage so far, and a fresh start.
pub fn take_coverage() -> Coverage {
    COVERAGE.with(|total| std::mem::take(&mut *total.borrow_mut()))
}

/// Writes `record` if a results directory was given. A failure to write is reported on
/// stderr and does not change the test's outcome (nextest's own result still counts).
pub fn write(record: &CaseRecord) {
    let Some(directory) = crate::settings::Settings::get().results_dir.clone() else {
        return;
    };
    let path = directory.join(format!(
        "{}--{}--{}.json",
        record.gate, record.backend, record.test
    ));
    let written = std::fs::create_dir_all(&directory).and_then(|()| {
        let json = serde_json::to_string_pretty(record).map_err(std::io::Error::other)?;
        std::fs::write(&path, json)
    });
    if let Err(error) = written {
        eprintln!(
            "bookproof: could not write case record {}: {error}",
            path.display()
        );
    }
}
