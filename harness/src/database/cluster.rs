//! A throwaway PostgreSQL cluster: `initdb` in a temp dir, `pg_ctl start` on a free
//! loopback port with fsync off, run as the `postgres` user when we are root (PostgreSQL
//! refuses to run as root), stopped and removed on drop. Clusters left by a killed process
//! are swept at the next start.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::secret::SecretUrl;
use crate::settings;

/// Prefix of every temp dir that holds a throwaway cluster.
pub const CLUSTER_DIR_PREFIX: &str = "bookproof-pg-";
/// How long `pg_ctl` may take to start or stop the cluster.
const PG_CTL_TIMEOUT_S: u32 = 60;
/// A free port can be taken between the probe and the bind: tried this often.
const START_ATTEMPTS_MAX: u32 = 3;
/// A crashed server's backends may hold its shared memory for a moment: starts tried.
const RESTART_ATTEMPTS_MAX: u32 = 20;

static CLUSTER_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where the server's programs are: one directory holding `initdb`, `pg_ctl` and
/// `postgres`, found where distributions install them, not only on PATH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    pub bindir: PathBuf,
}

impl PgBinaries {
    /// The first directory that holds the server's programs, in order: `pg_config
    /// --bindir`, the distributions' places (`/usr/lib/postgresql/*/bin`, newest first;
    /// `/usr/pgsql-*/bin`; `/usr/local/pgsql/bin`), then PATH.
    pub fn find() -> Result<PgBinaries, String> {
        PgBinaries::find_in(
            pg_config_bindir(),
            &PgBinaries::distribution_dirs(),
            std::env::var_os("PATH"),
        )
    }

    /// [`PgBinaries::find`] over given places (tests take PATH and pg_config away).
    pub fn find_in(
        pg_config: Option<PathBuf>,
        distribution: &[PathBuf],
        path: Option<std::ffi::OsString>,
    ) -> Result<PgBinaries, String> {
        let on_path = path
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default();
        let candidates: Vec<PathBuf> = pg_config
            .into_iter()
            .chain(distribution.iter().cloned())
            .chain(on_path)
            .collect();
        candidates
            .iter()
            .find(|directory| PgBinaries::holds_server(directory))
            .map(|bindir| PgBinaries {
                bindir: bindir.clone(),
            })
            .ok_or_else(|| {
                format!(
                    "no PostgreSQL server programs (initdb, pg_ctl, postgres) in pg_config --bindir, /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin, /usr/local/pgsql/bin or on PATH (install the PostgreSQL server or set {})",
                    settings::PG_URL
                )
            })
    }

    fn holds_server(directory: &Path) -> bool {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|tool| directory.join(tool).is_file())
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }
}

/// `pg_config --bindir`, when pg_config runs.
fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| PathBuf::from(text.trim()))
}

impl PgBinaries {
    /// The distributions' places, newest version first where the version is in the path.
    pub fn distribution_dirs() -> Vec<PathBuf> {
        let mut found = Vec::new();
        for (parent, prefix, suffix) in [
            ("/usr/lib/postgresql", "", "bin"),
            ("/usr", "pgsql-", "bin"),
        ] {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            let mut versions: Vec<(u32, PathBuf)> = entries
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let version = name.strip_prefix(prefix)?.split('.').next()?.parse().ok()?;
                    Some((version, entry.path().join(suffix)))
                })
                .collect();
            versions.sort_by(|a, b| b.0.cmp(&a.0));
            found.extend(versions.into_iter().map(|(_, path)| path));
        }
        found.push(PathBuf::from("/usr/local/pgsql/bin"));
        found
    }
}

#[derive(Debug)]
pub struct LocalCluster {
    binaries: PgBinaries,
    directory: PathBuf,
    port: u16,
    start_millis: u128,
    run_as: Option<(u32, u32)>,
    /// fsync and full page writes on (a cluster the crash gate kills).
    durable: bool,
}

impl LocalCluster {
    /// initdb + pg_ctl start on a free loopback port. Errors say what is missing or what
    /// failed, with the server log's tail.
    pub fn start() -> Result<LocalCluster, String> {
        LocalCluster::start_with(PgBinaries::find()?)
    }

    /// [`LocalCluster::start`] with the server programs in `binaries`.
    pub fn start_with(binaries: PgBinaries) -> Result<LocalCluster, String> {
        LocalCluster::start_with_durability(binaries, false)
    }

    /// A cluster that keeps fsync on (for crashing it: what it acknowledged must survive).
    pub fn start_durable() -> Result<LocalCluster, String> {
        LocalCluster::start_with_durability(PgBinaries::find()?, true)
    }

    fn start_with_durability(binaries: PgBinaries, durable: bool) -> Result<LocalCluster, String> {
        sweep_stale_clusters();
        let started = Instant::now();
        let mut cluster = LocalCluster::prepare(binaries)?;
        cluster.durable = durable;
        cluster.init()?;
        let mut last_error = String::new();
        for _attempt in 0..START_ATTEMPTS_MAX {
            match cluster.start_server() {
                Ok(()) => {
                    cluster.start_millis = started.elapsed().as_millis();
                    return Ok(cluster);
                }
                Err(error) => last_error = error,
            }
        }
        Err(format!("the local cluster did not start: {last_error}"))
    }

    /// The directory, owned by the user the server will run as, with an owner file that
    /// lets a later run sweep it if this process is killed.
    fn prepare(binaries: PgBinaries) -> Result<LocalCluster, String> {
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
            CLUSTER_COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&directory)
            .map_err(|error| format!("cannot create {}: {error}", directory.display()))?;
        std::fs::write(directory.join("owner.pid"), std::process::id().to_string())
            .map_err(|error| format!("cannot write the owner file: {error}"))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&directory, Some(uid), Some(gid)).map_err(|error| {
                format!(
                    "cannot hand {} to the postgres user: {error}",
                    directory.display()
                )
            })?;
        }
        Ok(LocalCluster {
            binaries,
            directory,
            port: 0,
            start_millis: 0,
            run_as,
            durable: false,
        })
    }

    fn init(&self) -> Result<(), String> {
        let data = self.data_dir();
        self.run(
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
        )
    }

    fn start_server(&mut self) -> Result<(), String> {
        let port = free_port()?;
        self.start_on(port)?;
        self.port = port;
        Ok(())
    }

    /// `pg_ctl start` on `port`; durable clusters keep fsync and full page writes on.
    fn start_on(&self, port: u16) -> Result<(), String> {
        let speed = if self.durable {
            ""
        } else {
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300{speed}",
            self.directory.display()
        );
        let data = self.data_dir();
        let log = self.directory.join("server.log");
        let timeout = PG_CTL_TIMEOUT_S.to_string();
        self.run(
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
                timeout.as_ref(),
                "start".as_ref(),
            ],
        )
    }

    /// The server crashes: the postmaster and every backend are SIGKILLed, as a machine
    /// losing power would leave them (nothing flushed, nothing shut down). Then it starts
    /// again on the same data directory and port and recovers from its write-ahead log.
    /// A backend still dying holds the shared memory for a moment: the start is tried
    /// again, a bounded number of times.
    pub fn crash_and_restart(&self) -> Result<(), String> {
        let postmaster = self
            .server_pid()
            .ok_or("no postmaster.pid: the server is not running")?;
        // The postmaster first, so that it cannot react to its children's deaths; a
        // backend that exits on its own meanwhile makes `kill` report it, which is fine:
        // the restart below fails while anything of the old server lives.
        let mut pids = vec![postmaster];
        pids.extend(children_of(postmaster));
        Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status()
            .map_err(|error| format!("cannot run kill: {error}"))?;
        let mut last_error = String::new();
        for _attempt in 0..RESTART_ATTEMPTS_MAX {
            match self.start_on(self.port).and_then(|()| self.accepting()) {
                Ok(()) => return Ok(()),
                Err(error) => last_error = error,
            }
        }
        Err(format!(
            "the cluster did not restart after the crash: {last_error}"
        ))
    }

    /// Connects once the server accepts (the store's bounded backoff), or says why not
    /// with the server log's tail.
    fn accepting(&self) -> Result<(), String> {
        super::accepting(&self.url("postgres"), 6)
            .map_err(|error| format!("{error}\n{}", self.log_tail()))
    }

    /// A URL for `database` (trust authentication: no password).
    pub fn url(&self, database: &str) -> SecretUrl {
        SecretUrl::new(format!(
            "postgres://postgres@127.0.0.1:{}/{database}",
            self.port
        ))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where its server programs came from.
    pub fn binaries(&self) -> &PgBinaries {
        &self.binaries
    }

    pub fn start_millis(&self) -> u128 {
        self.start_millis
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

    fn run(&self, tool: &str, arguments: &[&OsStr]) -> Result<(), String> {
        let mut command = Command::new(self.binaries.tool(tool));
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
        Err(format!(
            "{tool} failed ({}): {}{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim(),
            String::from_utf8_lossy(&output.stdout).trim(),
            self.log_tail()
        ))
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.directory.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    fn stop(&self) -> Result<(), String> {
        let data = self.data_dir();
        let timeout = PG_CTL_TIMEOUT_S.to_string();
        self.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "-t".as_ref(),
                timeout.as_ref(),
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
        let Ok(binaries) = PgBinaries::find() else {
            return;
        };
        let stale = LocalCluster {
            binaries,
            run_as: if is_root() {
                user_ids("postgres")
            } else {
                None
            },
            directory: directory.clone(),
            port: 0,
            start_millis: 0,
            durable: false,
        };
        // Dropping it stops the server, if one runs, and removes the directory.
        drop(stale);
        eprintln!(
            "bookproof: removed a stale cluster left by a killed run: {}",
            directory.display()
        );
    }
}

/// The processes whose parent is `parent` (a postmaster's backends), from /proc.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
            let after = stat.rsplit_once(')')?.1;
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("cannot find a free port: {error}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| format!("cannot find a free port: {error}"))
}

/// Whether this process runs as root (PostgreSQL refuses to).
pub fn is_root() -> bool {
    // The owner of our own /proc entry is our effective uid.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|metadata| metadata.uid() == 0)
        .unwrap_or(false)
}

/// (uid, gid) of a user, from /etc/passwd.
pub fn user_ids(user: &str) -> Option<(u32, u32)> {
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
    use super::*;

    fn server_dir(root: &Path, name: &str, tools: &[&str]) -> PathBuf {
        let directory = root.join(name);
        std::fs::create_dir_all(&directory).expect("mkdir");
        for tool in tools {
            std::fs::write(directory.join(tool), "").expect("write");
        }
        directory
    }

    #[test]
    fn pg_config_comes_first_then_the_distributions_then_path() {
        let root = tempfile::tempdir().expect("temp dir");
        let all = ["initdb", "pg_ctl", "postgres"];
        let configured = server_dir(root.path(), "configured", &all);
        let distribution = server_dir(root.path(), "distribution", &all);
        let on_path = server_dir(root.path(), "on-path", &all);
        let path = std::env::join_paths([&on_path]).expect("PATH");
        let found = |pg_config: Option<PathBuf>, path: Option<std::ffi::OsString>| {
            PgBinaries::find_in(pg_config, std::slice::from_ref(&distribution), path)
                .map(|binaries| binaries.bindir)
        };
        assert_eq!(
            found(Some(configured.clone()), Some(path.clone())),
            Ok(configured)
        );
        assert_eq!(found(None, Some(path.clone())), Ok(distribution.clone()));
        assert_eq!(
            PgBinaries::find_in(None, &[], Some(path)).map(|binaries| binaries.bindir),
            Ok(on_path)
        );
    }

    #[test]
    fn a_directory_without_the_server_is_passed_over_and_none_is_an_error() {
        let root = tempfile::tempdir().expect("temp dir");
        // A client-only install: pg_ctl and psql, no initdb or postgres.
        let client = server_dir(root.path(), "client", &["pg_ctl", "psql"]);
        let error = PgBinaries::find_in(Some(client), &[], None).expect_err("no server");
        assert!(error.contains("no PostgreSQL server programs"), "{error}");
        assert!(error.contains(settings::PG_URL), "{error}");
    }
}
