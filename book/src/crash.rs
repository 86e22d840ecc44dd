//! Crash points: named places in the book where a crash changes what recovery must do.
//!
//! Compiled in always, inert unless a [`CrashPlan`] is given in `BookOptions`. A plan
//! either records every (point, hit) a run passes, or is armed to crash at the k-th hit of
//! one point. An armed point returns [`Crashed`], which unwinds to the caller: an open
//! transaction is dropped uncommitted (rolled back), exactly as a killed process leaves it.
//! A plan fires once, then goes inert, and counts hits across book restarts (clones share
//! it), so "the 3rd hit of confirm.before_commit" means the same place on every rerun.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Where around a commit the point sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    BeforeCommit,
    AfterCommit,
}

/// One crash site: the `hit`-th time (from 1) the run passes `point`.
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct CrashSite {
    pub point: String,
    pub hit: u32,
}

impl fmt::Display for CrashSite {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}#{}", self.point, self.hit)
    }
}

impl FromStr for CrashSite {
    type Err = String;

    /// `POINT#HIT`, as a failing crash case prints it (`confirm.before_commit#2`).
    fn from_str(text: &str) -> Result<CrashSite, String> {
        let (point, hit) = text.rsplit_once('#').ok_or_else(|| {
            format!(
                "crash site {text:?} must look like POINT#HIT, for example confirm.before_commit#2"
            )
        })?;
        let hit: u32 = hit
            .parse()
            .ok()
            .filter(|hit| *hit >= 1)
            .ok_or_else(|| format!("crash site {text:?}: HIT must be a positive number"))?;
        if point.is_empty() {
            return Err(format!("crash site {text:?} names no point"));
        }
        Ok(CrashSite {
            point: point.to_owned(),
            hit,
        })
    }
}

/// The book stopped at an armed crash point.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("crashed at {site} (armed crash point)")]
pub struct Crashed {
    pub site: CrashSite,
}

#[derive(Debug, Clone, Default)]
pub struct CrashPlan {
    state: Arc<Mutex<PlanState>>,
}

#[derive(Debug, Default)]
struct PlanState {
    armed: Option<CrashSite>,
    /// Fire by aborting the process (the `book` binary) instead of returning `Crashed`.
    abort: bool,
    hits: BTreeMap<String, u32>,
    passed: Vec<CrashSite>,
    fired: Option<CrashSite>,
}

impl CrashPlan {
    /// Records every site the run passes; never crashes.
    pub fn recording() -> CrashPlan {
        CrashPlan::default()
    }

    /// Crashes once, at `site`.
    pub fn armed(site: CrashSite) -> CrashPlan {
        let plan = CrashPlan::default();
        plan.lock().armed = Some(site);
        plan
    }

    /// Crashes once, at `site`, by aborting the whole process on the spot: no destructor,
    /// no rollback, no flush runs. For the `book` binary in process-crash tests.
    pub fn aborting(site: CrashSite) -> CrashPlan {
        let plan = CrashPlan::armed(site);
        plan.lock().abort = true;
        plan
    }

    /// The site the plan is armed for and has not fired at yet.
    pub fn armed_site(&self) -> Option<CrashSite> {
        self.lock().armed.clone()
    }

    /// Records that the armed site fired in another process (it aborted there).
    pub fn mark_fired(&self) {
        let mut state = self.lock();
        state.fired = state.armed.take();
    }

    fn lock(&self) -> MutexGuard<'_, PlanState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every site passed so far, in order.
    pub fn passed(&self) -> Vec<CrashSite> {
        self.lock().passed.clone()
    }

    /// The site the plan crashed at, if it has.
    pub fn fired(&self) -> Option<CrashSite> {
        self.lock().fired.clone()
    }

    pub(crate) fn hit(&self, name: &str, moment: Moment) -> Result<(), Crashed> {
        let point = match moment {
            Moment::BeforeCommit => format!("{name}.before_commit"),
            Moment::AfterCommit => format!("{name}.after_commit"),
        };
        self.point(point)
    }

    /// Passes the named point: counts it and crashes if the plan is armed for this hit.
    pub(crate) fn point(&self, point: String) -> Result<(), Crashed> {
        let mut state = self.lock();
        let hit = {
            let count = state.hits.entry(point.clone()).or_default();
            *count += 1;
            *count
        };
        let site = CrashSite { point, hit };
        state.passed.push(site.clone());
        if state.armed.as_ref() == Some(&site) {
            if state.abort {
                std::process::abort();
            }
            state.armed = None;
            state.fired = Some(site.clone());
            return Err(Crashed { site });
        }
        Ok(())
    }
}
