//! The persisted circuit breaker (SPEC §2.6): CLOSED or OPEN with a reason, an append-only
//! audit of every transition, a failure count that survives restarts. OPEN blocks every
//! placement: [`ensure_closed`] runs inside the entry transaction. The breaker is read in
//! one place, [`read`], and a row that is missing or cannot be read fails closed.

use protocol::{BreakerState, TripReason};
use serde_json::json;

use crate::book::Book;
use crate::commands;
use crate::error::BookError;
use crate::events::{self, category};
use crate::store::{Isolation, StoreError, Transaction, Value};

impl Book {
    /// Opens the breaker (or keeps it open) and counts the failure, then halts the
    /// process's placements: once it returns, no placement of any book handle sharing the
    /// latch is in flight and none starts until a reset. A trip with a `command_id` already
    /// applied changes nothing, neither in the database nor in the latch (a re-delivered
    /// trip after a reset must not halt a book whose breaker is CLOSED).
    pub fn trip_breaker(
        &mut self,
        reason: TripReason,
        operator: &str,
        command_id: Option<&str>,
    ) -> Result<(), BookError> {
        let operator = if operator.trim().is_empty() {
            "book"
        } else {
            operator
        };
        let context = self.context();
        let applied_now = self.transact(Isolation::Write, "breaker.trip", |transaction| {
            if commands::applied(transaction, command_id)?.is_some() {
                return Ok(false);
            }
            let before = read(transaction, None)?;
            transaction.execute(
                "UPDATE circuit_breaker SET state = 'OPEN', reason = $1, failure_count = failure_count + 1, updated_ts = $2 WHERE id = 1",
                &[Value::from(reason.name()), Value::Int(context.now)],
            )?;
            audit(transaction, context.now, before.open, "OPEN", reason.name(), operator)?;
            commands::record(transaction, command_id, "trip_breaker", "null", context.now)?;
            events::append(
                transaction,
                &context.run_id,
                context.now,
                category::BREAKER,
                "breaker.tripped",
                                                commands::with_id(json!({ "operator": operator, "reason": reason.name() }), command_id),
            )?;
            Ok(true)
        })?;
        // Placements already past the breaker check end before this returns; none starts
        // after it.
        if applied_now {
            self.latch
                .halt(latch::Halt::BreakerTripped(reason.name().to_owned()));
        }
        Ok(())
    }

    /// Closes the breaker. Needs a non-empty operator id and is refused while any order is
    /// open. The failure count is history and stays. A reset with a `command_id` already
    /// applied changes nothing.
    pub fn reset_breaker(
        &mut self,
        operator: &str,
        reason: &str,
        command_id: Option<&str>,
    ) -> Result<(), BookError> {
        if operator.trim().is_empty() {
            return Err(BookError::OperatorRequired);
        }
        let context = self.context();
        self.transact(Isolation::Write, "breaker.reset", |transaction| {
            if commands::applied(transaction, command_id)?.is_some() {
                return Ok(());
            }
            let open_orders =
                transaction.query_int("SELECT COUNT(*) FROM orders WHERE status = 'open'", &[])?;
            if open_orders > 0 {
                return Err(BookError::OpenOrders { open_orders });
            }
            let before = read(transaction, None)?;
            transaction.execute(
                "UPDATE circuit_breaker SET state = 'CLOSED', reason = NULL, updated_ts = $1 WHERE id = 1",
                &[Value::Int(context.now)],
            )?;
            audit(transaction, context.now, before.open, "CLOSED", reason, operator)?;
            commands::record(transaction, command_id, "reset_breaker", "null", context.now)?;
            events::append(
                transaction,
                &context.run_id,
                context.now,
                category::BREAKER,
                "breaker.reset",
                commands::with_id(json!({ "operator": operator, "reason": reason }), command_id),
            )?;
                        Ok(())
        })?;
        self.latch.resume();
        Ok(())
    }

    pub fn breaker(&mut self) -> Result<BreakerState, BookError> {
        self.transact(Isolation::Read, "read", |transaction| {
            read(transaction, None)
        })
    }

    /// The in-memory halt after an unknown outcome: no placement until a reset. (A halt
    /// for a trip is left to the persisted breaker, read in the entry transaction, which
    /// answers `BreakerOpen`.)
    pub(crate) fn ensure_not_halted(&self) -> Result<(), BookError> {
        match self.latch.halted() {
            Some(latch::Halt::OutcomeUnknown(reason)) => Err(BookError::Halted { reason }),
            _ => Ok(()),
        }
    }

    /// Starts a venue placement: the pass to hold around the call, or why placements are
    /// halted (a trip answers `BreakerOpen`, an unknown outcome `Halted`).
    pub(crate) fn enter_placement(&self) -> Result<latch::Pass, BookError> {
        self.latch.enter().map_err(|halt| match halt {
            latch::Halt::BreakerTripped(reason) => BookError::BreakerOpen { reason },
            latch::Halt::OutcomeUnknown(reason) => BookError::Halted { reason },
        })
    }

    /// No placement while intents from before this open are unresolved: the halt after an
    /// unknown outcome lived in memory, and if neither the order nor the trip could be
    /// written, the executing intent is all that is left of it.
    pub(crate) fn ensure_resolved(&self) -> Result<(), BookError> {
        if self.unresolved == 0 || crate::mutant::places_before_recovery(self.options.mutant) {
            return Ok(());
        }
        Err(BookError::RecoveryRequired {
            unresolved: self.unresolved,
        })
    }
}

/// The breaker as persisted. A row that is missing, malformed or unreadable is
/// `BreakerUnreadable`: callers that guard placement therefore fail closed.
pub(crate) fn read(
    transaction: &mut (dyn Transaction + '_),
    mutant: Option<crate::mutant::Mutant>,
) -> Result<BreakerState, BookError> {
    let unreadable = |detail: String| BookError::BreakerUnreadable { detail };
    let row = transaction
        .query_optional(
            "SELECT state, reason, failure_count FROM circuit_breaker WHERE id = 1",
            &[],
        )
        .map_err(|error| unreadable(error.to_string()))?;
    if row.is_none() {
        if let Some(closed) = crate::mutant::missing_breaker_row(mutant) {
            return Ok(closed);
        }
    }
    let Some([Value::Text(state), reason, Value::Int(failure_count)]) = row.as_deref() else {
        return Err(unreadable(format!("unexpected breaker row {row:?}")));
    };
    let open = match state.as_str() {
        "OPEN" => true,
        "CLOSED" => false,
        other => return Err(unreadable(format!("unknown breaker state {other:?}"))),
    };
    let reason = match reason {
        Value::Null => None,
        Value::Text(name) => Some(
            TripReason::from_name(name)
                .ok_or_else(|| unreadable(format!("unknown trip reason {name:?}")))?,
        ),
        Value::Int(_) => return Err(unreadable(format!("breaker reason is {reason:?}"))),
    };
    Ok(BreakerState {
        open,
        reason,
        failure_count: *failure_count,
    })
}

/// Refuses placement unless the breaker reads CLOSED (inside the entry transaction).
pub(crate) fn ensure_closed(
    transaction: &mut (dyn Transaction + '_),
    mutant: Option<crate::mutant::Mutant>,
) -> Result<(), BookError> {
    let state = read(transaction, mutant)?;
    if !state.open {
        return Ok(());
    }
    Err(BookError::BreakerOpen {
        reason: state
            .reason
            .map_or("no reason recorded", TripReason::name)
            .to_owned(),
    })
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
