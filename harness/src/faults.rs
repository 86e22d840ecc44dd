//! Database faults through the `Store` seam. A [`FaultyStore`] wraps the book's store and
//! counts every operation (begin, execute, query, commit); a [`StoreFaultPlan`] either
//! records the sites a run passes, or fires one fault at one site: `commit#3`, the third
//! commit; or at the first statement that mentions a table. On PostgreSQL one fault is
//! real: the harness terminates the book's backend on the server right before a commit.
//!
//! Fault sites are printed and parsed as `FAULT@OP#HIT` (`outcome_unknown@commit#3`),
//! `FAULT@sql:TEXT` for the first statement containing TEXT (`timeout@sql:circuit_breaker`)
//! or `FAULT@commit_of:TEXT` for the commit of the first transaction that ran one.

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use book::store::{Backend, Isolation, Rows, Store, StoreError, Transaction, Value};

/// A store operation, as counted for fault sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreOp {
    Begin,
    Execute,
    Query,
    Commit,
}

impl StoreOp {
    const ALL: [StoreOp; 4] = [
        StoreOp::Begin,
        StoreOp::Execute,
        StoreOp::Query,
        StoreOp::Commit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StoreOp::Begin => "begin",
            StoreOp::Execute => "execute",
            StoreOp::Query => "query",
            StoreOp::Commit => "commit",
        }
    }
}

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StoreFault {
    /// At a commit: it fails and nothing is applied.
    FailedCommit,
    /// At a commit: it is applied, and the answer is that its outcome is unknown.
    OutcomeUnknown,
    /// At a statement: the connection is gone.
    ConnectionLost,
    /// At a statement: it is cancelled by the statement timeout.
    Timeout,
    /// At a statement: an integrity constraint refuses it.
    ConstraintError,
    /// From the site on, the database answers nothing for this many operations (locked, or
    /// away): neither the work nor what the book does about its failure can be written.
    Unavailable { operations: u32 },
    /// PostgreSQL only, at a commit: the harness terminates the book's backend on the
    /// server (`pg_terminate_backend`), then the commit goes to the dead connection.
    TerminateBackend,
    /// PostgreSQL only, on a server the case owns: the harness SIGKILLs the server (the
    /// postmaster and every backend, or the container), restarts it on the same data,
    /// then the operation goes to the dead connection (the crash gate's server mode).
    ServerCrash,
}

impl StoreFault {
    pub fn name(self) -> String {
        match self {
            StoreFault::FailedCommit => "failed_commit".to_owned(),
            StoreFault::OutcomeUnknown => "outcome_unknown".to_owned(),
            StoreFault::ConnectionLost => "connection_lost".to_owned(),
            StoreFault::Timeout => "timeout".to_owned(),
            StoreFault::ConstraintError => "constraint_error".to_owned(),
            StoreFault::Unavailable { operations } => format!("unavailable_{operations}"),
            StoreFault::TerminateBackend => "terminate_backend".to_owned(),
            StoreFault::ServerCrash => "server_crash".to_owned(),
        }
    }

    /// The faults that fit an operation.
    pub fn fitting(op: StoreOp, backend: Backend) -> Vec<StoreFault> {
        match op {
            StoreOp::Commit => {
                let mut faults = vec![StoreFault::FailedCommit, StoreFault::OutcomeUnknown];
                if backend == Backend::Postgres {
                    faults.push(StoreFault::TerminateBackend);
                }
                faults
            }
            StoreOp::Execute => vec![
                StoreFault::ConnectionLost,
                StoreFault::Timeout,
                StoreFault::ConstraintError,
            ],
            StoreOp::Query => vec![StoreFault::ConnectionLost, StoreFault::Timeout],
            StoreOp::Begin => vec![StoreFault::ConnectionLost],
        }
    }
}

impl FromStr for StoreFault {
    type Err = String;

    fn from_str(text: &str) -> Result<StoreFault, String> {
        if let Some(operations) = text.strip_prefix("unavailable_") {
            return operations
                .parse()
                .map(|operations| StoreFault::Unavailable { operations })
                .map_err(|_| format!("{text:?}: unavailable_N needs a number of operations"));
        }
        [
            StoreFault::FailedCommit,
            StoreFault::OutcomeUnknown,
            StoreFault::ConnectionLost,
            StoreFault::Timeout,
                        StoreFault::ConstraintError,
            StoreFault::TerminateBackend,
            StoreFault::ServerCrash,
        ]
        .into_iter()
        .find(|fault| fault.name() == text)
        .ok_or_else(|| format!("unknown store fault {text:?}: failed_commit, outcome_unknown, connection_lost, timeout, constraint_error, unavailable_N, terminate_backend or server_crash"))
    }
}

/// Where a fault fires.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultSite {
    /// The `hit`-th operation `op` of the run (from 1).
    Op { op: StoreOp, hit: u32 },
    /// The first statement that contains `text`.
    Sql { text: String },
    /// The commit of the first transaction that ran a statement containing `text`.
    CommitOf { text: String },
}

impl fmt::Display for FaultSite {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultSite::Op { op, hit } => write!(formatter, "{}#{hit}", op.name()),
            FaultSite::Sql { text } => write!(formatter, "sql:{text}"),
            FaultSite::CommitOf { text } => write!(formatter, "commit_of:{text}"),
        }
    }
}

/// One fault at one site: `FAULT@SITE`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FaultCase {
    pub fault: StoreFault,
    pub site: FaultSite,
}

impl fmt::Display for FaultCase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}@{}", self.fault.name(), self.site)
    }
}

impl FromStr for FaultCase {
    type Err = String;

    fn from_str(text: &str) -> Result<FaultCase, String> {
        let (fault, site) = text
            .trim()
            .split_once('@')
            .ok_or_else(|| format!("fault site {text:?} must look like FAULT@OP#HIT (outcome_unknown@commit#3), FAULT@sql:TEXT or FAULT@commit_of:TEXT"))?;
        let fault = fault.parse()?;
        if let Some(text) = site.strip_prefix("sql:").filter(|text| !text.is_empty()) {
            return Ok(FaultCase {
                fault,
                site: FaultSite::Sql {
                    text: text.to_owned(),
                },
            });
        }
        if let Some(text) = site
            .strip_prefix("commit_of:")
            .filter(|text| !text.is_empty())
        {
            return Ok(FaultCase {
                fault,
                site: FaultSite::CommitOf {
                    text: text.to_owned(),
                },
            });
        }
        let site =
            match site.split_once('#') {
                Some((op, hit)) => FaultSite::Op {
                    op: StoreOp::ALL
                        .into_iter()
                        .find(|candidate| candidate.name() == op)
                        .ok_or_else(|| {
                            format!("fault site {text:?}: OP is begin, execute, query or commit")
                        })?,
                    hit: hit.parse().ok().filter(|hit| *hit >= 1).ok_or_else(|| {
                        format!("fault site {text:?}: HIT must be a positive number")
                    })?,
                },
                None => {
                    return Err(format!(
                        "fault site {text:?} is not OP#HIT, sql:TEXT or commit_of:TEXT"
                    ))
                }
            };
        Ok(FaultCase { fault, site })
    }
}

/// What the harness does to the real server for `terminate_backend` (terminates the
/// book's connections) or `server_crash` (kills and restarts the server).
pub type Terminator = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone, Default)]
pub struct StoreFaultPlan {
    state: Arc<Mutex<PlanState>>,
}

#[derive(Default)]
struct PlanState {
    armed: Option<FaultCase>,
    hits: [u32; 4],
    passed: Vec<FaultSite>,
    fired: Option<FaultCase>,
    unavailable_left: u32,
    terminator: Option<Terminator>,
    /// A `CommitOf` site's statement ran: the next commit fires.
    commit_due: bool,
}

impl fmt::Debug for StoreFaultPlan {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        write!(
            formatter,
            "StoreFaultPlan(armed {:?}, fired {:?})",
            state.armed, state.fired
        )
    }
}

/// What a fault does to the operation in hand.
enum Effect {
    Pass,
    Fail(StoreError),
    /// Apply the commit, then answer that its outcome is unknown.
    ApplyThenUnknown,
}

impl StoreFaultPlan {
    /// Records every site the run passes; never fires.
    pub fn recording() -> StoreFaultPlan {
        StoreFaultPlan::default()
    }

    pub fn armed(case: FaultCase, terminator: Option<Terminator>) -> StoreFaultPlan {
        let plan = StoreFaultPlan::default();
        {
            let mut state = plan.lock();
            state.armed = Some(case);
            state.terminator = terminator;
        }
        plan
    }

    fn lock(&self) -> MutexGuard<'_, PlanState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every operation site passed so far.
    pub fn passed(&self) -> Vec<FaultSite> {
        self.lock().passed.clone()
    }

    /// The fault that fired, if one did.
    pub fn fired(&self) -> Option<FaultCase> {
        self.lock().fired.clone()
    }

    /// Stops every fault still pending (a restarted book meets a healthy database).
    pub fn disarm(&self) {
        let mut state = self.lock();
        state.armed = None;
        state.unavailable_left = 0;
    }

    fn pass(&self, op: StoreOp, sql: Option<&str>) -> Effect {
        let mut state = self.lock();
        if state.unavailable_left > 0 {
            state.unavailable_left -= 1;
            return Effect::Fail(StoreError::Connection {
                message: "injected: the database is unavailable".to_owned(),
            });
        }
        let index = StoreOp::ALL
            .iter()
            .position(|candidate| *candidate == op)
            .unwrap_or(0);
        state.hits[index] += 1;
        let site = FaultSite::Op {
            op,
            hit: state.hits[index],
        };
        state.passed.push(site.clone());
        let Some(armed) = state.armed.clone() else {
            return Effect::Pass;
        };
        let fires = match &armed.site {
            FaultSite::Op { .. } => armed.site == site,
            FaultSite::Sql { text } => sql.is_some_and(|sql| sql.contains(text.as_str())),
            FaultSite::CommitOf { text } => {
                if sql.is_some_and(|sql| sql.contains(text.as_str())) {
                    state.commit_due = true;
                }
                op == StoreOp::Commit && state.commit_due
            }
        };
        if !fires {
            return Effect::Pass;
        }
        state.armed = None;
        state.fired = Some(armed.clone());
        let terminator = state.terminator.clone();
        drop(state);
        self.effect(armed.fault, terminator)
    }

    fn effect(&self, fault: StoreFault, terminator: Option<Terminator>) -> Effect {
        let injected = |what: &str| format!("injected: {what}");
        match fault {
            StoreFault::FailedCommit => Effect::Fail(StoreError::Other {
                message: injected("the commit failed"),
            }),
            StoreFault::OutcomeUnknown => Effect::ApplyThenUnknown,
            StoreFault::ConnectionLost => Effect::Fail(StoreError::Connection {
                message: injected("the connection was lost"),
            }),
            StoreFault::Timeout => Effect::Fail(StoreError::Connection {
                message: injected("canceling statement due to statement timeout"),
            }),
            StoreFault::ConstraintError => Effect::Fail(StoreError::Constraint {
                message: injected("a constraint refused the statement"),
            }),
            StoreFault::Unavailable { operations } => {
                self.lock().unavailable_left = operations.saturating_sub(1);
                Effect::Fail(StoreError::Connection {
                    message: injected("the database is unavailable"),
                })
            }
            StoreFault::TerminateBackend | StoreFault::ServerCrash => {
                match terminator.map(|act| act()) {
                    // The operation goes on to the dead connection and fails there, for real.
                    Some(Ok(())) => Effect::Pass,
                    Some(Err(error)) => Effect::Fail(StoreError::Other {
                        message: format!("the harness could not {}: {error}", fault.name()),
                    }),
                    None => Effect::Fail(StoreError::Other {
                        message: format!("{} needs a PostgreSQL server", fault.name()),
                    }),
                }
            }
        }
    }
}

/// The book's store with a fault plan on its seam.
pub struct FaultyStore {
    inner: Box<dyn Store>,
    plan: StoreFaultPlan,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "FaultyStore({}, {:?})",
            self.inner.backend(),
            self.plan
        )
    }
}

impl FaultyStore {
    pub fn new(inner: Box<dyn Store>, plan: StoreFaultPlan) -> FaultyStore {
        FaultyStore { inner, plan }
    }
}

impl Store for FaultyStore {
    fn backend(&self) -> Backend {
        self.inner.backend()
    }

    fn transaction(
        &mut self,
        isolation: Isolation,
    ) -> Result<Box<dyn Transaction + '_>, StoreError> {
        if let Effect::Fail(error) = self.plan.pass(StoreOp::Begin, None) {
            return Err(error);
        }
        let inner = self.inner.transaction(isolation)?;
        Ok(Box::new(FaultyTransaction {
            inner,
            plan: self.plan.clone(),
        }))
    }
}

struct FaultyTransaction<'store> {
    inner: Box<dyn Transaction + 'store>,
    plan: StoreFaultPlan,
}

impl Transaction for FaultyTransaction<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        match self.plan.pass(StoreOp::Execute, Some(sql)) {
            Effect::Fail(error) => Err(error),
            _ => self.inner.execute(sql, params),
        }
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, StoreError> {
        match self.plan.pass(StoreOp::Query, Some(sql)) {
            Effect::Fail(error) => Err(error),
            _ => self.inner.query(sql, params),
        }
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match self.plan.pass(StoreOp::Execute, Some(sql)) {
            Effect::Fail(error) => Err(error),
            _ => self.inner.execute_batch(sql),
        }
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        match self.plan.pass(StoreOp::Commit, None) {
            Effect::Pass => self.inner.commit(),
            Effect::Fail(error) => Err(error),
            Effect::ApplyThenUnknown => {
                self.inner.commit()?;
                Err(StoreError::CommitOutcomeUnknown {
                    message: "injected: the commit's answer was lost".to_owned(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_cases_round_trip_through_text() {
        for text in [
            "outcome_unknown@commit#3",
            "timeout@sql:circuit_breaker",
            "failed_commit@commit_of:INSERT INTO orders",
            "unavailable_6@commit#2",
            "connection_lost@query#10",
        ] {
            let case: FaultCase = text.parse().expect("parses");
            assert_eq!(case.to_string(), text);
        }
        for bad in [
            "outcome_unknown",
            "nope@commit#1",
            "timeout@commit#0",
            "timeout@scan#1",
            "timeout@",
            "timeout@sql:",
            "timeout@circuit_breaker",
        ] {
            assert!(bad.parse::<FaultCase>().is_err(), "{bad:?} must not parse");
        }
    }
}
