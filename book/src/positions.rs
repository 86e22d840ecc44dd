//! Closing positions. What the venue has not filled of the position's order is cancelled
//! first (so nothing fills after the position closed), an exit order takes what filled off
//! the venue (reduce-only, client order id `INTENT-exit`), then one transaction records the
//! order's last fills and the exit, realises the pnl into today's limits and frees the
//! counters. A
//! close with a `command_id` already applied changes nothing and answers the same pnl.

use protocol::{CrashPoint, OrderRequest, Side, VenueError, VenueOrder};
use serde_json::json;

use crate::book::{Book, Context};
use crate::commands;
use crate::crash;
use crate::error::BookError;
use crate::events::{self, category};
use crate::limits;
use crate::mutant;
use crate::placement::fills;
use crate::store::{Isolation, StoreError, Transaction, Value};

/// Who closes a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closer {
    /// An operator (`close_position`).
    Operator,
    /// The book's stop-loss or take-profit (`evaluate_exits`).
    Exits,
}

/// The open position a close works on.
struct Open {
    symbol: String,
    side: Side,
    /// Signed quantity filled so far.
    qty: i64,
}

impl Book {
    /// Closes the position an intent opened at `exit_price` (an operator's close: it goes
    /// out even while placements are halted, to reduce what the book holds). Returns the
    /// realised pnl.
    pub fn close_position(
        &mut self,
        intent_id: &str,
        exit_price: i64,
        command_id: Option<&str>,
    ) -> Result<i64, BookError> {
        self.close_by(intent_id, exit_price, command_id, Closer::Operator)
    }

    pub(crate) fn close_by(
        &mut self,
        intent_id: &str,
        exit_price: i64,
        command_id: Option<&str>,
        closer: Closer,
    ) -> Result<i64, BookError> {
        let context = self.context();
        let command_id = mutant::close_command_id(context.mutant, command_id);
        let answered = self.transact(Isolation::Read, "read", |transaction| {
            Ok(commands::applied(transaction, command_id)?)
        })?;
        if let Some(answer) = answered {
            return realized_pnl(&answer);
        }
        let open = self.open_position(intent_id)?;
        let final_order = self.cancel_rest(intent_id)?;
        let filled = final_order
            .as_ref()
            .map_or(open.qty.abs(), VenueOrder::filled_qty);
        let exit = self.exit(intent_id, &open, filled, exit_price, closer)?;
        self.transact(Isolation::Write, "close", |transaction| {
            if let Some(answer) = commands::applied(transaction, command_id)? {
                return realized_pnl(&answer);
            }
            if let Some(order) = &final_order {
                fills::record(transaction, &context, order)?;
            }
            let pnl = close(
                transaction,
                intent_id,
                exit_price,
                exit.as_ref(),
                &context,
                command_id,
            )?;
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

    fn open_position(&mut self, intent_id: &str) -> Result<Open, BookError> {
        let sql = mutant::close_lookup_sql(self.options.mutant);
        let row = self.transact(Isolation::Read, "read", |transaction| {
            Ok(transaction.query_optional(sql, &[Value::from(intent_id)])?)
        })?;
        let Some([Value::Text(symbol), Value::Text(side), Value::Int(qty)]) = row.as_deref() else {
            return Err(BookError::NoOpenPosition {
                intent_id: intent_id.to_owned(),
            });
        };
        let side = Side::parse(side).ok_or_else(|| StoreError::Data {
            message: format!("intent {intent_id} has unknown side {side}"),
        })?;
        Ok(Open {
            symbol: symbol.clone(),
            side,
            qty: *qty,
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

    /// The exit order that takes `filled` off the venue: asked for first (a close sent
    /// again after an uncertain answer finds the exit it placed), placed if the venue does
    /// not have it. `None` when nothing filled. A venue that refuses or cannot answer
    /// refuses the close: nothing is written.
    fn exit(
        &mut self,
        intent_id: &str,
        open: &Open,
        filled: i64,
        exit_price: i64,
        closer: Closer,
    ) -> Result<Option<VenueOrder>, BookError> {
        if filled == 0 {
            return Ok(None);
        }
        let client_order_id = format!("{intent_id}-exit");
        let refused = |source: VenueError| match source {
            VenueError::Rejected { .. } | VenueError::RateLimited { .. } => {
                BookError::VenueUnavailable {
                    intent_id: intent_id.to_owned(),
                    source,
                }
            }
            source => BookError::VenueUncertain {
                intent_id: intent_id.to_owned(),
                source,
            },
        };
        match self.venue.find_order(&client_order_id).map_err(refused)? {
            Some(existing) if existing.rejection.is_none() => return Ok(Some(existing)),
            // The venue holds the id as refused: it cannot be placed again.
            Some(refused_exit) => {
                return Err(refused(VenueError::Rejected {
                    reason: refused_exit.rejection.unwrap_or_default(),
                }))
            }
            None => {}
        }
        let request = OrderRequest {
            client_order_id,
            symbol: open.symbol.clone(),
            side: open.side.opposite(),
            size: filled,
            price: exit_price,
            reduce_only: true,
        };
        // The book's own exits are placements like any other: not once halted.
        let pass = match closer {
            Closer::Exits => Some(self.enter_placement()?),
            Closer::Operator => None,
        };
        let placed = self.venue.place(&request);
        drop(pass);
        crash::pass(self.options.crash_plan.as_ref(), CrashPoint::AfterVenueCall)?;
        match placed {
            Ok(order) if order.rejection.is_none() => Ok(Some(order)),
            Ok(order) => Err(refused(VenueError::Rejected {
                reason: order.rejection.unwrap_or_default(),
            })),
            Err(source) => Err(refused(source)),
        }
    }
}

fn close(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    exit_price: i64,
    exit: Option<&VenueOrder>,
    context: &Context,
    command_id: Option<&str>,
) -> Result<i64, BookError> {
    let row = transaction.query_optional(
        "SELECT p.qty, p.cost, i.size * i.price FROM positions p JOIN intents i ON i.intent_id = p.intent_id \
         WHERE p.intent_id = $1",
        &[Value::from(intent_id)],
    )?;
    let Some([Value::Int(qty), Value::Int(cost), Value::Int(notional)]) = row.as_deref() else {
        return Err(BookError::NoOpenPosition {
            intent_id: intent_id.to_owned(),
        });
    };
    // What the exit's fills brought in (or cost, buying a short back).
    let proceeds: i64 = exit.map_or(0, |exit| exit_value(&exit.fills));
    let pnl = qty.signum() * proceeds - cost;
    let exit_order_id = exit.map(|exit| exit.venue_order_id.clone());
    transaction.execute(
        "UPDATE positions SET status = 'closed', exit_price = $2, realized_pnl = $3, updated_ts = $4, exit_order_id = $5 \
         WHERE intent_id = $1",
        &[Value::from(intent_id), Value::Int(exit_price), Value::Int(pnl), Value::Int(context.now), Value::from(exit_order_id.clone())],
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
            json!({ "exit_order_id": exit_order_id, "exit_price": exit_price, "intent_id": intent_id, "pnl": pnl }),
            command_id,
        ),
    )?;
    Ok(pnl)
}

/// Sum of qty x price over fills, each trade counted once.
fn exit_value(fills: &[protocol::VenueFill]) -> i64 {
    let mut seen = std::collections::BTreeSet::new();
    fills
        .iter()
        .filter(|fill| seen.insert(fill.trade_id.as_str()))
        .map(|fill| fill.qty * fill.price)
        .sum()
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
