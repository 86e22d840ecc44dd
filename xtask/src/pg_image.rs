//! `cargo xtask pg-image`: a PostgreSQL image built here, from this machine's own
//! PostgreSQL server, for machines that reach no container registry. The image is a root
//! file system imported with `docker import`: the server's programs, libraries and shared
//! files, the shared libraries they load (from `ldd`), `/bin/sh` for initdb, a `postgres`
//! user, and an entrypoint that initialises a cluster with trust authentication on first
//! start and runs the server on port 5432 with the arguments given (the official image's
//! `postgres -c ...` command works unchanged).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context as _};
use harness::database::PgBinaries;

/// The tag `.ci/run` builds and points `BOOKPROOF_PG_IMAGE` at.
pub const DEFAULT_TAG: &str = "bookproof/postgres:local";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The tag to give the image.
    #[arg(long, default_value = DEFAULT_TAG)]
    pub tag: String,
}

const ENTRYPOINT: &str = r#"#!/bin/sh
# bookproof's PostgreSQL image: initialise on first start, then run the server.
set -e
PGDATA=/var/lib/postgresql/data
BINDIR=@BINDIR@
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  "$BINDIR/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
  echo "host all all 0.0.0.0/0 trust" >> "$PGDATA/pg_hba.conf"
  echo "host all all ::/0 trust" >> "$PGDATA/pg_hba.conf"
fi
if [ "$1" = postgres ]; then shift; fi
exec "$BINDIR/postgres" -D "$PGDATA" -c listen_addresses='*' -k /tmp "$@"
"#;

pub fn run(args: &Args) -> anyhow::Result<u8> {
    let started = Instant::now();
    let binaries = PgBinaries::find().map_err(anyhow::Error::msg)?;
    let stage = tempfile::Builder::new()
        .prefix("bookproof-pg-image-")
        .tempdir()
        .context("creating a staging directory")?;
    // initdb runs as the postgres user: it must reach the data directory.
    std::fs::set_permissions(
        stage.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let root = stage.path().join("root");
    let (uid, gid) = postgres_ids();
    stage_root(&root, &binaries, uid, gid)?;
    import(&root, &args.tag)?;
    println!(
        "built {} from {} in {:.1} s",
        args.tag,
        binaries.bindir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(crate::exit::OK)
}

/// The server's install (bindir's parent: bin and lib), its shared files, every library
/// they load, /bin/sh, the user, the entrypoint and the writable directories.
fn stage_root(root: &Path, binaries: &PgBinaries, uid: u32, gid: u32) -> anyhow::Result<()> {
    std::fs::create_dir_all(root).context("creating the image's root")?;
    let install = binaries
        .bindir
        .parent()
        .context("the server's bindir has no parent")?
        .to_owned();
    let share = share_dir(binaries)?;
    let mut copies = vec![install.clone(), share, PathBuf::from("/usr/share/zoneinfo")];

    let mut elves: Vec<PathBuf> = files_under(&install);
    elves.push(PathBuf::from("/bin/sh"));
    copies.extend(libraries(&elves)?);
    for source in &copies {
        copy_into(root, source)?;
    }
    // /bin/sh as the shell initdb and the entrypoint run.
    let shell = root.join("bin");
    std::fs::create_dir_all(&shell)?;
    std::fs::copy("/bin/sh", shell.join("sh")).context("copying /bin/sh")?;
    write_files(root, &binaries.bindir, uid, gid)
}

fn write_files(root: &Path, bindir: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root.join("etc"))?;
    std::fs::write(
        root.join("etc/passwd"),
        format!("root:x:0:0:root:/root:/bin/sh\npostgres:x:{uid}:{gid}:PostgreSQL:/var/lib/postgresql:/bin/sh\n"),
    )?;
    std::fs::write(
        root.join("etc/group"),
        format!("root:x:0:\npostgres:x:{gid}:\n"),
    )?;
    let entrypoint = root.join("entrypoint");
    std::fs::write(
        &entrypoint,
        ENTRYPOINT.replace("@BINDIR@", &bindir.display().to_string()),
    )?;
    std::fs::set_permissions(&entrypoint, std::fs::Permissions::from_mode(0o755))?;
    let tmp = root.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))?;
    let home = root.join("var/lib/postgresql");
    std::fs::create_dir_all(&home)?;
    std::os::unix::fs::chown(&home, Some(uid), Some(gid))
        .context("handing the data directory to postgres")?;
    initialise(&home.join("data"), bindir, uid, gid)
}

/// The cluster, initialised here at build time (in a container initdb takes seconds
/// more), exactly as the entrypoint would: trust authentication, reachable from outside.
fn initialise(data: &Path, bindir: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut initdb = Command::new(bindir.join("initdb"));
    initdb
        .arg("-D")
        .arg(data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdout(Stdio::null());
    if harness::database::is_root() {
        // PostgreSQL refuses to run as root.
        initdb.uid(uid).gid(gid);
    }
    let status = initdb.status().context("running initdb")?;
    if !status.success() {
        bail!("initdb failed ({status})");
    }
    let hba = data.join("pg_hba.conf");
    let mut rules = std::fs::read_to_string(&hba).context("reading pg_hba.conf")?;
    rules.push_str("host all all 0.0.0.0/0 trust\nhost all all ::/0 trust\n");
    std::fs::write(&hba, rules).context("writing pg_hba.conf")?;
    Ok(())
}

/// The shared files: the distributions' place for the server's version
/// (`/usr/lib/postgresql/N` -> `/usr/share/postgresql/N`), else `share` beside the bindir's
/// parent (a source build's layout).
fn share_dir(binaries: &PgBinaries) -> anyhow::Result<PathBuf> {
    let install = binaries.bindir.parent().context("bindir has no parent")?;
    if let Some(version) = install.file_name().and_then(|name| name.to_str()) {
        let distribution = PathBuf::from("/usr/share/postgresql").join(version);
        if distribution.join("postgres.bki").is_file() {
            return Ok(distribution);
        }
    }
    let beside = install.join("share");
    if beside.join("postgres.bki").is_file() {
        return Ok(beside);
    }
    bail!(
        "cannot find the server's shared files (postgres.bki) for {}",
        binaries.bindir.display()
    )
}

/// Every file below `directory`, at any depth (unreadable directories are passed over).
pub fn files_under(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_owned()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file() {
                files.push(path);
            }
        }
    }
    files
}

/// Every shared library `ldd` says the ELF files among `files` load (other files are
/// not dynamic executables and are passed over).
fn libraries(files: &[PathBuf]) -> anyhow::Result<BTreeSet<PathBuf>> {
    let mut found = BTreeSet::new();
    for file in files {
        let is_elf = std::fs::read(file).is_ok_and(|bytes| bytes.starts_with(b"\x7fELF"));
        if !is_elf {
            continue;
        }
        let output = Command::new("ldd")
            .arg(file)
            .output()
            .context("running ldd")?;
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let path = match line.split_once("=>") {
                Some((_, target)) => target.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(path) = path.filter(|path| path.starts_with('/')) {
                found.insert(PathBuf::from(path));
            }
        }
    }
    Ok(found)
}

/// Copies `source` (a file, or a directory with everything in it) to the same path under
/// `root`, symbolic links followed (a library's link becomes the library).
fn copy_into(root: &Path, source: &Path) -> anyhow::Result<()> {
    let status = Command::new("cp")
        .args(["-rL", "--parents"])
        .arg(source)
        .arg(root)
        .status()
        .context("running cp")?;
    if !status.success() {
        bail!("copying {} into the image failed", source.display());
    }
    Ok(())
}

/// `tar` of the root, numeric owners kept, piped into `docker import`.
fn import(root: &Path, tag: &str) -> anyhow::Result<()> {
    let mut tar = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar")?;
    let archive = tar.stdout.take().context("tar's output")?;
    let imported = Command::new("docker")
        .args([
            "import",
            "--change",
            "USER postgres",
            "--change",
            "ENTRYPOINT [\"/entrypoint\"]",
            "--change",
            "CMD [\"postgres\"]",
            "--change",
            "EXPOSE 5432",
            // The data on a volume (filled from the image when the container is made),
            // not in the container's layered file system: several times faster, and it
            // survives `docker kill` + `docker start`. Removed with the container.
            "--change",
            "VOLUME [\"/var/lib/postgresql/data\"]",
            "-",
            tag,
        ])
        .stdin(archive)
        .stdout(Stdio::null())
        .status()
        .context("running docker import (is a Docker engine running?)")?;
    let tarred = tar.wait().context("waiting for tar")?;
    if !tarred.success() || !imported.success() {
        bail!("building the image failed: tar {tarred}, docker import {imported}");
    }
    Ok(())
}

/// The uid and gid the image's `postgres` user gets: this machine's, else 999.
fn postgres_ids() -> (u32, u32) {
    harness::database::user_ids("postgres").unwrap_or((999, 999))
}
