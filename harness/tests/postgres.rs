//! The PostgreSQL provider and store against real servers and real sockets: a URL that
//! leads nowhere fails after exactly three attempts without printing its password, and a
//! throwaway cluster leaves no process and no directory behind.

use std::net::TcpListener;
use std::path::Path;

use book::store::{PostgresOptions, PostgresStore, StoreError};
use harness::database::LocalCluster;

const PASSWORD: &str = "hunter2-do-not-print";

/// A listener that completes TCP handshakes but never speaks: each connection attempt of
/// the client lands in its backlog and then times out, so the backlog counts attempts.
#[test]
fn silent_server_is_tried_three_times_and_the_password_never_printed() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    let mut options = PostgresOptions::new(format!(
        "postgres://trader:{PASSWORD}@127.0.0.1:{port}/book"
    ));
    options.connect_timeout_ms = 200;
    options.backoff_initial_ms = 10;

    let error = PostgresStore::connect(options.clone()).expect_err("nothing answers on that port");

    let message = error.to_string();
    assert!(matches!(error, StoreError::Connection { .. }), "{error:?}");
    assert!(message.contains("after 3 attempts"), "{message}");
    assert!(message.contains("trader:***@127.0.0.1"), "{message}");
    assert!(
        !message.contains(PASSWORD),
        "the password leaked: {message}"
    );
    assert!(
        !format!("{error:?}").contains(PASSWORD),
        "the password leaked through Debug"
    );
    assert!(
        !format!("{options:?}").contains(PASSWORD),
        "the password leaked through the options' Debug"
    );
    listener.set_nonblocking(true).expect("nonblocking");
    let attempts = std::iter::from_fn(|| listener.accept().ok()).count();
    assert_eq!(
        attempts, 3,
        "the client must try exactly connect_attempts_max times"
    );
}

#[test]
fn refused_connection_reports_the_redacted_url() {
    // Bind and release a port so that nothing listens on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let mut options = PostgresOptions::new(format!(
        "postgresql://trader:{PASSWORD}@127.0.0.1:{port}/book?sslmode=disable"
    ));
    options.backoff_initial_ms = 1;
    let message = PostgresStore::connect(options)
        .expect_err("refused")
        .to_string();
    assert!(
        message.contains("postgresql://trader:***@127.0.0.1"),
        "{message}"
    );
    assert!(
        !message.contains(PASSWORD),
        "the password leaked: {message}"
    );
}

fn process_alive(pid: u32) -> bool {
    // A zombie has exited; only its parent's bookkeeping is left.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[test]
fn local_cluster_leaves_no_process_and_no_directory() {
    let cluster = match LocalCluster::start() {
        Ok(cluster) => cluster,
        Err(reason) if !harness::Settings::get().require_postgres => {
            println!("skipped: {reason}");
            return;
        }
        Err(reason) => {
            panic!("PostgreSQL is required but the local cluster did not start: {reason}")
        }
    };
    let directory = cluster.directory().to_owned();
    let pid = cluster
        .server_pid()
        .expect("a running cluster has a postmaster.pid");
    assert!(process_alive(pid), "the postmaster {pid} is not running");
    let mut store = PostgresStore::connect(PostgresOptions::new(cluster.url("postgres").expose()))
        .expect("connect");
    store
        .execute_outside_transaction("SELECT 1")
        .expect("a query");
    drop(store);

    drop(cluster);

    assert!(
        !process_alive(pid),
        "the postmaster {pid} survived the cluster's drop"
    );
    assert!(
        !Path::new(&directory).exists(),
        "{} was left behind",
        directory.display()
    );
}

/// A machine where `initdb` is not on PATH and `pg_config` is not there either (Debian
/// and Ubuntu put the server in `/usr/lib/postgresql/N/bin`): the cluster is still found
/// in the distribution's place, and starts.
#[test]
fn a_server_off_path_is_found_where_the_distribution_installs_it() {
    let binaries = harness::database::PgBinaries::find_in(
        None,
        &harness::database::PgBinaries::distribution_dirs(),
        Some(std::ffi::OsString::new()),
    );
    let binaries = match binaries {
        Ok(binaries) => binaries,
        Err(reason) if !harness::Settings::get().require_postgres => {
            println!("skipped: no server in a distribution's place: {reason}");
            return;
        }
        Err(reason) => panic!("PostgreSQL is required: {reason}"),
    };
    let cluster = LocalCluster::start_with(binaries.clone()).expect("the cluster starts");
    assert_eq!(cluster.binaries(), &binaries);
    let mut store = PostgresStore::connect(PostgresOptions::new(cluster.url("postgres").expose()))
        .expect("connect");
    store
        .execute_outside_transaction("SELECT 1")
        .expect("a query");
}
