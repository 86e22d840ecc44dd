//! The book behind the contract: one request in, a result or a [`Problem`] out. The `book`
//! binary serves its lines with this, and the harness drives the in-process book with it,
//! so both speak exactly the same outcomes and refusal kinds.

use protocol::{Closed, FillsSynced, Problem, ProblemKind, Request};
use serde::Serialize;

use crate::book::Book;
use crate::error::BookError;
use crate::migrate::MigrateError;

/// Runs `request` on `book`; the result as the protocol's JSON.
pub fn serve(book: &mut Book, request: Request) -> Result<serde_json::Value, Problem> {
    match request {
        Request::Submit { signal } => answer(book.submit(&signal)),
        Request::ClosePosition {
            intent_id,
            exit_price,
            command_id,
        } => answer(
            book.close_position(&intent_id, exit_price, command_id.as_deref())
                .map(|realized_pnl| Closed { realized_pnl }),
        ),
        Request::TripBreaker {
            reason,
            operator,
            command_id,
        } => answer(book.trip_breaker(reason, &operator, command_id.as_deref())),
        Request::ResetBreaker {
            operator,
            reason,
            command_id,
        } => answer(book.reset_breaker(&operator, &reason, command_id.as_deref())),
        Request::Breaker => answer(book.breaker()),
        Request::RollDay => answer(book.roll_day()),
        Request::Checkpoint {
            name,
            value,
            command_id,
        } => answer(book.checkpoint(&name, &value, command_id.as_deref())),
        Request::Recover => answer(book.recover()),
        Request::SyncFills => answer(book.sync_fills().map(|new_fills| FillsSynced {
            new_fills: u64::try_from(new_fills).unwrap_or(u64::MAX),
        })),
        Request::EvaluateExits {
            marks,
            stop_loss,
            take_profit,
        } => answer(book.evaluate_exits(&marks, stop_loss, take_profit)),
        Request::State => answer(book.state()),
    }
}

fn answer<T: Serialize>(result: Result<T, BookError>) -> Result<serde_json::Value, Problem> {
    let value = result.map_err(problem)?;
    serde_json::to_value(value).map_err(|error| {
        Problem::new(
            ProblemKind::Protocol,
            format!("the result does not serialise: {error}"),
        )
    })
}

/// The contract's view of a book error: its kind, the book's own message, and what it
/// concerns.
pub fn problem(error: BookError) -> Problem {
    let message = error.to_string();
    let (kind, intent_id, venue_error, crash_site) = match error {
        BookError::InvalidSignal(_) => (ProblemKind::InvalidSignal, None, None, None),
        BookError::AlreadyEntered { .. } => (ProblemKind::AlreadyEntered, None, None, None),
        BookError::LimitReached => (ProblemKind::LimitReached, None, None, None),
        BookError::DailyLossLimit { .. } => (ProblemKind::DailyLossLimit, None, None, None),
        BookError::BreakerOpen { .. } => (ProblemKind::BreakerOpen, None, None, None),
        BookError::BreakerUnreadable { .. } => (ProblemKind::BreakerUnreadable, None, None, None),
        BookError::SerializationConflict { .. } => {
            (ProblemKind::SerializationConflict, None, None, None)
        }
        BookError::OutcomeUnknown { intent_id, .. } => {
            (ProblemKind::OutcomeUnknown, Some(intent_id), None, None)
        }
        BookError::VenueUncertain { intent_id, source } => (
            ProblemKind::VenueUncertain,
            Some(intent_id),
            Some(source),
            None,
        ),
        BookError::VenueUnavailable { intent_id, source } => (
            ProblemKind::VenueUnavailable,
            Some(intent_id),
            Some(source),
            None,
        ),
        BookError::Halted { .. } => (ProblemKind::Halted, None, None, None),
        BookError::RecoveryRequired { .. } => (ProblemKind::RecoveryRequired, None, None, None),
        BookError::OperatorRequired => (ProblemKind::OperatorRequired, None, None, None),
        BookError::OpenOrders { .. } => (ProblemKind::OpenOrders, None, None, None),
        BookError::Blind { .. } => (ProblemKind::Blind, None, None, None),
        BookError::VerificationRateLimited => {
            (ProblemKind::VerificationRateLimited, None, None, None)
        }
        BookError::VerificationFailed { source } => {
            (ProblemKind::VerificationFailed, None, Some(source), None)
        }
        BookError::NoOpenPosition { intent_id } => {
            (ProblemKind::NoOpenPosition, Some(intent_id), None, None)
        }
        BookError::Crashed(crashed) => (ProblemKind::Crashed, None, None, Some(crashed.site)),
        BookError::Migrate(MigrateError::Crashed(crashed)) => {
            (ProblemKind::Crashed, None, None, Some(crashed.site))
        }
        BookError::Migrate(error) => (migrate_kind(&error), None, None, None),
        BookError::WrongRun { .. } => (ProblemKind::WrongRun, None, None, None),
        BookError::Store(_) => (ProblemKind::Storage, None, None, None),
    };
    Problem {
        kind,
        message,
        intent_id,
        venue_error,
        crash_site,
    }
}

fn migrate_kind(error: &MigrateError) -> ProblemKind {
    match error {
        MigrateError::SchemaAhead { .. } => ProblemKind::SchemaAhead,
        MigrateError::ChecksumDrift { .. } => ProblemKind::ChecksumDrift,
        MigrateError::UnknownVersion { .. } => ProblemKind::UnknownSchemaVersion,
        MigrateError::Step { .. } | MigrateError::Store(_) => ProblemKind::MigrationFailed,
        MigrateError::Crashed(_) => ProblemKind::Crashed,
    }
}
