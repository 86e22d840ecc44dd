//! A password in `BOOKPROOF_PG_URL` never appears in any byte a run writes: stdout,
//! stderr, `report.json` or the JUnit file. Once against a working server (a throwaway
//! cluster with trust authentication accepts the password and ignores it) and once against
//! a closed port, where every case fails and prints the most.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use harness::database::LocalCluster;
use harness::Settings;

const PASSWORD: &str = "pw-Ka7@q:r/never-print";
const ENCODED: &str = "pw-Ka7%40q%3Ar%2Fnever-print";

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
}

/// Runs one persist case on PostgreSQL at `url`; returns (exit code, every byte written).
fn run_with_url(url: &str) -> (Option<i32>, Vec<(String, String)>) {
    let out = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "verify",
            "persist",
            "--backend",
            "postgres",
            "--require-postgres",
        ])
        .args(["--test", "fresh_database_gets_every_migration"])
        .current_dir(workspace_root())
        .env("BOOKPROOF_OUT_DIR", out.path())
        .env("BOOKPROOF_PG_URL", url)
        .env_remove("BOOKPROOF_PG_UNAVAILABLE")
        .output()
        .expect("run the xtask binary");
    let mut written = vec![
        (
            "stdout".to_owned(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        ),
        (
            "stderr".to_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ),
    ];
    for file in ["report.json", "junit.xml"] {
        let path = out.path().join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("the run must write {}: {error}", path.display()));
        written.push((file.to_owned(), text));
    }
    (output.status.code(), written)
}

fn assert_no_password(label: &str, written: &[(String, String)]) {
    for (name, text) in written {
        for secret in [PASSWORD, ENCODED] {
            assert!(
                !text.contains(secret),
                "{label}: the password is in {name}:\n{text}"
            );
        }
    }
}

#[test]
fn a_password_in_the_pg_url_reaches_no_output() {
    let cluster = match LocalCluster::start() {
        Ok(cluster) => cluster,
        Err(reason) if !Settings::get().require_postgres => {
            println!("skipped: {reason}");
            return;
        }
        Err(reason) => {
            panic!("PostgreSQL is required but the local cluster did not start: {reason}")
        }
    };
    let working = format!(
        "postgres://postgres:{ENCODED}@127.0.0.1:{}/postgres",
        cluster.port()
    );
    let (code, written) = run_with_url(&working);
    assert_no_password("working server", &written);
    assert_eq!(
        code,
        Some(0),
        "the run against a working server failed: {written:?}"
    );

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let closed = format!("postgres://trader:{ENCODED}@127.0.0.1:{port}/book");
    let (code, written) = run_with_url(&closed);
    assert_no_password("closed port", &written);
    assert_eq!(
        code,
        Some(1),
        "the run against a closed port must fail: {written:?}"
    );
    let stdout = &written[0].1;
    assert!(
        stdout.contains("trader:***@127.0.0.1"),
        "the failure should name the server, redacted:\n{stdout}"
    );
}
