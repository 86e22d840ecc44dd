//! The system under test, as the gates see it: a book that answers the contract's
//! requests. [`reference`] is the reference book in this process (or one of its mutants);
//! [`process`] is any program speaking the line protocol, by default the `book` binary.
//! Gates never see which: they call the typed requests on `dyn Subject`.

pub mod process;
pub mod reference;

use book::BookOptions;
use protocol::{
    BookState, BreakerState, Closed, ExitReport, FillsSynced, Mark, Outcome, Problem, ProblemKind,
    RecoveryReport, Request, Signal, TripReason,
};
use serde::de::DeserializeOwned;

use crate::database::Database;
use crate::faults::StoreFaultPlan;
pub use crate::settings::SubjectKind;
use crate::venue::SimVenue;
use crate::SimClock;

/// A book that answers requests. `Send`, so a gate can drive several from several threads.
pub trait Subject: Send {
    /// Sends `request` at the case clock's current time: the result, or the problem.
    fn request(&mut self, request: Request) -> Result<serde_json::Value, Problem>;
}

/// Opens a subject of `kind` on `database`, with the case's venue and clock, and a store
/// fault plan on its seam (in process only: a process has its own store).
pub fn open(
    kind: SubjectKind,
    database: &Database,
    venue: &SimVenue,
    clock: &SimClock,
    options: BookOptions,
    faults: Option<StoreFaultPlan>,
) -> Result<Box<dyn Subject>, Problem> {
    match kind {
        SubjectKind::InProcess => reference::open(database, venue, clock, options, faults),
        SubjectKind::Process => Ok(Box::new(process::ProcessSubject::spawn(
            database, venue, clock, options,
        )?)),
    }
}

/// The typed requests.
impl dyn Subject + '_ {
    pub fn submit(&mut self, signal: &Signal) -> Result<Outcome, Problem> {
        decode(self.request(Request::Submit {
            signal: signal.clone(),
        }))
    }

    /// Returns the realised pnl. `command_id`: see [`Request`] (at-least-once delivery).
    pub fn close_position(
        &mut self,
        intent_id: &str,
        exit_price: i64,
        command_id: Option<&str>,
    ) -> Result<i64, Problem> {
        decode::<Closed>(self.request(Request::ClosePosition {
            intent_id: intent_id.to_owned(),
            exit_price,
            command_id: command_id.map(str::to_owned),
        }))
        .map(|closed| closed.realized_pnl)
    }

    pub fn trip_breaker(
        &mut self,
        reason: TripReason,
        operator: &str,
        command_id: Option<&str>,
    ) -> Result<(), Problem> {
        decode(self.request(Request::TripBreaker {
            reason,
            operator: operator.to_owned(),
            command_id: command_id.map(str::to_owned),
        }))
    }

    pub fn reset_breaker(
        &mut self,
        operator: &str,
        reason: &str,
        command_id: Option<&str>,
    ) -> Result<(), Problem> {
        decode(self.request(Request::ResetBreaker {
            operator: operator.to_owned(),
            reason: reason.to_owned(),
            command_id: command_id.map(str::to_owned),
        }))
    }

    pub fn breaker(&mut self) -> Result<BreakerState, Problem> {
        decode(self.request(Request::Breaker))
    }

    pub fn roll_day(&mut self) -> Result<(), Problem> {
        decode(self.request(Request::RollDay))
    }

    pub fn checkpoint(
        &mut self,
        name: &str,
        value: &str,
        command_id: Option<&str>,
    ) -> Result<(), Problem> {
        decode(self.request(Request::Checkpoint {
            name: name.to_owned(),
            value: value.to_owned(),
            command_id: command_id.map(str::to_owned),
        }))
    }

    pub fn recover(&mut self) -> Result<RecoveryReport, Problem> {
        decode(self.request(Request::Recover))
    }

    /// Returns how many fills were new.
    pub fn sync_fills(&mut self) -> Result<u64, Problem> {
        decode::<FillsSynced>(self.request(Request::SyncFills)).map(|synced| synced.new_fills)
    }

    /// Verifies the venue's positions, then closes what crossed its stop-loss (if
    /// `stop_loss`) or take-profit (if `take_profit`) at `marks`.
    pub fn evaluate_exits(
        &mut self,
        marks: &[Mark],
        stop_loss: bool,
        take_profit: bool,
    ) -> Result<ExitReport, Problem> {
        decode(self.request(Request::EvaluateExits {
            marks: marks.to_vec(),
            stop_loss,
            take_profit,
        }))
    }

    pub fn state(&mut self) -> Result<BookState, Problem> {
        decode(self.request(Request::State))
    }
}

fn decode<T: DeserializeOwned>(answer: Result<serde_json::Value, Problem>) -> Result<T, Problem> {
    let value = answer?;
    serde_json::from_value(value.clone()).map_err(|error| {
        Problem::new(
            ProblemKind::Protocol,
            format!("the answer {value} does not fit the request: {error}"),
        )
    })
}
