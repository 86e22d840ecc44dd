//! PostgreSQL in a container, through testcontainers' blocking API: started from
//! `BOOKPROOF_PG_IMAGE` (default: the official image), reachable on a mapped loopback
//! port, removed with its volumes when dropped; on SIGINT, SIGTERM or SIGQUIT by
//! testcontainers' watchdog; and, when the owning process was SIGKILLed, by the sweep at
//! the next start (every container carries its owner's pid in a label).
//!
//! The image runs `postgres -c ...` as its command: the official image's entrypoint and
//! the one `cargo xtask pg-image` builds both take it.

use std::process::Command;
use std::time::Instant;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::SyncRunner;
use testcontainers::{Container, GenericImage, ImageExt};

use crate::secret::SecretUrl;

/// The label every container the harness starts carries: its owner's pid.
pub const OWNER_LABEL: &str = "bookproof.owner";
/// The image when `BOOKPROOF_PG_IMAGE` is not set: the official one.
pub const DEFAULT_IMAGE: &str = "postgres:16";
const PORT: u16 = 5432;
/// How long a container may take from `docker run` to accepting connections.
const STARTUP_TIMEOUT_S: u64 = 120;

/// A running PostgreSQL container; dropping it removes it (and its volumes).
pub struct PostgresContainer {
    container: Container<GenericImage>,
    /// Where the server answers: the container's own address on the bridge network when
    /// this host reaches it (no userland proxy in between: several times faster for the
    /// many short round trips of a gate), else the port published on loopback.
    address: std::net::SocketAddr,
    start_millis: u128,
    image: String,
}

impl std::fmt::Debug for PostgresContainer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresContainer")
            .field("id", &self.container.id())
            .field("image", &self.image)
            .field("address", &self.address)
            .finish()
    }
}

impl PostgresContainer {
    /// Starts `image` and waits until it accepts connections. Errors say why (no engine,
    /// no such image and no registry to pull it from, a server that never came up).
    pub fn start(image: &str) -> Result<PostgresContainer, String> {
        PostgresContainer::start_with(image, false)
    }

    /// [`PostgresContainer::start`]; `durable` keeps fsync and full page writes on (a
    /// server the crash gate kills). The host port is fixed when the container is made, so
    /// that it stays the same across a restart; a durable server is always reached there
    /// (a restarted container may get another bridge address).
    pub fn start_with(image: &str, durable: bool) -> Result<PostgresContainer, String> {
        sweep_stale_containers();
        let (name, tag) = split_image(image);
        let host_port = super::cluster::free_port()?;
        let mut command = vec!["postgres", "-c", "max_connections=300"];
        if !durable {
            command.extend([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        let started = Instant::now();
        let container = GenericImage::new(name, tag)
            .with_wait_for(WaitFor::message_on_stderr(
                "database system is ready to accept connections",
            ))
            .with_mapped_port(host_port, PORT.tcp())
            // Named, so that its address on it can be looked up.
            .with_network("bridge")
            .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
            .with_label(OWNER_LABEL, std::process::id().to_string())
            .with_cmd(command)
            .with_startup_timeout(std::time::Duration::from_secs(STARTUP_TIMEOUT_S))
            .start()
            .map_err(|error| format!("the container from image {image} did not start: {error}"))?;
        let port = container
            .get_host_port_ipv4(PORT)
            .map_err(|error| format!("the container's port {PORT} is not mapped: {error}"))?;
        let published = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let bridge = container
            .get_bridge_ip_address()
            .ok()
            .map(|ip| std::net::SocketAddr::new(ip, PORT))
            .filter(|address| {
                !durable
                    && std::net::TcpStream::connect_timeout(
                        address,
                        std::time::Duration::from_millis(500),
                    )
                    .is_ok()
            });
        let server = PostgresContainer {
            container,
            address: bridge.unwrap_or(published),
            start_millis: 0,
            image: image.to_owned(),
        };
        server.wait_until_accepting()?;
        Ok(PostgresContainer {
            start_millis: started.elapsed().as_millis(),
            ..server
        })
    }

    /// The official image logs "ready" once during its own initialisation too (a
    /// temporary server on a socket only): connect for real, with the store's bounded
    /// backoff, before handing the server out.
    fn wait_until_accepting(&self) -> Result<(), String> {
        super::accepting(&self.url("postgres"), 10)
            .map_err(|error| format!("the container never accepted a connection: {error}"))
    }

    /// The server crashes: `docker kill` (SIGKILL to the postmaster, the container's first
    /// process; every backend dies with it), then the same container starts again on its
    /// own data and recovers from its write-ahead log.
    pub fn crash_and_restart(&self) -> Result<(), String> {
        let id = self.container.id();
        for arguments in [["kill", id], ["wait", id], ["start", id]] {
            let output = Command::new("docker")
                .args(arguments)
                .output()
                .map_err(|error| format!("cannot run docker {}: {error}", arguments[0]))?;
            if !output.status.success() {
                return Err(format!(
                    "docker {} {id} failed: {}",
                    arguments[0],
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
        self.wait_until_accepting()
    }

    /// A URL for `database` (trust authentication: no password).
    pub fn url(&self, database: &str) -> SecretUrl {
        SecretUrl::new(format!("postgres://postgres@{}/{database}", self.address))
    }

    pub fn id(&self) -> &str {
        self.container.id()
    }

    pub fn image(&self) -> &str {
        &self.image
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    pub fn start_millis(&self) -> u128 {
        self.start_millis
    }
}

/// `name:tag`, where a `:` before the last `/` belongs to a registry's port.
fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// Removes containers (and their volumes) whose owning process is gone: a run that was
/// SIGKILLed could not remove its own. Containers of live processes are left alone.
pub fn sweep_stale_containers() {
    let Ok(listed) = Command::new("docker")
        .args([
            "ps",
            "-a",
            "--filter",
            &format!("label={OWNER_LABEL}"),
            "--format",
            &format!("{{{{.ID}}}} {{{{.Label \"{OWNER_LABEL}\"}}}}"),
        ])
        .output()
    else {
        return;
    };
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        let mut fields = line.split_whitespace();
        let (Some(id), owner) = (fields.next(), fields.next()) else {
            continue;
        };
        let alive = owner
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if alive {
            continue;
        }
        let removed = Command::new("docker")
            .args(["rm", "-f", "-v", id])
            .output()
            .is_ok_and(|output| output.status.success());
        if removed {
            eprintln!("bookproof: removed a stale PostgreSQL container left by a killed run: {id}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn an_image_splits_into_name_and_tag() {
        assert_eq!(split_image("postgres:16"), ("postgres", "16"));
        assert_eq!(
            split_image("bookproof/postgres:local"),
            ("bookproof/postgres", "local")
        );
        assert_eq!(split_image("postgres"), ("postgres", "latest"));
        assert_eq!(
            split_image("registry:5000/team/postgres"),
            ("registry:5000/team/postgres", "latest")
        );
        assert_eq!(
            split_image("registry:5000/postgres:15"),
            ("registry:5000/postgres", "15")
        );
    }
}
