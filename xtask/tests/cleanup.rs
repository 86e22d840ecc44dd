//! A whole `cargo xtask verify` run on PostgreSQL leaves no server process and no cluster
//! directory behind: the server is the xtask's, and it stops it whatever happened.

use std::path::Path;
use std::process::Command;

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            std::fs::read(entry.path().join("cmdline"))
                .ok()
                .map(|cmdline| (entry.file_name(), cmdline))
        })
        .map(|(pid, cmdline)| {
            (
                pid.to_string_lossy().into_owned(),
                String::from_utf8_lossy(&cmdline).replace('\0', " "),
            )
        })
        .filter(|(_, cmdline)| cmdline.contains(needle))
        .map(|(pid, cmdline)| format!("{pid}: {cmdline}"))
        .collect()
}

#[test]
fn verify_on_postgres_leaves_no_server_and_no_cluster_directory() {
    let required = std::env::var("BOOKPROOF_REQUIRE_POSTGRES").as_deref() == Ok("1");
    let out = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "verify",
            "persist",
            "--backend",
            "postgres",
            "--test",
            "fresh_database_gets_every_migration",
            // The local cluster: the Docker provider has its own test (docker.rs).
            "--postgres",
            "local",
        ])
        .current_dir(workspace_root())
        .env("BOOKPROOF_OUT_DIR", out.path())
        // This test checks the run's own cluster, so it must not be handed ours.
        .env_remove("BOOKPROOF_PG_URL")
        .env_remove("BOOKPROOF_PG_UNAVAILABLE")
        .args(if required {
            &["--require-postgres"][..]
        } else {
            &[][..]
        })
        .spawn()
        .expect("run the xtask binary");
    let pid = child.id();
    let status = child.wait().expect("wait for the xtask");
    let report =
        std::fs::read_to_string(out.path().join("report.json")).expect("the run writes a report");
    let prefix = format!("{}{pid}-", harness::database::CLUSTER_DIR_PREFIX);
    let leftover_directories: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .expect("temp dir")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    let leftover_processes = processes_mentioning(&prefix);

    assert!(status.success(), "the run failed: {report}");
    assert!(
        report.contains("local cluster") || !required,
        "no local cluster ran: {report}"
    );
    assert!(
        leftover_directories.is_empty(),
        "cluster directories left behind: {leftover_directories:?}"
    );
    assert!(
        leftover_processes.is_empty(),
        "server processes left running: {leftover_processes:?}"
    );
}
