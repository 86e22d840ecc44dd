//! The crash gate's machinery: learn every crash site of a scenario, crash at one, and
//! compare the recovered book with the uninterrupted one.

use book::crash::CrashSite;
use book::CrashPlan;
use serde_json::Value as Json;

use crate::case::{Case, Failure};
use crate::dump::Dump;
use crate::runner::{self, Run};
use crate::scenario::Step;
use crate::seed::Seed;

/// `--crash-at POINT#HIT`: only that site.
pub const CRASH_AT_ENV: &str = "BOOKPROOF_CRASH_AT";
/// `--crash-sites N`: at most N sites per scenario (evenly spread), for long sweeps.
pub const CRASH_SITES_ENV: &str = "BOOKPROOF_CRASH_SITES";

/// Columns that legitimately differ between a recovered book and the uninterrupted one.
/// Nothing else is excluded.
pub const EXCLUDED_COLUMNS: &[(&str, &str, &str)] = &[(
    "runs",
    "last_seq",
    "recovery appends its own events (category recovery), so the log is longer by exactly those",
)];

/// Runs `steps` uninterrupted, in this process, with a recording plan: the reference book,
/// every crash site it passed in order, and the SIGKILL sites (one after each venue reply)
/// that the same run has in a `book` process.
pub fn uninterrupted(
    template: &Case,
    seed: Seed,
    steps: &[Step],
) -> Result<Uninterrupted, Failure> {
    let mut case = runner::fresh_case(template, seed)?;
    case.process = false;
    let plan = CrashPlan::recording();
    let run = runner::run_with_plan(&case, steps, Some(&plan))?;
    let sigkill_sites = (1..=case.venue.calls())
        .map(|hit| CrashSite {
            point: crate::process::SIGKILL_POINT.to_owned(),
            hit: u32::try_from(hit).unwrap_or(u32::MAX),
        })
        .collect();
    Ok(Uninterrupted {
        run,
        sites: plan.passed(),
        sigkill_sites,
    })
}

#[derive(Debug)]
pub struct Uninterrupted {
    pub run: Run,
    /// Crash points the book passed, in order.
    pub sites: Vec<CrashSite>,
    /// One SIGKILL site per venue call the run made.
    pub sigkill_sites: Vec<CrashSite>,
}

/// The sites to crash at: `--crash-at` if given, else all of them, thinned evenly to
/// `--crash-sites` if given.
pub fn selected(sites: Vec<CrashSite>) -> Result<Vec<CrashSite>, Failure> {
    if let Ok(text) = std::env::var(CRASH_AT_ENV) {
        let site: CrashSite = text.parse().map_err(Failure)?;
        return Ok(vec![site]);
    }
    let Ok(text) = std::env::var(CRASH_SITES_ENV) else {
        return Ok(sites);
    };
    let limit: usize = text
        .trim()
        .parse()
        .ok()
        .filter(|limit| *limit >= 1)
        .ok_or_else(|| {
            Failure(format!(
                "{CRASH_SITES_ENV}={text:?}: expected a positive number"
            ))
        })?;
    if sites.len() <= limit {
        return Ok(sites);
    }
    Ok((0..limit)
        .map(|index| sites[index * sites.len() / limit].clone())
        .collect())
}

/// Runs `steps` on a fresh database, crashing once at `site`.
pub fn crashed_at(
    template: &Case,
    seed: Seed,
    steps: &[Step],
    site: &CrashSite,
) -> Result<Run, Failure> {
    let case = runner::fresh_case(template, seed)?;
    let plan = CrashPlan::armed(site.clone());
    let run = runner::run_with_plan(&case, steps, Some(&plan))?;
    if run.crashed_at.as_ref() != Some(site) {
        return Err(Failure(format!(
            "the rerun never reached crash site {site}: the run is not deterministic\ntrace:\n{}",
            run.trace.join("\n")
        )));
    }
    Ok(run)
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
