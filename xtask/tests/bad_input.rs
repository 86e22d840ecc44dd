//! Bad input to `cargo xtask`: each is refused with an error that names what was wrong and
//! what is accepted, an exit code of its own, and nothing of the last run's reports deleted
//! or overwritten (hashed before and after). The README's bad-input table quotes these.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
}

#[derive(Debug)]
struct Stopped {
    code: Option<i32>,
    /// The first line of stderr that says what is wrong.
    error: String,
    /// Every such line (a run prints the test runner's own first).
    errors: Vec<String>,
}

/// Runs the xtask binary with `arguments` and `environment` (and no other BOOKPROOF_*
/// variable), its reports going to `out`.
fn xtask(arguments: &[&str], environment: &[(&str, &str)], out: &Path) -> Stopped {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.args(arguments).current_dir(workspace_root());
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("BOOKPROOF_")) {
        command.env_remove(name);
    }
    command.env("BOOKPROOF_OUT_DIR", out);
    for (name, value) in environment {
        command.env(name, value);
    }
    let output = command.output().expect("run the xtask binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<String> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .map(str::to_owned)
        .collect();
    Stopped {
        code: output.status.code(),
        error: errors.first().cloned().unwrap_or_default(),
        errors,
    }
}

fn sha256(path: &Path) -> String {
    format!(
        "{:x}",
        Sha256::digest(std::fs::read(path).expect("readable"))
    )
}

/// A report directory holding the last run's reports.
fn last_run() -> tempfile::TempDir {
    let out = tempfile::tempdir().expect("temp dir");
    std::fs::write(out.path().join("report.json"), "{\"passed\": true}\n").expect("write");
    std::fs::create_dir_all(out.path().join("results")).expect("results");
    std::fs::write(out.path().join("results").join("case.json"), "{}\n").expect("write");
    out
}

fn assert_refused(arguments: &[&str], environment: &[(&str, &str)], code: i32, error: &str) {
    let out = last_run();
    let report = out.path().join("report.json");
    let case = out.path().join("results").join("case.json");
    let before = (sha256(&report), sha256(&case));
    let stopped = xtask(arguments, environment, out.path());
    assert_eq!(stopped.code, Some(code), "{arguments:?}: {stopped:?}");
    assert!(
        stopped.error.starts_with(error),
        "{arguments:?}: the error is {:?}, expected it to start with {error:?}",
        stopped.error
    );
    assert_eq!(
        (sha256(&report), sha256(&case)),
        before,
        "{arguments:?} changed the last run's reports"
    );
}

#[test]
fn an_unknown_gate_exits_4_and_names_the_gates() {
    assert_refused(
        &["verify", "no-such-gate"],
        &[],
        4,
        "error: unknown gate `no-such-gate`; known gates: persist, config",
    );
}

#[test]
fn a_malformed_seed_exits_5() {
    assert_refused(
        &["verify", "--seed", "0xnope"],
        &[],
        5,
        "error: invalid value '0xnope' for '--seed <SEED>'",
    );
}

#[test]
fn an_unknown_mutant_exits_6_and_names_the_mutants() {
    assert_refused(
        &[
            "repro",
            "crash",
            "--seed",
            "0x1",
            "--mutant",
            "no-such-mutant",
        ],
        &[],
        6,
        "error: invalid value 'no-such-mutant' for '--mutant <MUTANT>'",
    );
}

#[test]
fn a_malformed_crash_or_fault_site_exits_7() {
    assert_refused(
        &["verify", "crash", "--crash-at", "nowhere#1"],
        &[],
        7,
        "error: invalid value 'nowhere#1' for '--crash-at <CRASH_AT>'",
    );
    assert_refused(
        &["verify", "failure-cascade", "--fault-at", "melted@commit#1"],
        &[],
        7,
        "error: invalid value 'melted@commit#1' for '--fault-at <FAULT_AT>'",
    );
}

#[test]
fn a_bad_bookproof_variable_exits_8() {
    assert_refused(
        &["list"],
        &[("BOOKPROOF_SEED", "not-hex")],
        8,
        "error: BOOKPROOF_SEED",
    );
}

/// Well formed, but no case reaches it: only a run can tell, and the run says so with its
/// own code. The last run's reports are the run's to replace, so only the code and the
/// error are checked here.
#[test]
fn a_site_the_case_never_reaches_exits_7() {
    let out = tempfile::tempdir().expect("temp dir");
    let crash = xtask(
        &[
            "verify",
            "crash",
            "--test",
            "crash_after_the_venue_accepted_before_the_confirm",
            "--crash-at",
            "confirm.before_commit#99",
        ],
        &[],
        out.path(),
    );
    assert_eq!(crash.code, Some(7), "{crash:?}");
    assert!(
        crash.errors.iter().any(|error| error.starts_with("error: crash site confirm.before_commit#99 is never reached by this case's run; the sites it passes are: ")),
        "{crash:?}"
    );
    let fault = xtask(
        &[
            "verify",
            "failure-cascade",
            "--test",
            "every_store_fault_site",
            "--fault-at",
            "failed_commit@commit#999",
        ],
        &[],
        out.path(),
    );
    assert_eq!(fault.code, Some(7), "{fault:?}");
    assert!(
        fault
            .errors
            .iter()
            .any(|error| error
                .starts_with("error: store fault failed_commit@commit#999 never fired")),
        "{fault:?}"
    );
}
