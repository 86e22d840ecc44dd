//! Closing positions: realise the pnl into today's limits and free the counters, in one
//! transaction.

use serde_json::json;

use crate::book::Book;
use crate::error::BookError;
use crate::events::{self, category};
use crate::limits;
use crate::store::{Isolation, Value};

impl Book {
    /// Closes the position an intent opened at `exit_price`. Returns the realised pnl.
    pub fn close_position(&mut self, intent_id: &str, exit_price: i64) -> Result<i64, BookError> {
        let context = self.context();
        self.transact(Isolation::Write, "close", |transaction| {
            let row = transaction.query_optional(
                "SELECT p.qty, p.cost, i.size * i.price FROM positions p JOIN intents i ON i.intent_id = p.intent_id \
                 WHERE p.intent_id = $1 AND p.status = 'open'",
                &[Value::from(intent_id)],
            )?;
            let Some([Value::Int(qty), Value::Int(cost), Value::Int(notional)]) = row.as_deref() else {
                return Err(BookError::NoOpenPosition { intent_id: intent_id.to_owned() });
            };
            let pnl = qty * exit_price - cost;
            transaction.execute(
                "UPDATE positions SET status = 'closed', exit_price = $2, realized_pnl = $3, updated_ts = $4 WHERE intent_id = $1",
                &[Value::from(intent_id), Value::Int(exit_price), Value::Int(pnl), Value::Int(context.now)],
            )?;
            transaction.execute(
                "UPDATE orders SET status = 'closed' WHERE intent_id = $1",
                &[Value::from(intent_id)],
            )?;
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
                json!({ "exit_price": exit_price, "intent_id": intent_id, "pnl": pnl }),
            )?;
            Ok(pnl)
        })
    }
}
