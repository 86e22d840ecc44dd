//! Daily limits, last signals, closing positions and checkpoints (SPEC §2.9): all read from
//! and written to the database, so a restart changes none of them.

use serde_json::json;

use crate::book::Book;
use crate::error::BookError;
use crate::events::{self, category};
use crate::mutant::Mutant;
use crate::store::{Isolation, Transaction, Value};

impl Book {
    /// Closes the position an intent opened at `exit_price`: realises its pnl into today's
    /// limits and frees its counters. Returns the realised pnl.
    pub fn close_position(&mut self, intent_id: &str, exit_price: i64) -> Result<i64, BookError> {
        let run_id = self.options.run.run_id.clone();
        let now = self.now_ms();
        let today = self.today();
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
                &[Value::from(intent_id), Value::Int(exit_price), Value::Int(pnl), Value::Int(now)],
            )?;
            transaction.execute(
                "UPDATE orders SET status = 'closed' WHERE intent_id = $1",
                &[Value::from(intent_id)],
            )?;
            transaction.execute(
                "UPDATE position_counters SET open_count = open_count - 1, exposure = exposure - $1 WHERE id = 1",
                &[Value::Int(*notional)],
            )?;
            transaction.execute(
                "INSERT INTO daily_limits (day, pnl, trade_count) VALUES ($1, $2, 0) \
                 ON CONFLICT (day) DO UPDATE SET pnl = daily_limits.pnl + $2",
                &[Value::Int(today), Value::Int(pnl)],
            )?;
            events::append(
                transaction,
                &run_id,
                now,
                category::POSITION,
                "position.closed",
                json!({ "exit_price": exit_price, "intent_id": intent_id, "pnl": pnl }),
            )?;
            Ok(pnl)
        })
    }

    /// Starts the clock's current day: a fresh row with zero pnl and trade count. Earlier
    /// days stay as history; the breaker is untouched.
    pub fn roll_day(&mut self) -> Result<(), BookError> {
        let run_id = self.options.run.run_id.clone();
        let now = self.now_ms();
        let today = self.today();
        let today_text = today.to_string();
        // The checkpoint says which day was rolled last: a roll delivered again (after a
        // restart, say) is skipped, so it must be written with the work it covers.
        if self.read_checkpoint(DAY_ROLLED)?.as_deref() == Some(today_text.as_str()) {
            return Ok(());
        }
        let checkpoint_first = self.options.mutant == Some(Mutant::CheckpointBeforeWork);
        if checkpoint_first {
            self.transact(Isolation::Write, "checkpoint", |transaction| {
                write_checkpoint(transaction, &run_id, now, DAY_ROLLED, &today_text)
            })?;
        }
        self.transact(Isolation::Write, "day.roll", |transaction| {
            let created = transaction.execute(
                "INSERT INTO daily_limits (day, pnl, trade_count) VALUES ($1, 0, 0) ON CONFLICT (day) DO NOTHING",
                &[Value::Int(today)],
            )?;
            if created == 1 {
                events::append(transaction, &run_id, now, category::LIMITS, "day.rolled", json!({ "day": today }))?;
            }
            if !checkpoint_first {
                write_checkpoint(transaction, &run_id, now, DAY_ROLLED, &today_text)?;
            }
            Ok(())
        })
    }

    /// Records a named checkpoint (the last bar processed, say) with the current time.
    pub fn checkpoint(&mut self, name: &str, value: &str) -> Result<(), BookError> {
        let run_id = self.options.run.run_id.clone();
        let now = self.now_ms();
        self.transact(Isolation::Write, "checkpoint", |transaction| {
            write_checkpoint(transaction, &run_id, now, name, value)
        })
    }

    /// The value of a checkpoint, if written.
    pub fn read_checkpoint(&mut self, name: &str) -> Result<Option<String>, BookError> {
        self.transact(Isolation::Read, "read", |transaction| {
            let row = transaction.query_optional(
                "SELECT value FROM checkpoints WHERE name = $1",
                &[Value::from(name)],
            )?;
            Ok(row
                .and_then(|row| row.into_iter().next())
                .and_then(|value| value.as_text().map(str::to_owned)))
        })
    }
}

/// The checkpoint that names the last day rolled.
pub const DAY_ROLLED: &str = "day_rolled";

fn write_checkpoint(
    transaction: &mut (dyn Transaction + '_),
    run_id: &str,
    now: i64,
    name: &str,
    value: &str,
) -> Result<(), BookError> {
    transaction.execute(
        "INSERT INTO checkpoints (name, value, ts) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, ts = excluded.ts",
        &[Value::from(name), Value::from(value), Value::Int(now)],
    )?;
    events::append(
        transaction,
        run_id,
        now,
        category::CHECKPOINT,
        "checkpoint.written",
        json!({ "name": name, "value": value }),
    )?;
    Ok(())
}
