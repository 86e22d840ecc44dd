//! Bad input to the `book` binary: each is refused with an error that names what was wrong
//! and what is accepted, an exit code of its own, and a database left exactly as it was
//! (hashed before and after). The README's bad-input table quotes these.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// What a run of the binary left: its exit code and the first line of its stderr.
#[derive(Debug)]
struct Stopped {
    code: Option<i32>,
    first_line: String,
    stderr: String,
}

fn book(arguments: &[&str], environment: &[(&str, &str)]) -> Stopped {
    let mut command = Command::new(env!("CARGO_BIN_EXE_book"));
    command
        .args(arguments)
        .env_remove("BOOK_POSTGRES_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in environment {
        command.env(name, value);
    }
    let output = command.output().expect("the book binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    Stopped {
        code: output.status.code(),
        first_line: stderr.lines().next().unwrap_or_default().to_owned(),
        stderr,
    }
}

/// A fresh directory for one test's files.
fn scratch(test: &str) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("bookproof-bad-input-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    std::fs::create_dir_all(&directory).expect("scratch directory");
    directory
}

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("readable file");
    format!("{:x}", Sha256::digest(bytes))
}

fn sqlite<'a>(path: &'a str, seed: &'a str) -> Vec<&'a str> {
    vec!["--sqlite", path, "--run-id", "run-1", "--seed", seed]
}

/// A database the book made for run `run-1` with seed 0x1 (stdin closed at once).
fn made_database(directory: &Path) -> PathBuf {
    let path = directory.join("book.db");
    let made = book(&sqlite(path.to_str().expect("utf-8 path"), "0x1"), &[]);
    assert_eq!(made.code, Some(0), "making the database: {made:?}");
    path
}

fn assert_refused(stopped: &Stopped, code: i32, first_line: &str) {
    assert_eq!(stopped.code, Some(code), "{stopped:?}");
    assert!(
        stopped.first_line.starts_with(first_line),
        "the first line is {:?}, expected it to start with {first_line:?}",
        stopped.first_line
    );
}

#[test]
fn malformed_seed_exits_5() {
    let stopped = book(&sqlite("unused.db", "0xzz"), &[]);
    assert_refused(
        &stopped,
        5,
        "error: --seed \"0xzz\" is not a seed: expected 1 to 16 hex digits",
    );
}

#[test]
fn unknown_mutant_exits_6_and_names_the_known_ones() {
    let mut arguments = sqlite("unused.db", "0x1");
    arguments.extend(["--mutant", "no-such-mutant"]);
    let stopped = book(&arguments, &[]);
    assert_refused(
        &stopped,
        6,
        "error: unknown mutant \"no-such-mutant\"; known mutants: ",
    );
    assert!(stopped.first_line.contains("blind-replace"), "{stopped:?}");
}

#[test]
fn malformed_crash_site_exits_7() {
    let mut arguments = sqlite("unused.db", "0x1");
    arguments.extend(["--crash-at", "nowhere#1"]);
    let stopped = book(&arguments, &[]);
    assert_refused(&stopped, 7, "error: --crash-at \"nowhere#1\": ");
}

#[test]
fn a_bad_environment_exits_8_and_never_prints_the_password() {
    let arguments = ["--postgres", "--run-id", "run-1", "--seed", "0x1"];
    let missing = book(&arguments, &[]);
    assert_refused(&missing, 8, "error: --postgres needs BOOK_POSTGRES_URL");
    let malformed = book(
        &arguments,
        &[(
            "BOOK_POSTGRES_URL",
            "postgres://user:s3cr3t-pw@host:notaport/db",
        )],
    );
    assert_refused(&malformed, 8, "error: DATABASE URL postgres://user:***@");
    assert!(!malformed.stderr.contains("s3cr3t-pw"), "{malformed:?}");
}

#[test]
fn a_file_that_is_not_a_database_exits_9_untouched() {
    let directory = scratch("not-a-database");
    let path = directory.join("notes.txt");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(200)).expect("write");
    let before = sha256(&path);
    let stopped = book(&sqlite(path.to_str().expect("utf-8 path"), "0x1"), &[]);
    assert_refused(&stopped, 9, "error: ");
    assert!(
        stopped.first_line.contains("is not a SQLite database"),
        "{stopped:?}"
    );
    assert_eq!(sha256(&path), before, "the file changed");
}

#[test]
fn a_database_from_a_newer_build_exits_10_untouched() {
    let directory = scratch("newer");
    let path = made_database(&directory);
    let connection = rusqlite::Connection::open(&path).expect("open");
    connection
        .execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (999, 'from_the_future', 'unknown')",
            [],
        )
        .expect("insert");
    drop(connection);
    let before = sha256(&path);
    let stopped = book(&sqlite(path.to_str().expect("utf-8 path"), "0x1"), &[]);
    assert_refused(&stopped, 10, "error: the book did not open: the database schema is at version 999, newer than this build supports");
    assert_eq!(sha256(&path), before, "the database changed");
}

#[test]
fn a_missing_or_read_only_directory_exits_11() {
    let directory = scratch("missing");
    let missing = directory.join("no-such-directory").join("book.db");
    let stopped = book(&sqlite(missing.to_str().expect("utf-8 path"), "0x1"), &[]);
    assert_refused(&stopped, 11, "error: cannot open ");
    assert!(stopped.first_line.contains("does not exist"), "{stopped:?}");
    assert!(
        !missing.parent().expect("parent").exists(),
        "the directory was created"
    );
    // /proc refuses new files even to root, who ignores permission bits.
    let read_only = book(&sqlite("/proc/book.db", "0x1"), &[]);
    assert_refused(&read_only, 11, "error: cannot open or write /proc/book.db");
}

#[test]
fn a_database_of_another_run_exits_12_untouched_and_a_new_run_id_starts_a_new_run() {
    let directory = scratch("wrong-run");
    let path = made_database(&directory);
    let text = path.to_str().expect("utf-8 path");
    let before = sha256(&path);
    for (extra, field) in [
        (vec!["--dataset-sha", "other"], "dataset"),
        (vec!["--config-sha", "other"], "config"),
        (vec!["--mode", "live"], "mode"),
    ] {
        let mut arguments = sqlite(text, "0x1");
        arguments.extend(extra);
        let stopped = book(&arguments, &[]);
        assert_refused(&stopped, 12, &format!("error: the book did not open: run run-1 in this database was started with {field} "));
    }
    let other_seed = book(&sqlite(text, "0x2"), &[]);
    assert_refused(&other_seed, 12, "error: the book did not open: run run-1 in this database was started with seed 0x0000000000000001, not 0x0000000000000002");
    assert_eq!(sha256(&path), before, "the database changed");
    let new_run = book(
        &["--sqlite", text, "--run-id", "run-2", "--seed", "0x2"],
        &[],
    );
    assert_eq!(
        new_run.code,
        Some(0),
        "a new run id starts a new run: {new_run:?}"
    );
}
