//! Every `BOOKPROOF_*` variable, parsed once and validated, into [`Settings`]. `cargo xtask`
//! sets them from its flags; a bare `cargo nextest run` reads the user's. A bad value is a
//! usage error that names the variable and the accepted form. The same struct renders the
//! one command that reruns a case ([`Repro`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

use book::Mutant;
use protocol::CrashSite;

use crate::secret::SecretUrl;
use crate::seed::Seed;

pub const SEED: &str = "BOOKPROOF_SEED";
pub const SEEDS: &str = "BOOKPROOF_SEEDS";
pub const STEPS: &str = "BOOKPROOF_STEPS";
pub const CRASH_AT: &str = "BOOKPROOF_CRASH_AT";
pub const CRASH_SITES: &str = "BOOKPROOF_CRASH_SITES";
pub const CRASH_IN_RECOVERY: &str = "BOOKPROOF_CRASH_IN_RECOVERY";
pub const FAULT_AT: &str = "BOOKPROOF_FAULT_AT";
pub const MUTANT: &str = "BOOKPROOF_MUTANT";
pub const SUBJECT: &str = "BOOKPROOF_SUBJECT";
pub const REQUIRE_POSTGRES: &str = "BOOKPROOF_REQUIRE_POSTGRES";
pub const PG_URL: &str = "BOOKPROOF_PG_URL";
pub const PG_UNAVAILABLE: &str = "BOOKPROOF_PG_UNAVAILABLE";
pub const PG_IMAGE: &str = "BOOKPROOF_PG_IMAGE";
/// Which provider served the run's server (`cargo xtask` hands it to the test processes).
pub const PG_PROVIDER: &str = "BOOKPROOF_PG_PROVIDER";
/// Only the crash gate's cases of this crash mode run (`--crash-mode`).
pub const CRASH_MODE: &str = "BOOKPROOF_CRASH_MODE";
pub const RESULTS_DIR: &str = "BOOKPROOF_RESULTS_DIR";
pub const BOOK_BIN: &str = "BOOKPROOF_BOOK_BIN";
pub const OUT_DIR: &str = "BOOKPROOF_OUT_DIR";
/// Where cases' SQLite files live (default: `/dev/shm` where it exists, see
/// `database/sqlite.rs`).
pub const SQLITE_DIR: &str = "BOOKPROOF_SQLITE_DIR";

/// Every variable this module reads, for `--help` texts and checks.
pub const ALL: &[&str] = &[
    SEED,
    SEEDS,
    STEPS,
    CRASH_AT,
    CRASH_SITES,
    CRASH_IN_RECOVERY,
    FAULT_AT,
    MUTANT,
    SUBJECT,
    REQUIRE_POSTGRES,
    PG_URL,
    PG_UNAVAILABLE,
    PG_IMAGE,
    PG_PROVIDER,
    CRASH_MODE,
    RESULTS_DIR,
    BOOK_BIN,
    OUT_DIR,
    SQLITE_DIR,
];

/// The seed a case uses when none is given.
pub const DEFAULT_SEED: Seed = Seed(0x5eed_b00c_0000_0001);
/// The most steps a scenario may be given.
pub const STEPS_MAX: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub seed: Seed,
    /// Seeds a sweep runs; each gate has its own default.
    pub seeds: Option<u64>,
    /// The most steps a generated scenario has; each gate has its own default.
    pub steps: Option<usize>,
    /// The crash gate crashes only here.
    pub crash_at: Option<CrashSite>,
    /// The crash gate crashes at most this many sites per scenario, evenly spread.
    pub crash_sites: Option<usize>,
    /// With `crash_at`: the recovery after that crash crashes again, here.
    pub crash_in_recovery: Option<CrashSite>,
    /// The failure-cascade gate injects only this store fault.
    pub fault_at: Option<crate::faults::FaultCase>,
    /// Run ordinary checks against this mutant (to watch a gate catch it).
    pub mutant: Option<Mutant>,
    /// How cases run the book by default.
    pub subject: SubjectKind,
    /// Fail instead of skipping when PostgreSQL cannot be had.
    pub require_postgres: bool,
    pub pg_url: Option<SecretUrl>,
    /// Why `cargo xtask` found no PostgreSQL server (so no test process searches again).
    pub pg_unavailable: Option<String>,
    /// The image the Docker provider runs (default: the official `postgres:16`).
    pub pg_image: Option<String>,
    /// Which provider served the run's server.
    pub pg_provider: Option<crate::database::postgres::Provider>,
    /// Only the crash gate's cases of this mode run.
    pub crash_mode: Option<crate::crash::CrashMode>,
    /// Where each case writes its JSON record.
    pub results_dir: Option<PathBuf>,
    /// The `book` binary (or a book in another language speaking the protocol).
    pub book_bin: Option<PathBuf>,
    /// Where `cargo xtask` writes its reports (default `target/bookproof`).
    pub out_dir: Option<PathBuf>,
    /// Where cases' SQLite files live.
    pub sqlite_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is not valid: expected {expected}")]
pub struct BadSetting {
    pub variable: &'static str,
    pub value: String,
    pub expected: String,
}

impl Settings {
    /// The settings of this process's environment, parsed on first use. A bad value panics
    /// with the variable's name and accepted form: in a test process it is a usage error
    /// that no check could pass (`cargo xtask` validates the environment before it starts
    /// any test and exits 2 instead).
    pub fn get() -> &'static Settings {
        static SETTINGS: OnceLock<Settings> = OnceLock::new();
        SETTINGS.get_or_init(|| {
            Settings::from_lookup(|name| std::env::var(name).ok())
                .unwrap_or_else(|error| panic!("bad bookproof setting: {error}"))
        })
    }

    /// The settings `lookup` gives (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings, BadSetting> {
        let read = |variable: &'static str| lookup(variable).map(|value| (variable, value));
        Ok(Settings {
            seed: read(SEED)
                .map(parse_seed)
                .transpose()?
                .unwrap_or(DEFAULT_SEED),
            seeds: read(SEEDS)
                .map(|(variable, value)| positive(variable, &value, u64::MAX))
                .transpose()?,
            steps: read(STEPS)
                .map(|(variable, value)| {
                    positive(variable, &value, STEPS_MAX as u64).map(|steps| steps as usize)
                })
                .transpose()?,
            crash_at: read(CRASH_AT).map(parse_crash_site).transpose()?,
            crash_in_recovery: read(CRASH_IN_RECOVERY).map(parse_crash_site).transpose()?,
            fault_at: read(FAULT_AT)
                .map(|(variable, value)| {
                    value.parse().map_err(|reason: String| {
                        bad(variable, &value, format!("FAULT@SITE ({reason})"))
                    })
                })
                .transpose()?,
            crash_sites: read(CRASH_SITES)
                .map(|(variable, value)| {
                    positive(variable, &value, u32::MAX.into()).map(|sites| sites as usize)
                })
                .transpose()?,
            mutant: read(MUTANT).map(parse_mutant).transpose()?,
            subject: read(SUBJECT)
                .map(parse_subject)
                .transpose()?
                .unwrap_or_default(),
            require_postgres: read(REQUIRE_POSTGRES)
                .map(parse_flag)
                .transpose()?
                .unwrap_or(false),
            pg_url: read(PG_URL).map(parse_url).transpose()?,
            pg_unavailable: lookup(PG_UNAVAILABLE),
            pg_image: lookup(PG_IMAGE).filter(|image| !image.trim().is_empty()),
            pg_provider: read(PG_PROVIDER)
                .map(|(variable, value)| {
                    crate::database::postgres::Provider::parse(&value)
                        .ok_or_else(|| bad(variable, &value, "url, docker or local"))
                })
                .transpose()?,
            crash_mode: read(CRASH_MODE)
                .map(|(variable, value)| {
                    crate::crash::CrashMode::parse(&value)
                        .ok_or_else(|| bad(variable, &value, "unwind, abort, sigkill or server"))
                })
                .transpose()?,
            results_dir: lookup(RESULTS_DIR).map(PathBuf::from),
            book_bin: lookup(BOOK_BIN).map(PathBuf::from),
            out_dir: lookup(OUT_DIR).map(PathBuf::from),
            sqlite_dir: lookup(SQLITE_DIR)
                .filter(|dir| !dir.trim().is_empty())
                .map(PathBuf::from),
        })
    }

    /// The command that reruns `test` exactly, with these settings.
    pub fn repro(&self, gate: &str, backend: book::Backend, test: &str, seed: Seed) -> Repro {
        Repro {
            gate: gate.to_owned(),
            backend,
            test: test.to_owned(),
            seed,
            steps: self.steps,
            seeds: self.seeds,
            crash_at: self.crash_at.clone(),
            crash_in_recovery: self.crash_in_recovery.clone(),
            fault_at: self.fault_at.clone(),
            mutant: self.mutant,
            subject: self.subject,
        }
    }
}

fn bad(variable: &'static str, value: &str, expected: impl Into<String>) -> BadSetting {
    BadSetting {
        variable,
        value: value.to_owned(),
        expected: expected.into(),
    }
}

fn parse_seed((variable, value): (&'static str, String)) -> Result<Seed, BadSetting> {
    value.parse().map_err(|_| {
        bad(
            variable,
            &value,
            "up to 16 hex digits, optionally prefixed with 0x (for example 0x00000000deadbeef)",
        )
    })
}

fn positive(variable: &'static str, value: &str, max: u64) -> Result<u64, BadSetting> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|number| (1..=max).contains(number))
        .ok_or_else(|| bad(variable, value, format!("a whole number from 1 to {max}")))
}

fn parse_crash_site((variable, value): (&'static str, String)) -> Result<CrashSite, BadSetting> {
    value
        .parse()
        .map_err(|reason: String| bad(variable, &value, format!("POINT#HIT ({reason})")))
}

fn parse_mutant((variable, value): (&'static str, String)) -> Result<Mutant, BadSetting> {
    Mutant::parse(value.trim()).ok_or_else(|| {
        let known: Vec<&str> = Mutant::ALL.iter().map(|mutant| mutant.name()).collect();
        bad(variable, &value, format!("one of {}", known.join(", ")))
    })
}

fn parse_subject((variable, value): (&'static str, String)) -> Result<SubjectKind, BadSetting> {
    SubjectKind::parse(value.trim()).ok_or_else(|| bad(variable, &value, "in-process or process"))
}

fn parse_flag((variable, value): (&'static str, String)) -> Result<bool, BadSetting> {
    match value.trim() {
        "1" | "true" => Ok(true),
        "0" | "false" | "" => Ok(false),
        _ => Err(bad(variable, &value, "1 or 0")),
    }
}

fn parse_url((variable, value): (&'static str, String)) -> Result<SecretUrl, BadSetting> {
    let url = SecretUrl::new(value.trim());
    if url.expose().is_empty() {
        // Shown redacted: the value may be a URL with a password in it.
        return Err(BadSetting {
            variable,
            value: String::new(),
            expected: "a postgres:// URL of a server the harness may create databases on".into(),
        });
    }
    Ok(url)
}

/// How a case runs the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectKind {
    /// The reference book in this process: crashes unwind at crash points.
    #[default]
    InProcess,
    /// A `book` process over the line protocol: crashes are real process deaths.
    Process,
}

impl SubjectKind {
    pub fn name(self) -> &'static str {
        match self {
            SubjectKind::InProcess => "in-process",
            SubjectKind::Process => "process",
        }
    }

    pub fn parse(name: &str) -> Option<SubjectKind> {
        [SubjectKind::InProcess, SubjectKind::Process]
            .into_iter()
            .find(|kind| kind.name() == name)
    }
}

/// The one command that reruns a case: `cargo xtask repro GATE --backend B --test NAME
/// --seed HEX` and whatever else the case ran with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repro {
    pub gate: String,
    pub backend: book::Backend,
    pub test: String,
    pub seed: Seed,
    pub steps: Option<usize>,
    /// A sweep's size: which seeds each of its parts runs depends on it.
    pub seeds: Option<u64>,
    pub crash_at: Option<CrashSite>,
    pub crash_in_recovery: Option<CrashSite>,
    pub fault_at: Option<crate::faults::FaultCase>,
    pub mutant: Option<Mutant>,
    pub subject: SubjectKind,
}

impl Repro {
    pub fn with_test(mut self, test: &str) -> Repro {
        self.test = test.to_owned();
        self
    }

    pub fn with_seed(mut self, seed: Seed) -> Repro {
        self.seed = seed;
        self
    }

    pub fn with_crash_at(mut self, site: &CrashSite) -> Repro {
        self.crash_at = Some(site.clone());
        self
    }

    pub fn with_crash_in_recovery(mut self, site: Option<&CrashSite>) -> Repro {
        self.crash_in_recovery = site.cloned();
        self
    }

    pub fn with_fault_at(mut self, fault: &crate::faults::FaultCase) -> Repro {
        self.fault_at = Some(fault.clone());
        self
    }
    pub fn with_mutant(mut self, mutant: Option<Mutant>) -> Repro {
        self.mutant = mutant;
        self
    }
}

impl fmt::Display for Repro {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "cargo xtask repro {} --backend {} --test {} --seed {}",
            self.gate, self.backend, self.test, self.seed
        )?;
        if let Some(steps) = self.steps {
            write!(formatter, " --steps {steps}")?;
        }
        if let Some(seeds) = self.seeds {
            write!(formatter, " --seeds {seeds}")?;
        }
        if let Some(site) = &self.crash_at {
            write!(formatter, " --crash-at '{site}'")?;
        }
        if let Some(site) = &self.crash_in_recovery {
            write!(formatter, " --crash-in-recovery '{site}'")?;
        }
        if let Some(fault) = &self.fault_at {
            write!(formatter, " --fault-at '{fault}'")?;
        }
        if let Some(mutant) = self.mutant {
            write!(formatter, " --mutant {}", mutant.name())?;
        }
        if self.subject != SubjectKind::default() {
            write!(formatter, " --subject {}", self.subject.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, BadSetting> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_with_an_empty_environment() {
        let settings = settings(&[]).expect("valid");
        assert_eq!(settings.seed, DEFAULT_SEED);
        assert_eq!(settings.steps, None);
        assert_eq!(settings.subject, SubjectKind::InProcess);
        assert!(!settings.require_postgres);
    }

    #[test]
    fn every_bad_value_names_its_variable_and_the_accepted_form() {
        for (variable, value, expected) in [
            (SEED, "zz", "hex digits"),
            (SEEDS, "0", "whole number"),
            (STEPS, "10001", "from 1 to 10000"),
            (CRASH_AT, "confirm", "POINT#HIT"),
            (CRASH_SITES, "-1", "whole number"),
            (MUTANT, "nope", "blind-replace-on-recovery"),
            (SUBJECT, "remote", "in-process or process"),
            (REQUIRE_POSTGRES, "yes", "1 or 0"),
            (PG_URL, " ", "postgres:// URL"),
        ] {
            let error = settings(&[(variable, value)]).expect_err(variable);
            assert_eq!(error.variable, variable);
            assert!(
                error.to_string().contains(variable) && error.expected.contains(expected),
                "{variable}: {error}"
            );
        }
    }

    #[test]
    fn the_repro_command_carries_every_setting_it_needs() {
        let settings = settings(&[
            (STEPS, "40"),
            (SEEDS, "200"),
            (CRASH_AT, "confirm.before_commit#2"),
            (MUTANT, "confirm-split-in-two"),
            (SUBJECT, "process"),
        ])
        .expect("valid");
        let repro = settings.repro("crash", book::Backend::embedded(), "a_case", Seed(7));
        assert_eq!(
            repro.to_string(),
            "cargo xtask repro crash --backend sqlite --test a_case --seed 0x0000000000000007 \
                          --steps 40 --seeds 200 --crash-at 'confirm.before_commit#2' --mutant confirm-split-in-two --subject process"
        );
    }
}
