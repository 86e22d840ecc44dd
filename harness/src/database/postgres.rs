//! PostgreSQL servers for the gates, and one fresh database per case on them.
//!
//! Where the server comes from, in order (each reports what it did):
//! 1. `BOOKPROOF_PG_URL`: a server the user (or `cargo xtask verify`) provides. Never
//!    `DATABASE_URL`, which in a user's shell may point at production: it is never used,
//!    and when it is set the report says it was ignored on purpose.
//! 2. A Docker engine: a container from `BOOKPROOF_PG_IMAGE` (default: the official
//!    image) through testcontainers ([`PostgresContainer`]); if it cannot be had (no such
//!    image and no registry), the reason is noted and the search goes on.
//! 3. The server programs where distributions install them: a throwaway [`LocalCluster`].
//! 4. Otherwise unavailable, with the reasons.
//!
//! `cargo xtask verify --postgres url|docker|local` forces one ([`Provider`]) and fails,
//! not skips, when it cannot be had.
//!
//! Every database the harness creates is named `bookproof_case_<pid>_<n>`; it only ever
//! drops databases with that prefix.

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use book::store::{Backend, PostgresOptions, PostgresStore, Store, StoreError};

use super::docker::{PostgresContainer, DEFAULT_IMAGE};
use super::{CaseDatabase, Kept, LocalCluster, ProcessAccess, RunDatabases, Unavailable};
use crate::secret::SecretUrl;
use crate::settings::{self, Settings};

/// Prefix of every database the harness creates, and the only ones it drops.
pub const DATABASE_PREFIX: &str = "bookproof_case_";
/// The variable a `book` process reads its database URL from.
pub const BOOK_URL_ENV: &str = "BOOK_POSTGRES_URL";

/// A server to create case databases on.
#[derive(Debug)]
pub struct Server {
    /// The connection CREATE and DROP DATABASE go through, kept (a new connection for
    /// each was a new server process each time). Declared before `_owned`: it closes
    /// before the server stops.
    admin: Kept<PostgresStore>,
    /// A database we may connect to for CREATE/DROP DATABASE.
    admin_url: SecretUrl,
    /// What provided it, for the report (never a password).
    pub source: String,
    pub provider: Provider,
    /// Held so that the cluster or container stops when the last case using it is done.
    _owned: Option<Owned>,
}

/// A server the harness started, stopped (and removed) when dropped.
#[derive(Debug)]
enum Owned {
    Cluster(LocalCluster),
    Container(PostgresContainer),
}

impl Server {
    /// A server someone else runs, at `url` (a database on it the harness may connect to
    /// for CREATE and DROP DATABASE).
    pub fn provided(url: SecretUrl, source: String) -> Server {
        Server {
            admin: Kept::default(),
            admin_url: url,
            source,
            provider: Provider::Url,
            _owned: None,
        }
    }

    /// A durable server (fsync on) of the caller's own, from `provider` (a local cluster
    /// or a container), for a check that crashes it; stopped when dropped.
    pub fn start_own(provider: Provider) -> Result<Server, String> {
        match provider {
            Provider::Url => Err(format!(
                "a server given by {} is not the harness's to crash",
                settings::PG_URL
            )),
            Provider::Local => {
                let cluster = LocalCluster::start_durable()?;
                Ok(Server {
                    admin: Kept::default(),
                    admin_url: cluster.url("postgres"),
                    source: format!("a durable local cluster on 127.0.0.1:{}", cluster.port()),
                    provider,
                    _owned: Some(Owned::Cluster(cluster)),
                })
            }
            Provider::Docker => {
                let image = Settings::get().pg_image.as_deref().unwrap_or(DEFAULT_IMAGE);
                let container = PostgresContainer::start_with(image, true)?;
                Ok(Server {
                    admin: Kept::default(),
                    admin_url: container.url("postgres"),
                    source: format!(
                        "a durable container from {image} on {}",
                        container.address()
                    ),
                    provider,
                    _owned: Some(Owned::Container(container)),
                })
            }
        }
    }

    /// Kills and restarts this server (see `LocalCluster::crash_and_restart`,
    /// `PostgresContainer::crash_and_restart`), for the `server_crash` fault; `None` for a
    /// server the harness did not start.
    pub fn crasher(self: &Arc<Server>) -> Option<crate::faults::Terminator> {
        self._owned.as_ref()?;
        let server = Arc::clone(self);
        Some(Arc::new(move || match &server._owned {
            Some(Owned::Cluster(cluster)) => cluster.crash_and_restart(),
            Some(Owned::Container(container)) => container.crash_and_restart(),
            None => Err("not the harness's server".to_owned()),
        }))
    }

    /// The source with `notes` (what else was found or tried) appended.
    fn noted(mut self, notes: &[String]) -> Server {
        for note in notes {
            self.source.push_str("; ");
            self.source.push_str(note);
        }
        self
    }

    pub fn admin_url(&self) -> &SecretUrl {
        &self.admin_url
    }
}

/// The server every case of this process shares while at least one case holds it.
static SHARED: Mutex<Weak<Server>> = Mutex::new(Weak::new());
static DATABASE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where a PostgreSQL server comes from (`cargo xtask verify --postgres`). Without a
/// choice: a URL, then Docker, then a local cluster, then skipped with the reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `BOOKPROOF_PG_URL`: a server you run.
    Url,
    /// A container through testcontainers, from `BOOKPROOF_PG_IMAGE`.
    Docker,
    /// A throwaway local cluster from the server programs installed here.
    Local,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Url, Provider::Docker, Provider::Local];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Url => "url",
            Provider::Docker => "docker",
            Provider::Local => "local",
        }
    }

    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|provider| provider.name() == name)
    }
}

/// Finds or starts the run's server (from `provider` when one is forced) and hands its URL
/// (or the reason there is none) to the test processes, so they neither search again nor
/// start servers of their own.
pub(super) fn prepare_run(run: &mut RunDatabases, provider: Option<Provider>) {
    match shared(|| find_server(Settings::get(), provider)) {
        Ok(server) => {
            run.environment
                .push((settings::PG_URL, server.admin_url().clone()));
            run.environment.push((
                settings::PG_PROVIDER,
                SecretUrl::new(server.provider.name()),
            ));
            run.sources.push((Backend::Postgres, server.source.clone()));
            run.hold(Box::new(server));
        }
        Err(unavailable) => {
            run.environment.push((
                settings::PG_UNAVAILABLE,
                SecretUrl::new(unavailable.reason.clone()),
            ));
            run.sources.push((
                Backend::Postgres,
                format!("unavailable: {}", unavailable.reason),
            ));
        }
    }
}

/// The shared server, found or started as the module documentation describes.
pub fn server() -> Result<Arc<Server>, Unavailable> {
    shared(|| find_server(Settings::get(), None))
}

fn shared(find: impl FnOnce() -> Result<Server, Unavailable>) -> Result<Arc<Server>, Unavailable> {
    let mut shared = SHARED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(server) = shared.upgrade() {
        return Ok(server);
    }
    let server = Arc::new(find()?);
    eprintln!("bookproof: PostgreSQL from {}", server.source);
    *shared = Arc::downgrade(&server);
    Ok(server)
}

fn find_server(settings: &Settings, forced: Option<Provider>) -> Result<Server, Unavailable> {
    let unavailable = |reason: String| Unavailable { reason };
    if matches!(forced, None | Some(Provider::Url)) {
        if let Some(url) = &settings.pg_url {
            return Ok(Server::provided(
                url.clone(),
                format!("{} ({url})", settings::PG_URL),
            ));
        }
        if forced == Some(Provider::Url) {
            return Err(unavailable(format!(
                "--postgres url, but {} is not set",
                settings::PG_URL
            )));
        }
        if let Some(reason) = &settings.pg_unavailable {
            return Err(unavailable(reason.clone()));
        }
    }
    let mut notes = Vec::new();
    if std::env::var_os("DATABASE_URL").is_some() {
        notes.push(format!(
            "DATABASE_URL is set and never used (it may point at production; use {})",
            settings::PG_URL
        ));
    }
    if forced != Some(Provider::Local) {
        match container_server(settings) {
            Ok(server) => return Ok(server.noted(&notes)),
            Err(reason) if forced == Some(Provider::Docker) => return Err(unavailable(reason)),
            Err(reason) => notes.push(reason),
        }
    }
    match LocalCluster::start() {
        Ok(cluster) => {
            let source = format!(
                "a throwaway local cluster from {} on 127.0.0.1:{} (started in {} ms)",
                cluster.binaries().bindir.display(),
                cluster.port(),
                cluster.start_millis()
            );
            Ok(Server {
                admin: Kept::default(),
                admin_url: cluster.url("postgres"),
                source,
                provider: Provider::Local,
                _owned: Some(Owned::Cluster(cluster)),
            }
            .noted(&notes))
        }
        Err(reason) => {
            notes.push(reason);
            Err(unavailable(format!(
                "no PostgreSQL server: {}",
                notes.join("; ")
            )))
        }
    }
}

/// A container from `BOOKPROOF_PG_IMAGE`, when a Docker engine answers.
fn container_server(settings: &Settings) -> Result<Server, String> {
    let engine =
        docker_engine().ok_or("no Docker engine answers (DOCKER_HOST or /var/run/docker.sock)")?;
    let image = settings.pg_image.as_deref().unwrap_or(DEFAULT_IMAGE);
    let container = PostgresContainer::start(image)
        .map_err(|error| format!("a Docker engine answers at {engine}, but {error}"))?;
    let source = format!(
        "a PostgreSQL container from image {image} on {} (started in {} ms; testcontainers, Docker engine at {engine})",
        container.address(),
        container.start_millis()
    );
    Ok(Server {
        admin: Kept::default(),
        admin_url: container.url("postgres"),
        source,
        provider: Provider::Docker,
        _owned: Some(Owned::Container(container)),
    })
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
pub struct PostgresDatabase {
    server: Arc<Server>,
    name: String,
    url: SecretUrl,
}

impl PostgresDatabase {
    /// A fresh database on the shared server.
    pub fn create() -> Result<PostgresDatabase, Unavailable> {
        PostgresDatabase::create_on(server()?)
    }

    /// A fresh database on `server`.
    pub fn create_on(server: Arc<Server>) -> Result<PostgresDatabase, Unavailable> {
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
        let url = server.admin_url.with_database(&name);
        Ok(PostgresDatabase { server, name, url })
    }
}

impl CaseDatabase for PostgresDatabase {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn connect(&self) -> Result<Box<dyn Store>, StoreError> {
        Ok(Box::new(PostgresStore::connect(PostgresOptions::new(
            self.url.expose(),
        ))?))
    }

    fn process_access(&self) -> ProcessAccess {
        ProcessAccess {
            arguments: vec!["--postgres".into()],
            environment: vec![(BOOK_URL_ENV, self.url.clone())],
        }
    }

    fn terminator(&self) -> Option<crate::faults::Terminator> {
        let server = Arc::clone(&self.server);
        let name = self.name.clone();
        Some(Arc::new(move || {
            debug_assert!(name.starts_with(DATABASE_PREFIX));
            admin(
                &server,
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                ),
            )
            .map_err(|error| error.to_string())
        }))
    }
}

impl fmt::Display for PostgresDatabase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "PostgreSQL database {} at {}",
            self.name, self.url
        )
    }
}

impl Drop for PostgresDatabase {
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
    server.admin.with(
        || PostgresStore::connect(PostgresOptions::new(server.admin_url.expose())),
        |store| store.execute_outside_transaction(statement),
    )
}
