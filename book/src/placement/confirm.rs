//! Confirm: record in one transaction what the venue holds for an intent (order, fills,
//! position, intent `completed`, today's trade). Settle: record that the venue did not
//! take it (rejected for good, or back to `pending` with its reservation released).

use protocol::{Side, TripReason, VenueOrder};
use serde_json::json;

use super::fills;
use crate::book::{Book, Context};
use crate::error::BookError;
use crate::events::{self, category};
use crate::limits;
use crate::mutant;
use crate::store::{Isolation, StoreError, Transaction, Value};

#[derive(Clone, Copy)]
pub(super) enum Unplaced<'reason> {
    /// The venue refused the order: the intent is `rejected`, for good.
    Rejected(&'reason str),
    /// The venue never accepted it: back to `pending`, placeable once when the signal
    /// comes again. The argument is the event category (recovery or not).
    NotAccepted(&'static str),
    /// Placements halted between the reservation and the venue call: never sent, back to
    /// `pending`.
    Halted,
}

/// The executing intent a confirm records.
struct Executing {
    strategy: String,
    symbol: String,
    side: Side,
    size: i64,
}

impl Book {
    /// Records what the venue holds for `intent_id`. On failure the outcome is unknown: the
    /// book halts and trips the breaker (SPEC §2.7).
    pub(super) fn confirm_or_halt(
        &mut self,
        intent_id: &str,
        order: &VenueOrder,
        event_category: &str,
    ) -> Result<(), BookError> {
        match self.confirm(intent_id, order, event_category) {
            Ok(()) => Ok(()),
            // A crash stops everything, the halt logic included.
            Err(crashed @ BookError::Crashed(_)) => Err(crashed),
            Err(error) if crate::mutant::logs_and_continues(self.options.mutant) => {
                Err(BookError::OutcomeUnknown {
                    intent_id: intent_id.to_owned(),
                    detail: error.to_string(),
                })
            }
            Err(error) => {
                let detail = error.to_string();
                self.latch.halt(latch::Halt::OutcomeUnknown(format!(
                    "recording intent {intent_id} failed: {detail}"
                )));
                // Best effort: the database may be what failed. The in-memory halt holds
                // either way.
                let _ = self.trip_breaker(TripReason::PositionTrackingFailed, "book", None);
                Err(BookError::OutcomeUnknown {
                    intent_id: intent_id.to_owned(),
                    detail,
                })
            }
        }
    }

    fn confirm(
        &mut self,
        intent_id: &str,
        order: &VenueOrder,
        event_category: &str,
    ) -> Result<(), BookError> {
        let trades_in_memory = self.mutant_state.trade_counted_in_memory();
        let context = self.context();
        let split = mutant::splits_confirm(context.mutant);
        if split {
            self.transact(Isolation::Write, "confirm.order", |transaction| {
                let size = transaction.query_int(
                    "SELECT size FROM intents WHERE intent_id = $1",
                    &[Value::from(intent_id)],
                )?;
                Ok(insert_order(
                    transaction,
                    intent_id,
                    order,
                    order_status(order, size, context.mutant),
                    context.now,
                )?)
            })?;
        }
        self.transact(Isolation::Write, "confirm", |transaction| {
            let intent = executing(transaction, intent_id)?;
            let status = order_status(order, intent.size, context.mutant);
            if !split {
                insert_order(transaction, intent_id, order, status, context.now)?;
            }
            open_position(transaction, intent_id, &intent, context.now)?;
            let applied = fills::apply(
                transaction,
                intent_id,
                &order.venue_order_id,
                intent.side,
                &order.fills,
                context.now,
            )?;
            transaction.execute(
                "UPDATE intents SET status = 'completed', updated_ts = $2 WHERE intent_id = $1",
                &[Value::from(intent_id), Value::Int(context.now)],
            )?;
            match trades_in_memory {
                Some(count) => mutant::write_trade_count(transaction, context.today, count)?,
                None => limits::count_trade(transaction, context.today)?,
            }
            events::append(
                transaction,
                &context.run_id,
                context.now,
                event_category,
                "order.recorded",
                json!({
                    "client_order_id": order.client_order_id,
                    "fills": fills::to_json(&applied),
                    "intent_id": intent_id,
                    "order_id": order.venue_order_id,
                    "status": status,
                }),
            )?;
            Ok(())
        })
    }

    pub(super) fn settle_unplaced(
        &mut self,
        intent_id: &str,
        how: Unplaced<'_>,
    ) -> Result<(), BookError> {
        let context = self.context();
        self.transact(Isolation::Write, "settle", |transaction| {
            settle(transaction, intent_id, how, &context)
        })
    }
}

fn settle(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    how: Unplaced<'_>,
    context: &Context,
) -> Result<(), BookError> {
    let (status, event_category, kind, reason) = match how {
        Unplaced::Rejected(reason) => ("rejected", category::INTENT, "intent.rejected", reason),
        Unplaced::NotAccepted(event_category) => (
            "pending",
            event_category,
            "intent.released",
            "venue does not have the order",
        ),
        Unplaced::Halted => (
            "pending",
            category::INTENT,
            "intent.released",
            "placements halted before the venue call",
        ),
    };
    let released = release_reservation(transaction, intent_id)?;
    transaction.execute(
        "UPDATE intents SET status = $2, updated_ts = $3 WHERE intent_id = $1",
        &[
            Value::from(intent_id),
            Value::from(status),
            Value::Int(context.now),
        ],
    )?;
    events::append(
        transaction,
        &context.run_id,
        context.now,
        event_category,
        kind,
        json!({ "intent_id": intent_id, "reason": reason, "released_notional": released }),
    )?;
    Ok(())
}

/// The status the venue's order gives the book's: `filled`, `cancelled` or `open`.
fn order_status(order: &VenueOrder, size: i64, mutant: Option<mutant::Mutant>) -> &'static str {
    let status = fills::status(order.filled_qty(), size, order.cancelled);
    mutant::confirmed_status(mutant, status)
}

fn executing(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
) -> Result<Executing, BookError> {
    let row = transaction
        .query_optional(
            "SELECT strategy, symbol, side, size FROM intents WHERE intent_id = $1 AND status = 'executing'",
            &[Value::from(intent_id)],
        )?
        .ok_or_else(|| StoreError::Data {
            message: format!("intent {intent_id} is not executing; cannot confirm it"),
        })?;
    let [Value::Text(strategy), Value::Text(symbol), Value::Text(side), Value::Int(size)] =
        row.as_slice()
    else {
        return Err(BookError::Store(StoreError::Data {
            message: format!("intent {intent_id} is malformed: {row:?}"),
        }));
    };
    let side = Side::parse(side).ok_or_else(|| StoreError::Data {
        message: format!("intent {intent_id} has unknown side {side}"),
    })?;
    Ok(Executing {
        strategy: strategy.clone(),
        symbol: symbol.clone(),
        side,
        size: *size,
    })
}

fn insert_order(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    order: &VenueOrder,
    status: &str,
    now: i64,
) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO orders (order_id, intent_id, client_order_id, status, ts) VALUES ($1, $2, $3, $4, $5)",
        &[
            Value::from(&order.venue_order_id),
            Value::from(intent_id),
            Value::from(&order.client_order_id),
            Value::from(status),
            Value::Int(now),
        ],
    )?;
    Ok(())
}

/// An empty position; the fills move it.
fn open_position(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    intent: &Executing,
    now: i64,
) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO positions (intent_id, strategy, symbol, qty, cost, status, exit_price, realized_pnl, updated_ts) \
         VALUES ($1, $2, $3, 0, 0, 'open', NULL, NULL, $4)",
        &[Value::from(intent_id), Value::from(&intent.strategy), Value::from(&intent.symbol), Value::Int(now)],
    )?;
    Ok(())
}

/// Frees the window entry and the counters an intent holds; returns the notional freed.
fn release_reservation(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
) -> Result<i64, BookError> {
    let notional = transaction.query_int(
        "SELECT size * price FROM intents WHERE intent_id = $1",
        &[Value::from(intent_id)],
    )?;
    transaction.execute(
        "DELETE FROM window_entries WHERE intent_id = $1",
        &[Value::from(intent_id)],
    )?;
    transaction.execute(
        "UPDATE position_counters SET open_count = open_count - 1, exposure = exposure - $1 WHERE id = 1",
        &[Value::Int(notional)],
    )?;
    Ok(notional)
}
