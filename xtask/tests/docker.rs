//! The Docker provider against the real engine: a run through it leaves no container and
//! no volume behind, whether it ends, is interrupted (SIGINT to its process group, as a
//! terminal's Ctrl-C), or is SIGKILLed (then the next start sweeps what it left).
//!
//! Needs a Docker engine and `BOOKPROOF_PG_IMAGE` naming an image it has (`.ci/run`
//! builds one with `cargo xtask pg-image`); without them each test says why and passes,
//! unless PostgreSQL is required (CI), where that is a failure.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use harness::database::docker::{sweep_stale_containers, OWNER_LABEL};

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
}

/// The image to run, or why these tests cannot run here.
fn image() -> Option<String> {
    let required = std::env::var("BOOKPROOF_REQUIRE_POSTGRES").as_deref() == Ok("1");
    let image = std::env::var("BOOKPROOF_PG_IMAGE").ok();
    let present = image.as_deref().is_some_and(|image| {
        Command::new("docker")
            .args(["image", "inspect", image])
            .output()
            .is_ok_and(|output| output.status.success())
    });
    match (present, required) {
        (true, _) => image,
        (false, true) => panic!(
            "PostgreSQL is required but BOOKPROOF_PG_IMAGE ({image:?}) is not an image the Docker engine has: run cargo xtask pg-image"
        ),
        (false, false) => {
            println!("skipped: no Docker engine with BOOKPROOF_PG_IMAGE ({image:?}); cargo xtask pg-image builds one");
            None
        }
    }
}

/// Containers (with their ids) whose owner label is `pid`.
fn containers_of(pid: u32) -> Vec<String> {
    let output = Command::new("docker")
        .args(["ps", "-a", "-q", "--filter"])
        .arg(format!("label={OWNER_LABEL}={pid}"))
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A verify run on PostgreSQL through Docker, in its own process group.
fn spawn_verify(image: &str, test: &str, out: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "verify",
            "persist",
            "--backend",
            "postgres",
            "--postgres",
            "docker",
        ])
        .args(["--test", test])
        .current_dir(workspace_root())
        .env("BOOKPROOF_OUT_DIR", out)
        .env("BOOKPROOF_PG_IMAGE", image)
        .env_remove("BOOKPROOF_PG_URL")
        .env_remove("BOOKPROOF_PG_UNAVAILABLE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("run the xtask binary")
}

/// Blocks until the engine reports that a container owned by `pid` started (events since
/// `since`, so one that started before we asked counts), or two minutes pass.
fn wait_for_start(pid: u32, since: u64) -> Option<String> {
    let mut events = Command::new("docker")
        .args([
            "events",
            "--format",
            "{{.ID}}",
            "--filter",
            "event=start",
            "--filter",
        ])
        .arg(format!("label={OWNER_LABEL}={pid}"))
        .arg(format!("--since={since}"))
        .arg(format!("--until={}", since + 120))
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker events");
    let line = BufReader::new(events.stdout.take().expect("stdout"))
        .lines()
        .next()
        .and_then(Result::ok);
    let _ = events.kill();
    let _ = events.wait();
    line
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[test]
fn a_run_through_docker_removes_its_container_and_volumes() {
    let Some(image) = image() else { return };
    let out = tempfile::tempdir().expect("temp dir");
    let since = now().saturating_sub(1);
    let mut child = spawn_verify(&image, "fresh_database_gets_every_migration", out.path());
    let pid = child.id();
    let status = child.wait().expect("wait for the xtask");
    let report = std::fs::read_to_string(out.path().join("report.json")).unwrap_or_default();
    assert!(status.success(), "the run failed: {report}");
    assert!(
        report.contains("a PostgreSQL container from image"),
        "{report}"
    );
    assert_eq!(
        containers_of(pid),
        Vec::<String>::new(),
        "containers left behind"
    );
    let volumes = volumes_mounted_by(pid, since);
    assert!(
        !volumes.is_empty(),
        "the run's container mounted no volume (the image keeps its data on one)"
    );
    for volume in volumes {
        let exists = Command::new("docker")
            .args(["volume", "inspect", &volume])
            .output()
            .is_ok_and(|output| output.status.success());
        assert!(!exists, "volume {volume} was left behind");
    }
}

/// The volumes the containers of run `pid` mounted, from the engine's event log since
/// `since` (read after the fact: nothing races the run's own cleanup).
fn volumes_mounted_by(pid: u32, since: u64) -> Vec<String> {
    let events = |filters: &[String], format: &str| -> Vec<String> {
        let output = Command::new("docker")
            .args([
                "events",
                "--since",
                &since.to_string(),
                "--until",
                &now().to_string(),
            ])
            .args(
                filters
                    .iter()
                    .flat_map(|filter| ["--filter", filter.as_str()]),
            )
            .args(["--format", format])
            .output()
            .expect("docker events");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let containers = events(
        &[
            "type=container".to_owned(),
            "event=start".to_owned(),
            format!("label={OWNER_LABEL}={pid}"),
        ],
        "{{.Actor.ID}}",
    );
    events(
        &["type=volume".to_owned(), "event=mount".to_owned()],
        "{{.Actor.ID}} {{index .Actor.Attributes \"container\"}}",
    )
    .into_iter()
    .filter_map(|line| {
        let (volume, container) = line.split_once(' ')?;
        containers
            .iter()
            .any(|id| id == container)
            .then(|| volume.to_owned())
    })
    .collect()
}

/// Starts a run, waits for its container, sends `signal` to its whole process group (as a
/// terminal does) and waits for it to end. Returns its pid.
fn signalled_run(image: &str, signal: &str) -> u32 {
    let out = tempfile::tempdir().expect("temp dir");
    let since = now().saturating_sub(1);
    let mut child = spawn_verify(image, "every_table_round_trips", out.path());
    let pid = child.id();
    let started = wait_for_start(pid, since);
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .status();
    let _ = child.wait();
    assert!(started.is_some(), "the run never started a container");
    pid
}

#[test]
fn an_interrupted_run_removes_its_container() {
    let Some(image) = image() else { return };
    // Ctrl-C.
    let pid = signalled_run(&image, "-INT");
    assert_eq!(
        containers_of(pid),
        Vec::<String>::new(),
        "the interrupted run left its container"
    );
}

#[test]
fn a_killed_runs_container_is_swept_at_the_next_start() {
    let Some(image) = image() else { return };
    let pid = signalled_run(&image, "-KILL");
    assert!(
        !containers_of(pid).is_empty(),
        "a SIGKILLed run cannot have removed its container"
    );
    sweep_stale_containers();
    assert_eq!(
        containers_of(pid),
        Vec::<String>::new(),
        "the sweep left the container"
    );
}
