//! Daily limits and checkpoints (SPEC §2.9): read from and written to the database, so a
//! restart changes none of them. The daily loss guard runs inside the entry transaction.

use serde_json::json;

use crate::book::{Book, Context};
use crate::commands;
use crate::error::BookError;
use crate::events::{self, category};
use crate::mutant;
use crate::store::{Isolation, StoreError, Transaction, Value};

/// The checkpoint that names the last day rolled.
pub const DAY_ROLLED: &str = "day_rolled";

impl Book {
    /// Starts the clock's current day: a fresh row with zero pnl and trade count. Earlier
    /// days stay as history; the breaker is untouched.
    pub fn roll_day(&mut self) -> Result<(), BookError> {
        let context = self.context();
        let today_text = context.today.to_string();
        // The checkpoint says which day was rolled last: a roll delivered again (after a
        // restart, say) is skipped, so it must be written with the work it covers.
        if self.read_checkpoint(DAY_ROLLED)?.as_deref() == Some(today_text.as_str()) {
            return Ok(());
        }
        let checkpoint_first = mutant::checkpoints_before_work(context.mutant);
        if checkpoint_first {
            self.transact(Isolation::Write, "checkpoint", |transaction| {
                write_checkpoint(transaction, &context, DAY_ROLLED, &today_text, None)
            })?;
        }
        self.transact(Isolation::Write, "day.roll", |transaction| {
            let created = transaction.execute(
                "INSERT INTO daily_limits (day, pnl, trade_count) VALUES ($1, 0, 0) ON CONFLICT (day) DO NOTHING",
                &[Value::Int(context.today)],
            )?;
            if created == 1 {
                events::append(transaction, &context.run_id, context.now, category::LIMITS, "day.rolled", json!({ "day": context.today }))?;
            }
            if !checkpoint_first {
                write_checkpoint(transaction, &context, DAY_ROLLED, &today_text, None)?;
            }
            Ok(())
        })
    }

    /// Records a named checkpoint (the last bar processed, say) with the current time. A
    /// checkpoint with a `command_id` already applied changes nothing.
    pub fn checkpoint(
        &mut self,
        name: &str,
        value: &str,
        command_id: Option<&str>,
    ) -> Result<(), BookError> {
        let context = self.context();
        self.transact(Isolation::Write, "checkpoint", |transaction| {
            if commands::applied(transaction, command_id)?.is_some() {
                return Ok(());
            }
            commands::record(transaction, command_id, "checkpoint", "null", context.now)?;
            write_checkpoint(transaction, &context, name, value, command_id)
        })
    }

    /// The value of a checkpoint, if written.
    pub(crate) fn read_checkpoint(&mut self, name: &str) -> Result<Option<String>, BookError> {
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

/// Refuses placement once today's realised pnl is at or below `-max_daily_loss`.
pub(crate) fn ensure_daily_loss_ok(
    transaction: &mut (dyn Transaction + '_),
    day: i64,
    max_daily_loss: i64,
) -> Result<(), BookError> {
    let pnl = transaction
        .query_optional(
            "SELECT pnl FROM daily_limits WHERE day = $1",
            &[Value::Int(day)],
        )?
        .and_then(|row| row.first().and_then(Value::as_int))
        .unwrap_or(0);
    if pnl <= -max_daily_loss {
        return Err(BookError::DailyLossLimit {
            day,
            pnl,
            max_daily_loss,
        });
    }
    Ok(())
}

/// Counts one trade on `day`, in the database.
pub(crate) fn count_trade(
    transaction: &mut (dyn Transaction + '_),
    day: i64,
) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO daily_limits (day, pnl, trade_count) VALUES ($1, 0, 1) \
         ON CONFLICT (day) DO UPDATE SET trade_count = daily_limits.trade_count + 1",
        &[Value::Int(day)],
    )?;
    Ok(())
}

/// Adds realised pnl to `day`.
pub(crate) fn add_pnl(
    transaction: &mut (dyn Transaction + '_),
    day: i64,
    pnl: i64,
) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO daily_limits (day, pnl, trade_count) VALUES ($1, $2, 0) \
         ON CONFLICT (day) DO UPDATE SET pnl = daily_limits.pnl + $2",
        &[Value::Int(day), Value::Int(pnl)],
    )?;
    Ok(())
}

fn write_checkpoint(
    transaction: &mut (dyn Transaction + '_),
    context: &Context,
    name: &str,
    value: &str,
    command_id: Option<&str>,
) -> Result<(), BookError> {
    transaction.execute(
        "INSERT INTO checkpoints (name, value, ts) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, ts = excluded.ts",
        &[
            Value::from(name),
            Value::from(value),
            Value::Int(context.now),
        ],
    )?;
    events::append(
        transaction,
        &context.run_id,
        context.now,
        category::CHECKPOINT,
        "checkpoint.written",
        commands::with_id(json!({ "name": name, "value": value }), command_id),
    )?;
    Ok(())
}
