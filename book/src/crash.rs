//! Crash points: named places in the book where a crash changes what recovery must do.
//!
//! Compiled in always, inert unless a [`CrashPlan`] is given in `BookOptions`. A plan
//! either records every (point, hit) a run passes, or is armed to crash at the k-th hit of
//! one point. An armed point returns [`Crashed`], which unwinds to the caller: an open
//! transaction is dropped uncommitted (rolled back), exactly as a killed process leaves it.
//! An aborting plan kills the process on the spot instead. A plan fires once, then goes
//! inert, and counts hits across book restarts (clones share it), so "the 3rd hit of
//! confirm.before_commit" means the same place on every rerun.
//!
//! The points: [`commit`] passes `NAME.before_commit` and `NAME.after_commit` around every
//! write transaction of the book and of its migrations; `submit` passes `act.after_venue`
//! right after the venue call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use protocol::{CrashPoint, CrashSite, Moment};

use crate::store::{StoreError, Transaction};

/// The book stopped at an armed crash point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("crashed at {site} (armed crash point)")]
pub struct Crashed {
    pub site: CrashSite,
}

/// How an armed plan crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Firing {
    /// Return [`Crashed`] up the stack (in-process crash tests).
    #[default]
    Unwind,
    /// Abort the whole process on the spot: no destructor, rollback or flush runs.
    Abort,
}

#[derive(Debug, Clone, Default)]
pub struct CrashPlan {
    state: Arc<Mutex<PlanState>>,
}

#[derive(Debug, Default)]
struct PlanState {
    armed: Option<CrashSite>,
    firing: Firing,
    hits: BTreeMap<CrashPoint, u32>,
    passed: Vec<CrashSite>,
    fired: Option<CrashSite>,
}

impl CrashPlan {
    /// Records every site the run passes; never crashes.
    pub fn recording() -> CrashPlan {
        CrashPlan::default()
    }

    /// Crashes once, at `site`, as `firing` says.
    pub fn armed(site: CrashSite, firing: Firing) -> CrashPlan {
        let plan = CrashPlan::default();
        {
            let mut state = plan.lock();
            state.armed = Some(site);
            state.firing = firing;
        }
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

    /// Every site passed so far, in order.
    pub fn passed(&self) -> Vec<CrashSite> {
        self.lock().passed.clone()
    }

    /// The site the plan crashed at, if it has.
    pub fn fired(&self) -> Option<CrashSite> {
        self.lock().fired.clone()
    }

    fn lock(&self) -> MutexGuard<'_, PlanState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Passes `point`: counts it and crashes if the plan is armed for this hit.
    pub(crate) fn pass(&self, point: CrashPoint) -> Result<(), Crashed> {
        let mut state = self.lock();
        let hit = {
            let count = state.hits.entry(point.clone()).or_default();
            *count += 1;
            *count
        };
        let site = CrashSite { point, hit };
        state.passed.push(site.clone());
        if state.armed.as_ref() != Some(&site) {
            return Ok(());
        }
        if state.firing == Firing::Abort {
            std::process::abort();
        }
        state.armed = None;
        state.fired = Some(site.clone());
        Err(Crashed { site })
    }
}

/// Passes `point` if a plan is given.
pub(crate) fn pass(plan: Option<&CrashPlan>, point: CrashPoint) -> Result<(), Crashed> {
    plan.map_or(Ok(()), |plan| plan.pass(point))
}

/// Why [`commit`] did not commit.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crashed(#[from] Crashed),
}

/// Commits `transaction` between its two crash points, `NAME.before_commit` (the work is
/// done and nothing is committed: a crash rolls it back) and `NAME.after_commit`. The one
/// way the book and its migrations commit a write.
pub(crate) fn commit(
    transaction: Box<dyn Transaction + '_>,
    plan: Option<&CrashPlan>,
    name: &str,
) -> Result<(), CommitError> {
    // Returning early drops the open transaction: it rolls back, as after a real crash.
    pass(plan, CrashPoint::commit(name, Moment::BeforeCommit))?;
    transaction.commit()?;
    pass(plan, CrashPoint::commit(name, Moment::AfterCommit))?;
    Ok(())
}
