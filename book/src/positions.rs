//! Closing positions. What the venue has not filled of the position's order is cancelled
//! first (so nothing fills after the position closed), then one transaction records the
//! order's last fills, realises the pnl into today's limits and frees the counters. A
//! close with a `command_id` already applied changes nothing and answers the same pnl.

use protocol::VenueOrder;
use serde_json::json;

use crate::book::{Book, Context};
use crate::commands;
use crate::error::BookError;
use crate::events::{self, category};
use crate::limits;
use crate::mutant;
use crate::placement::fills;
use crate::store::{Isolation, StoreError, Transaction, Value};

impl Book {
    /// Closes the position an intent opened at `exit_price`. Returns the realised pnl.
    pub fn close_position(
        &mut self,
        intent_id: &str,
        exit_price: i64,
        command_id: Option<&str>,
    ) -> Result<i64, BookError> {
        let context = self.context();
        let command_id = mutant::close_command_id(context.mutant, command_id);
        let answered = self.transact(Isolation::Read, "read", |transaction| {
            Ok(commands::applied(transaction, command_id)?)
        })?;
        if let Some(answer) = answered {
            return realized_pnl(&answer);
        }
        let final_order = self.cancel_rest(intent_id)?;
        self.transact(Isolation::Write, "close", |transaction| {
            if let Some(answer) = commands::applied(transaction, command_id)? {
                return realized_pnl(&answer);
            }
            if let Some(order) = &final_order {
                fills::record(transaction, &context, order)?;
            }
            let pnl = close(transaction, intent_id, exit_price, &context, command_id)?;
            let answer = json!({ "realized_pnl": pnl }).to_string();
            commands::record(
                transaction,
                command_id,
                "close_position",
                &answer,
                context.now,
            )?;
            Ok(pnl)
        })
    }

    /// Cancels at the venue what is not filled of the intent's order and returns the order
    /// as the venue left it; `None` when the book's order is already done. A venue that
    /// cannot answer now refuses the close: nothing is written, the close can come again.
    fn cancel_rest(&mut self, intent_id: &str) -> Result<Option<VenueOrder>, BookError> {
        if mutant::skips_cancel_on_close(self.options.mutant) {
            return Ok(None);
        }
        let open = self.transact(Isolation::Read, "read", |transaction| {
            Ok(transaction.query_optional(
                "SELECT client_order_id FROM orders WHERE intent_id = $1 AND status = 'open'",
                &[Value::from(intent_id)],
            )?)
        })?;
        let Some(Some(client_order_id)) = open.map(|row| row.into_iter().next()) else {
            return Ok(None);
        };
        let Value::Text(client_order_id) = client_order_id else {
            return Err(BookError::Store(StoreError::Data {
                message: format!("order of intent {intent_id} has a malformed client order id"),
            }));
        };
        match self.venue.cancel(&client_order_id) {
            Ok(Some(order)) => Ok(Some(order)),
            Ok(None) => Err(BookError::Store(StoreError::Data {
                message: format!("the venue does not know order {client_order_id}"),
            })),
            Err(source) => Err(BookError::VenueUnavailable {
                intent_id: intent_id.to_owned(),
                source,
            }),
        }
    }
}

fn close(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    exit_price: i64,
    context: &Context,
    command_id: Option<&str>,
) -> Result<i64, BookError> {
    let row = transaction.query_optional(
        mutant::close_lookup_sql(context.mutant),
        &[Value::from(intent_id)],
    )?;
    let Some([Value::Int(qty), Value::Int(cost), Value::Int(notional)]) = row.as_deref() else {
        return Err(BookError::NoOpenPosition {
            intent_id: intent_id.to_owned(),
        });
    };
    let pnl = qty * exit_price - cost;
    transaction.execute(
        "UPDATE positions SET status = 'closed', exit_price = $2, realized_pnl = $3, updated_ts = $4 WHERE intent_id = $1",
        &[Value::from(intent_id), Value::Int(exit_price), Value::Int(pnl), Value::Int(context.now)],
    )?;
    mutant::stop_syncing_closed_order(context.mutant, transaction, intent_id)?;
    transaction.execute(
        "UPDATE position_counters SET open_count = open_count - 1, exposure = exposure - $1 WHERE id = 1",
        &[Value::Int(*notional)],
    )?;
    limits::add_pnl(transaction, context.today, pnl)?;
    events::append(
        transaction,
        &context.run_id,
        context.now,
        category::POSITION,
        "position.closed",
        commands::with_id(
            json!({ "exit_price": exit_price, "intent_id": intent_id, "pnl": pnl }),
            command_id,
        ),
    )?;
    Ok(pnl)
}

fn realized_pnl(answer: &str) -> Result<i64, BookError> {
    serde_json::from_str::<serde_json::Value>(answer)
        .ok()
        .and_then(|answer| {
            answer
                .get("realized_pnl")
                .and_then(serde_json::Value::as_i64)
        })
        .ok_or_else(|| {
            BookError::Store(StoreError::Data {
                message: format!("a recorded close answered {answer:?}, not a realised pnl"),
            })
        })
}
