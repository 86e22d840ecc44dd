//! Fills the venue reports after the confirm: asked for, deduplicated by trade id, applied
//! to the position they belong to, and the order's status with them (`filled` once the
//! whole size filled, `cancelled` once the venue cancelled the rest).

use protocol::{Side, VenueFill, VenueOrder};
use serde_json::json;

use crate::book::{Book, Context};
use crate::error::BookError;
use crate::events::{self, category};
use crate::store::{Isolation, StoreError, Transaction, Value};

impl Book {
    /// Asks the venue about every order that may still fill and records what it has not
    /// seen. Returns the number of new fills.
    pub fn sync_fills(&mut self) -> Result<usize, BookError> {
        let open = self.read_texts(
            "SELECT client_order_id FROM orders WHERE status = 'open' ORDER BY order_id",
        )?;
        let mut synced = 0;
        for client_order_id in open {
            let order = self
                .venue
                .find_order(&client_order_id)
                .map_err(|source| BookError::VenueUncertain {
                    intent_id: client_order_id.clone(),
                    source,
                })?
                .ok_or_else(|| StoreError::Data {
                    message: format!("the venue no longer knows open order {client_order_id}"),
                })?;
            let context = self.context();
            synced += self.transact(Isolation::Write, "fills", |transaction| {
                record(transaction, &context, &order)
            })?;
        }
        Ok(synced)
    }
}

/// Records what the venue says of an order the book holds: the fills it has not seen and
/// the order's status, with a `fills.synced` event when anything changed. Returns the
/// number of new fills.
pub(crate) fn record(
    transaction: &mut (dyn Transaction + '_),
    context: &Context,
    order: &VenueOrder,
) -> Result<usize, BookError> {
    let row = transaction.query_optional(
        "SELECT i.intent_id, i.side, i.size, o.status FROM orders o JOIN intents i ON i.intent_id = o.intent_id \
         WHERE o.order_id = $1",
        &[Value::from(&order.venue_order_id)],
    )?;
    let Some([Value::Text(intent_id), Value::Text(side), Value::Int(size), Value::Text(before)]) =
        row.as_deref()
    else {
        return Err(BookError::Store(StoreError::Data {
            message: format!("the book holds no order {}", order.venue_order_id),
        }));
    };
    let side = Side::parse(side).ok_or_else(|| StoreError::Data {
        message: format!("intent {intent_id} has unknown side {side}"),
    })?;
    let applied = apply(
        transaction,
        intent_id,
        &order.venue_order_id,
        side,
        &order.fills,
        context.now,
    )?;
    let filled = transaction.query_int(
        "SELECT CAST(COALESCE(SUM(qty), 0) AS BIGINT) FROM fills WHERE order_id = $1",
        &[Value::from(&order.venue_order_id)],
    )?;
    let status = status(filled, *size, order.cancelled);
    if applied.is_empty() && status == before {
        return Ok(0);
    }
    transaction.execute(
        "UPDATE orders SET status = $2 WHERE order_id = $1",
        &[Value::from(&order.venue_order_id), Value::from(status)],
    )?;
    events::append(
        transaction,
        &context.run_id,
        context.now,
        category::ORDER,
        "fills.synced",
        json!({
            "fills": to_json(&applied),
            "intent_id": intent_id,
            "order_id": order.venue_order_id,
            "status": status,
        }),
    )?;
    Ok(applied.len())
}

/// An order's status from what filled of its size and whether the venue cancelled the
/// rest.
pub(crate) fn status(filled: i64, size: i64, cancelled: bool) -> &'static str {
    if filled >= size {
        "filled"
    } else if cancelled {
        "cancelled"
    } else {
        "open"
    }
}

/// Inserts the fills the book has not seen (by trade id) and moves the intent's position
/// by exactly those. Returns the fills it inserted.
pub(super) fn apply<'fills>(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    order_id: &str,
    side: Side,
    fills: &'fills [VenueFill],
    now: i64,
) -> Result<Vec<&'fills VenueFill>, StoreError> {
    let mut applied = Vec::new();
    for fill in fills {
        let inserted = transaction.execute(
            "INSERT INTO fills (fill_id, order_id, qty, price, ts) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (fill_id) DO NOTHING",
            &[
                Value::from(&fill.trade_id),
                Value::from(order_id),
                Value::Int(fill.qty),
                Value::Int(fill.price),
                Value::Int(now),
            ],
        )?;
        if inserted == 0 {
            continue;
        }
        let signed = side.signed(fill.qty);
        transaction.execute(
            "UPDATE positions SET qty = qty + $2, cost = cost + $3, updated_ts = $4 WHERE intent_id = $1",
            &[Value::from(intent_id), Value::Int(signed), Value::Int(signed * fill.price), Value::Int(now)],
        )?;
        applied.push(fill);
    }
    Ok(applied)
}

/// Fills as an event payload's `fills` list.
pub(super) fn to_json(fills: &[&VenueFill]) -> serde_json::Value {
    fills
        .iter()
        .map(|fill| json!({ "price": fill.price, "qty": fill.qty, "trade_id": fill.trade_id }))
        .collect()
}
