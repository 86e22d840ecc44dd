//! PostgreSQL servers for the gates, and one fresh database per case on them.
//!
//! Where the server comes from, in order (each reports what it did):
//! 1. `BOOKPROOF_PG_URL`: a server the user (or `cargo xtask verify`) provides. Never
//!    `DATABASE_URL`, which in a user's shell may point at production; if only that is set,
//!    the reason says it was ignored on purpose.
//! 2. A Docker engine: detected and reported, but this build has no testcontainers
//!    provider (see ARCHITECTURE.md), so the search goes on.
//! 3. `initdb` and `pg_ctl` on PATH: a throwaway cluster in a temp dir on a free loopback
//!    port, fsync off, run as the `postgres` user when we are root, stopped and removed when
//!    its last user drops it. Clusters left by a killed process are swept at the next start.
//! 4. Otherwise unavailable, with the reason.
//!
//! Every database the harness creates is named `bookproof_case_<pid>_<n>`; it only ever
//! drops databases with that prefix.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use book::store::{redact_url, PostgresOptions, PostgresStore, StoreError};

use crate::provider::Unavailable;

pub const URL_ENV: &str = "BOOKPROOF_PG_URL";
/// Set by `cargo xtask` when it looked for a server and found none: the reason, so that
/// every test process skips at once instead of searching again.
pub const UNAVAILABLE_ENV: &str = "BOOKPROOF_PG_UNAVAILABLE";
/// Prefix of every database the harness creates, and the only ones it drops.
pub const DATABASE_PREFIX: &str = "bookproof_case_";
/// Prefix of every temp dir that holds a throwaway cluster.
pub const CLUSTER_DIR_PREFIX: &str = "bookproof-pg-";
/// How long `pg_ctl` may take to start or stop the cluster.
const PG_CTL_TIMEOUT_S: u32 = 60;

/// A server to create case databases on.
#[derive(Debug)]
pub struct Server {
    /// Connection URL of a database we may connect to for CREATE/DROP DATABASE.
    admin_url: String,
    /// What provided it, for the report.
    pub source: String,
    /// Held so that the cluster stops when the last case using it is done.
    _cluster: Option<LocalCluster>,
}

impl Server {
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }
}

/// The server every case of this process shares while at least one case holds it.
static SHARED: Mutex<Weak<Server>> = Mutex::new(Weak::new());
static DATABASE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The shared server, found or started as the module documentation describes.
pub fn server() -> Result<Arc<Server>, Unavailable> {
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(server) = shared.upgrade() {
        return Ok(server);
    }
    let server = Arc::new(find_server()?);
    eprintln!("bookproof: PostgreSQL from {}", server.source);
    *shared = Arc::downgrade(&server);
    Ok(server)
}

fn find_server() -> Result<Server, Unavailable> {
    if let Ok(url) = std::env::var(URL_ENV) {
        let url = url.trim().to_owned();
        if url.is_empty() {
            return Err(Unavailable {
                reason: format!("{URL_ENV} is set but empty"),
            });
        }
        return Ok(Server {
            source: format!("{URL_ENV} ({})", redact_url(&url)),
            admin_url: url,
            _cluster: None,
        });
    }
    if let Ok(reason) = std::env::var(UNAVAILABLE_ENV) {
        return Err(Unavailable { reason });
    }
    let mut notes = Vec::new();
    if std::env::var_os("DATABASE_URL").is_some() {
        notes.push(format!(
            "DATABASE_URL is set and ignored on purpose (it may point at production; use {URL_ENV})"
        ));
    }
    if let Some(engine) = docker_engine() {
        notes.push(format!(
            "a Docker engine answers at {engine}, but this build has no testcontainers provider"
        ));
    }
    match LocalCluster::start() {
        Ok(cluster) => {
            let mut source = format!(
                "a throwaway local cluster on 127.0.0.1:{} (started in {} ms)",
                cluster.port, cluster.start_millis
            );
            for note in &notes {
                source.push_str("; ");
                source.push_str(note);
            }
            Ok(Server {
                admin_url: cluster.url("postgres"),
                source,
                _cluster: Some(cluster),
            })
        }
        Err(reason) => {
            notes.push(reason);
            Err(Unavailable {
                reason: format!("no PostgreSQL server: {}", notes.join("; ")),
            })
        }
    }
}

/// Where a Docker engine answers, if one does (`DOCKER_HOST` or the default socket).
fn docker_engine() -> Option<String> {
    let socket = match std::env::var("DOCKER_HOST") {
        Ok(host) => match host.strip_prefix("unix://") {
            Some(path) => PathBuf::from(path),
            // A TCP engine: try it, it is cheap.
            None => {
                let address = host.trim_start_matches("tcp://");
                let reachable = address.parse().ok().and_then(|address| {
                    std::net::TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()
                });
                return reachable.map(|_| host);
            }
        },
        Err(_) => PathBuf::from("/var/run/docker.sock"),
    };
    let connected = std::os::unix::net::UnixStream::connect(&socket).ok()?;
    drop(connected);
    Some(socket.display().to_string())
}

/// A fresh database on the shared server for one case, dropped (with FORCE) on drop.
#[derive(Debug)]
pub struct CaseDatabase {
    server: Arc<Server>,
    name: String,
    url: String,
}

impl CaseDatabase {
    pub fn create() -> Result<CaseDatabase, Unavailable> {
        let server = server()?;
        let name = format!(
            "{DATABASE_PREFIX}{}_{}",
            std::process::id(),
            DATABASE_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        admin(
            &server,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .and_then(|()| admin(&server, &format!("CREATE DATABASE {name}")))
        .map_err(|error| Unavailable {
            reason: format!("cannot create a database on {}: {error}", server.source),
        })?;
        let url = with_database(&server.admin_url, &name);
        Ok(CaseDatabase { server, name, url })
    }

    pub fn connect(&self) -> Result<PostgresStore, StoreError> {
        PostgresStore::connect(PostgresOptions::new(self.url.clone()))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The case database's URL (for a `book` process; it may carry a password).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for CaseDatabase {
    fn drop(&mut self) {
        debug_assert!(self.name.starts_with(DATABASE_PREFIX));
        if let Err(error) = admin(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("bookproof: could not drop database {}: {error}", self.name);
        }
    }
}

fn admin(server: &Server, statement: &str) -> Result<(), StoreError> {
    let mut store = PostgresStore::connect(PostgresOptions::new(server.admin_url.clone()))?;
    store.execute_outside_transaction(statement)
}

/// `url` with its database replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let query = tail.find('?').map_or("", |index| &tail[index..]);
    format!("{scheme}://{authority}/{database}{query}")
}

/// A PostgreSQL cluster in a temp dir, owned by this process: stopped and removed on drop.
#[derive(Debug)]
pub struct LocalCluster {
    directory: PathBuf,
    port: u16,
    start_millis: u128,
    run_as: Option<(u32, u32)>,
}

impl LocalCluster {
    /// initdb + pg_ctl start on a free loopback port. Errors say what is missing or what
    /// failed, with the server log's tail.
    pub fn start() -> Result<LocalCluster, String> {
        for tool in ["initdb", "pg_ctl"] {
            if which(tool).is_none() {
                return Err(format!(
                    "{tool} is not on PATH (install PostgreSQL or set {URL_ENV})"
                ));
            }
        }
        sweep_stale_clusters();
        let started = Instant::now();
        let run_as =
            if is_root() {
                Some(user_ids("postgres").ok_or(
                    "running as root and there is no `postgres` user to run the server as",
                )?)
            } else {
                None
            };
        let directory = std::env::temp_dir().join(format!(
            "{CLUSTER_DIR_PREFIX}{}-{}",
            std::process::id(),
            DATABASE_COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&directory)
            .map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
        std::fs::write(directory.join("owner.pid"), std::process::id().to_string())
            .map_err(|error| format!("cannot write the owner file: {error}"))?;
        let mut cluster = LocalCluster {
            directory,
            port: 0,
            start_millis: 0,
            run_as,
        };
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&cluster.directory, Some(uid), Some(gid)).map_err(
                |error| {
                    format!(
                        "cannot hand {} to the postgres user: {error}",
                        cluster.directory.display()
                    )
                },
            )?;
        }
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        // A free port can be taken between the probe and the bind: try a few.
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port()?;
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
                 -c full_page_writes=off -c max_connections=200",
                cluster.directory.display()
            );
            let log = cluster.directory.join("server.log");
            match cluster.run(
                "pg_ctl",
                &[
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-o".as_ref(),
                    options.as_ref(),
                    "-l".as_ref(),
                    log.as_os_str(),
                    "-w".as_ref(),
                    "-t".as_ref(),
                    PG_CTL_TIMEOUT_S.to_string().as_ref(),
                    "start".as_ref(),
                ],
            ) {
                Ok(()) => {
                    cluster.port = port;
                    cluster.start_millis = started.elapsed().as_millis();
                    return Ok(cluster);
                }
                Err(error) => last_error = error,
            }
        }
        Err(format!("the local cluster did not start: {last_error}"))
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// The postmaster's pid, from `postmaster.pid` (its first line).
    pub fn server_pid(&self) -> Option<u32> {
        let contents = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        contents.lines().next()?.trim().parse().ok()
    }

    fn data_dir(&self) -> PathBuf {
        self.directory.join("data")
    }

    fn run(&self, tool: &str, arguments: &[&std::ffi::OsStr]) -> Result<(), String> {
        let mut command = Command::new(tool);
        command
            .args(arguments)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        let output = command
            .output()
            .map_err(|error| format!("cannot run {tool}: {error}"))?;
        if output.status.success() {
            return Ok(());
        }
        let log_tail = std::fs::read_to_string(self.directory.join("server.log"))
            .map(|log| {
                log.lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default();
        Err(format!(
            "{tool} failed ({}): {}{}\n{log_tail}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim()
        ))
    }

    fn stop(&self) -> Result<(), String> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                PG_CTL_TIMEOUT_S.to_string().as_ref(),
                "stop".as_ref(),
            ],
        )
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            if let Err(error) = self.stop() {
                eprintln!("bookproof: stopping the local cluster failed: {error}");
            }
        }
        if let Err(error) = std::fs::remove_dir_all(&self.directory) {
            eprintln!(
                "bookproof: removing {} failed: {error}",
                self.directory.display()
            );
        }
    }
}

/// Stops and removes clusters whose owning process is gone (killed before it could clean
/// up). Clusters of live processes are left alone.
pub fn sweep_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(CLUSTER_DIR_PREFIX) {
            continue;
        }
        let directory = entry.path();
        let owner = std::fs::read_to_string(directory.join("owner.pid"))
            .ok()
            .and_then(|pid| pid.trim().parse::<u32>().ok());
        if owner.is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists()) {
            continue;
        }
        let data = directory.join("data");
        if data.join("postmaster.pid").exists() {
            let mut command = Command::new("pg_ctl");
            command
                .args([
                    "-D".as_ref(),
                    data.as_os_str(),
                    "-m".as_ref(),
                    "immediate".as_ref(),
                    "-w".as_ref(),
                    "stop".as_ref(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if is_root() {
                if let Some((uid, gid)) = user_ids("postgres") {
                    use std::os::unix::process::CommandExt;
                    command.uid(uid).gid(gid);
                }
            }
            let _ = command.status();
        }
        let _ = std::fs::remove_dir_all(&directory);
        eprintln!(
            "bookproof: removed a stale cluster left by a killed run: {}",
            directory.display()
        );
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("cannot find a free port: {error}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| format!("cannot find a free port: {error}"))
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(tool))
        .find(|candidate| candidate.is_file())
}

fn is_root() -> bool {
    // The owner of our own /proc entry is our effective uid.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|metadata| metadata.uid() == 0)
        .unwrap_or(false)
}

/// (uid, gid) of a user, from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() != Some(&user) || fields.len() < 4 {
            return None;
        }
        Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_is_swapped_and_the_query_kept() {
        assert_eq!(
            with_database(
                "postgres://u:p@h:5432/app?sslmode=disable",
                "bookproof_case_1_2"
            ),
            "postgres://u:p@h:5432/bookproof_case_1_2?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
    }
}
