//! The persisted circuit breaker (SPEC §2.6): CLOSED or OPEN with a reason, an append-only
//! audit of every transition, a failure count that survives restarts. OPEN blocks every
//! placement (checked inside the entry transaction, see `writeahead`).

use serde_json::json;

use crate::book::Book;
use crate::error::BookError;
use crate::events::{self, category};
use crate::store::{Isolation, StoreError, Transaction, Value};

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TripReason {
    StopLossBlind,
    TakeProfitBlind,
    PositionTrackingFailed,
    VerificationRateLimited,
    SerializationConflict,
    ManualTrip,
}

impl TripReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TripReason::StopLossBlind => "StopLossBlind",
            TripReason::TakeProfitBlind => "TakeProfitBlind",
            TripReason::PositionTrackingFailed => "PositionTrackingFailed",
            TripReason::VerificationRateLimited => "VerificationRateLimited",
            TripReason::SerializationConflict => "SerializationConflict",
            TripReason::ManualTrip => "ManualTrip",
        }
    }
}

/// The breaker as persisted.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BreakerState {
    pub open: bool,
    pub reason: Option<String>,
    pub failure_count: i64,
}

impl Book {
    /// Opens the breaker (or keeps it open) and counts the failure.
    pub fn trip_breaker(&mut self, reason: TripReason, operator: &str) -> Result<(), BookError> {
        let operator = if operator.trim().is_empty() {
            "book"
        } else {
            operator
        };
        let run_id = self.options.run.run_id.clone();
        let now = self.now_ms();
        self.transact(Isolation::Write, "breaker.trip", |transaction| {
            let before = read_state(transaction)?;
            transaction.execute(
                "UPDATE circuit_breaker SET state = 'OPEN', reason = $1, failure_count = failure_count + 1, updated_ts = $2 WHERE id = 1",
                &[Value::from(reason.as_str()), Value::Int(now)],
            )?;
            audit(transaction, now, before.open, "OPEN", reason.as_str(), operator)?;
            events::append(
                transaction,
                &run_id,
                now,
                category::BREAKER,
                "breaker.tripped",
                json!({ "operator": operator, "reason": reason.as_str() }),
            )?;
            Ok(())
        })
    }

    /// Closes the breaker. Needs a non-empty operator id and is refused while any order is
    /// open. The failure count is history and stays.
    pub fn reset_breaker(&mut self, operator: &str, reason: &str) -> Result<(), BookError> {
        if operator.trim().is_empty() {
            return Err(BookError::OperatorRequired);
        }
        let run_id = self.options.run.run_id.clone();
        let now = self.now_ms();
        self.transact(Isolation::Write, "breaker.reset", |transaction| {
            let open_orders =
                transaction.query_int("SELECT COUNT(*) FROM orders WHERE status = 'open'", &[])?;
            if open_orders > 0 {
                return Err(BookError::OpenOrders { open_orders });
            }
            let before = read_state(transaction)?;
            transaction.execute(
                "UPDATE circuit_breaker SET state = 'CLOSED', reason = NULL, updated_ts = $1 WHERE id = 1",
                &[Value::Int(now)],
            )?;
            audit(transaction, now, before.open, "CLOSED", reason, operator)?;
            events::append(
                transaction,
                &run_id,
                now,
                category::BREAKER,
                "breaker.reset",
                json!({ "operator": operator, "reason": reason }),
            )?;
            Ok(())
        })?;
        self.halted = None;
        Ok(())
    }

    pub fn breaker(&mut self) -> Result<BreakerState, BookError> {
        self.transact(Isolation::Read, "read", |transaction| {
            Ok(read_state(transaction)?)
        })
    }
}

fn read_state(transaction: &mut (dyn Transaction + '_)) -> Result<BreakerState, StoreError> {
    let row = transaction.query_optional(
        "SELECT state, reason, failure_count FROM circuit_breaker WHERE id = 1",
        &[],
    )?;
    match row.as_deref() {
        Some([Value::Text(state), reason, Value::Int(failure_count)]) => Ok(BreakerState {
            open: state == "OPEN",
            reason: reason.as_text().map(str::to_owned),
            failure_count: *failure_count,
        }),
        other => Err(StoreError::Data {
            message: format!("circuit_breaker row is missing or malformed: {other:?}"),
        }),
    }
}

fn audit(
    transaction: &mut (dyn Transaction + '_),
    now: i64,
    was_open: bool,
    to_state: &str,
    reason: &str,
    operator: &str,
) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO breaker_audit (seq, ts, from_state, to_state, reason, operator) \
         VALUES ((SELECT COALESCE(MAX(seq), 0) + 1 FROM breaker_audit), $1, $2, $3, $4, $5)",
        &[
            Value::Int(now),
            Value::from(if was_open { "OPEN" } else { "CLOSED" }),
            Value::from(to_state),
            Value::from(reason),
            Value::from(operator),
        ],
    )?;
    Ok(())
}
