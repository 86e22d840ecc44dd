//! The crash gate's machinery: how a crash happens ([`CrashMode`]), learning every crash
//! site of a scenario, crashing at one, and comparing the recovered book with the
//! uninterrupted one.

use book::{CrashPlan, Firing};
use protocol::{CrashPoint, CrashSite};
use serde_json::Value as Json;
use sha2::Digest as _;

use crate::case::{check, Case, Failure};
use crate::dump::Dump;
use crate::runner::{self, Crashes, Run};
use crate::scenario::{Scenario, Step};
use crate::seed::Seed;
use crate::settings::Settings;
use crate::subject::SubjectKind;
use crate::venue::Fault;

/// How a crash happens. Each mode learns its sites from an uninterrupted run and runs on
/// the subject kind it needs. (Room for the next modes: killing the database server under
/// the book, and power loss on SQLite.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// In process: the armed crash point returns `Crashed` and the stack unwinds; open
    /// transactions roll back as the book and its connections are dropped.
    Unwind,
    /// A `book` process aborts at the armed crash point: no destructor, rollback or flush
    /// runs.
    Abort,
    /// The harness SIGKILLs a `book` process right after answering a venue call, wherever
    /// the book is.
    Sigkill,
    /// The harness SIGKILLs the PostgreSQL server under the book (the postmaster and its
    /// backends, or the container) at a store operation, restarts it on the same data
    /// with fsync on, and the book reconnects or fails cleanly, then recovers.
    Server,
}

impl CrashMode {
    pub const ALL: [CrashMode; 4] = [
        CrashMode::Unwind,
        CrashMode::Abort,
        CrashMode::Sigkill,
        CrashMode::Server,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CrashMode::Unwind => "unwind",
            CrashMode::Abort => "abort",
            CrashMode::Sigkill => "sigkill",
            CrashMode::Server => "server",
        }
    }

    pub fn parse(name: &str) -> Option<CrashMode> {
        CrashMode::ALL.into_iter().find(|mode| mode.name() == name)
    }

    /// The subject a crash of this mode needs.
    pub fn subject(self) -> SubjectKind {
        match self {
            CrashMode::Unwind | CrashMode::Server => SubjectKind::InProcess,
            CrashMode::Abort | CrashMode::Sigkill => SubjectKind::Process,
        }
    }

    /// The sites of this mode in an uninterrupted run. A server crash strikes at a store
    /// operation instead (a `server_crash` fault site): none here.
    pub fn sites(self, uninterrupted: &Uninterrupted) -> Vec<CrashSite> {
        match self {
            CrashMode::Server => Vec::new(),
            CrashMode::Unwind | CrashMode::Abort => uninterrupted.sites.clone(),
            CrashMode::Sigkill => (1..=uninterrupted.venue_calls)
                .map(|hit| CrashSite {
                    point: CrashPoint::AfterVenueReply,
                    hit: u32::try_from(hit).unwrap_or(u32::MAX),
                })
                .collect(),
        }
    }
}

/// Columns that legitimately differ between a recovered book and the uninterrupted one.
/// Nothing else is excluded.
pub const EXCLUDED_COLUMNS: &[(&str, &str, &str)] = &[(
    "runs",
    "last_seq",
    "recovery appends its own events (category recovery), so the log is longer by exactly those",
)];

/// Second crashes tried inside the recovery after each first crash, at most.
pub const RECOVERY_SITES_MAX: usize = 2;

/// Runs `scenario` uninterrupted: once on the reference book in this process with a
/// recording plan (every crash site it passes, and how many venue calls it makes: where
/// the crashed runs crash), and, when the case's subject is not that book (a mutant, a
/// process), once more on the subject itself (what its crashed runs must end equal to).
/// Learning the sites from the reference book means every crashed run exercises the
/// subject under test.
pub fn uninterrupted(
    template: &Case,
    seed: Seed,
    scenario: &Scenario,
) -> Result<Uninterrupted, Failure> {
    let mut reference = template.fresh(seed)?;
    reference.subject = SubjectKind::InProcess;
    reference.mutant = None;
    let plan = CrashPlan::recording();
    let crashes = Crashes {
        plan: Some(plan.clone()),
        ..Crashes::default()
    };
    let reference_run = runner::run_with(&reference, scenario, &crashes)?;
    let run = if template.mutant.is_none() && template.subject == SubjectKind::InProcess {
        reference_run
    } else {
        runner::run_scenario(&template.fresh(seed)?, scenario)?
    };
    Ok(Uninterrupted {
        run,
        sites: plan.passed(),
        venue_calls: reference.venue.calls(),
    })
}

#[derive(Debug)]
pub struct Uninterrupted {
    /// The subject's uninterrupted run.
    pub run: Run,
    /// Crash points the reference book passed, in order.
    pub sites: Vec<CrashSite>,
    /// Venue calls the reference book made: one SIGKILL site after each reply.
    pub venue_calls: u64,
}

/// The sites to crash at: `--crash-at` if given (and among `sites`), else all of them,
/// thinned evenly to `--crash-sites` if given.
pub fn selected(sites: Vec<CrashSite>) -> Result<Vec<CrashSite>, Failure> {
    let settings = Settings::get();
    if let Some(site) = &settings.crash_at {
        return reached(site, &sites).map(|()| vec![site.clone()]);
    }
    Ok(match settings.crash_sites {
        Some(limit) => thinned(sites, limit),
        None => sites,
    })
}

/// `Err` ([`check::UNKNOWN_SITE`]) unless the run reaches `site`: a site given by hand
/// that the case never passes names nothing to crash at.
pub fn reached(site: &CrashSite, sites: &[CrashSite]) -> Result<(), Failure> {
    if sites.contains(site) {
        return Ok(());
    }
    let shown: Vec<String> = sites.iter().take(12).map(ToString::to_string).collect();
    let more = if sites.len() > shown.len() {
        format!(", ... ({} in all)", sites.len())
    } else {
        String::new()
    };
    Err(Failure::new(
        check::UNKNOWN_SITE,
        format!(
            "crash site {site} is never reached by this case's run; the sites it passes are: {}{more}",
            shown.join(", ")
        ),
    ))
}

/// At most `limit` of `sites` (crash sites, fault cases), evenly spread.
pub fn thinned<T: Clone>(sites: Vec<T>, limit: usize) -> Vec<T> {
    if sites.len() <= limit {
        return sites;
    }
    (0..limit)
        .map(|index| sites[index * sites.len() / limit].clone())
        .collect()
}

/// One crashed run: where, whether recovery crashes too, how long the book is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashCase {
    pub site: CrashSite,
    /// A second crash, at this site of the recovery that follows the first.
    pub in_recovery: Option<CrashSite>,
    pub downtime_ms: i64,
}

impl CrashCase {
    /// A crash at `site`; the seed decides how long the book stays down (none, a minute
    /// and a half, or across a day boundary), so sweeps cover all three.
    pub fn at(seed: Seed, site: CrashSite) -> CrashCase {
        let draw = sha2::Sha256::digest(format!("{seed}/{site}").as_bytes())[0] % 4;
        let downtime_ms = match draw {
            0 => book::clock::DAY_MS,
            1 => 90_000,
            _ => 0,
        };
        CrashCase {
            site,
            in_recovery: None,
            downtime_ms,
        }
    }
}

impl std::fmt::Display for CrashCase {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.site)?;
        if let Some(second) = &self.in_recovery {
            write!(formatter, " then {second} in the recovery")?;
        }
        if self.downtime_ms > 0 {
            write!(formatter, " (down {} ms)", self.downtime_ms)?;
        }
        Ok(())
    }
}

/// Runs `scenario` on a fresh database, crashing as `crash` says; without a second crash,
/// the restart's recovery is recorded, so that the run names its sites.
pub fn crashed_at(
    template: &Case,
    seed: Seed,
    scenario: &Scenario,
    crash: &CrashCase,
) -> Result<Run, Failure> {
    // A crash inside the migration needs a database that still migrates; any other starts
    // from one migrated already (the uninterrupted run it must equal migrated its own).
    let migrates = |site: &CrashSite| matches!(&site.point, protocol::CrashPoint::Commit { transaction, .. } if transaction == book::migrate::CRASH_NAME);
    let case = if migrates(&crash.site) || crash.in_recovery.as_ref().is_some_and(migrates) {
        template.fresh(seed)?
    } else {
        template.fresh_ready(seed)?
    };
    // A process subject crashes its own way (an abort, or the harness's SIGKILL); the
    // firing here is for the in-process book.
    let on_restart = match &crash.in_recovery {
        Some(second) => CrashPlan::armed(second.clone(), Firing::Unwind),
        None => CrashPlan::recording(),
    };
    let crashes = Crashes {
        plan: Some(CrashPlan::armed(crash.site.clone(), Firing::Unwind)),
        on_restart: Some(on_restart),
        downtime_ms: crash.downtime_ms,
        store_faults: None,
    };
    let run = runner::run_with(&case, scenario, &crashes)?;
    let expected = 1 + usize::from(crash.in_recovery.is_some());
    if run.crashed_at.len() != expected || run.crashed_at[0] != crash.site {
        return Err(Failure::harness(format!(
            "the rerun crashed at {:?}, not {crash}: the run is not deterministic\ntrace:\n{}",
            run.crashed_at,
            run.trace.join("\n")
        )));
    }
    Ok(run)
}

/// Whether a crashed run must end where the uninterrupted one did. Not when time passed
/// while the book was down (a trade may land on another day), nor when the scenario has a
/// venue fault that counts look-ups or exits (recovery's extra look-ups, or a re-delivered
/// evaluation's exits, use it up, so the venue answers later ones differently): there the
/// model is the oracle.
pub fn comparable_with_uninterrupted(scenario: &Scenario, crash: &CrashCase) -> bool {
    let counts_lookups = scenario.steps.iter().any(|step| {
        matches!(
            step,
            Step::Fault(
                Fault::LookupsFail { .. }
                    | Fault::AppearsLate
                    | Fault::FillsLate
                    | Fault::FillsScrambled
                    | Fault::ExitRefused
                    | Fault::ExitTimeout
            )
        )
    });
    crash.downtime_ms == 0 && !counts_lookups
}

/// The first difference between the recovered book and the uninterrupted one, apart from
/// [`EXCLUDED_COLUMNS`] and recovery's own events.
pub fn difference(uninterrupted: &Dump, recovered: &Dump) -> Option<String> {
    let (left, right) = (business_tables(uninterrupted), business_tables(recovered));
    if let Some(difference) = left.first_difference(&right) {
        return Some(difference);
    }
    let (left, right) = (
        comparable_events(uninterrupted),
        comparable_events(recovered),
    );
    for index in 0..left.len().max(right.len()) {
        if left.get(index) != right.get(index) {
            return Some(format!(
                "event log (recovery events set aside), entry {}:\n  uninterrupted: {}\n  recovered:     {}",
                index + 1,
                left.get(index).map_or("(none)", String::as_str),
                right.get(index).map_or("(none)", String::as_str)
            ));
        }
    }
    None
}

fn business_tables(dump: &Dump) -> Dump {
    let mut tables = Vec::new();
    for table in dump.tables.iter().filter(|table| table.name != "events") {
        let mut table = table.clone();
        for (excluded_table, column, _) in EXCLUDED_COLUMNS {
            if table.name == *excluded_table {
                if let Some(index) = table.column(column) {
                    table.columns.remove(index);
                    for row in &mut table.rows {
                        row.remove(index);
                    }
                }
            }
        }
        tables.push(table);
    }
    Dump { tables }
}

/// The event log without what recovery adds: a recovery release takes back the
/// reservation it undoes, the re-delivered reservation that follows counts as the original
/// (its `resubmitted` flag set aside), and a confirmation made by recovery counts as the
/// confirmation it stands for (its category set aside), and a re-delivered signal whose
/// earlier attempt the venue did not accept (429/503) and which meets the same answer again
/// appends the same reserve/release pair, counted once. Sequence numbers are left out:
/// recovery's events shift them.
fn comparable_events(dump: &Dump) -> Vec<String> {
    let events = dump.table("events");
    let mut kept: Vec<(String, String)> = Vec::new();
    for row in &events.rows {
        let kind = events.get(row, "type").as_text().unwrap_or_default();
        let category = events.get(row, "category").as_text().unwrap_or_default();
        let mut payload: Json =
            serde_json::from_str(events.get(row, "payload").as_text().unwrap_or_default())
                .unwrap_or(Json::Null);
        let intent_id = payload
            .get("intent_id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_owned();
        if category == book::events::category::RECOVERY && kind == "intent.released" {
            if let Some(index) = kept.iter().rposition(|(kept_intent, line)| {
                *kept_intent == intent_id && line.starts_with("intent.reserved ")
            }) {
                kept.remove(index);
            }
            continue;
        }
        if let Some(object) = payload.as_object_mut() {
            object.remove("resubmitted");
        }
        let ts = events.get(row, "ts").as_int().unwrap_or_default();
        kept.push((intent_id, format!("{kind} ts={ts} {payload}")));
        let length = kept.len();
        if length >= 4
            && kind == "intent.released"
            && kept[length - 4..length - 2] == kept[length - 2..]
        {
            kept.truncate(length - 2);
        }
    }
    kept.into_iter().map(|(_, line)| line).collect()
}
