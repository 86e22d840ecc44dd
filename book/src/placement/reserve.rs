//! Reserve: one SERIALIZABLE transaction that checks the guards, creates (or re-arms) the
//! intent, enters the window and takes the counters, or refuses with nothing written.

use protocol::IntentStatus;
use serde_json::json;

use crate::book::{Book, Context};
use crate::error::BookError;
use crate::events::{self, category};
use crate::intent::{InvalidSignal, Signal};
use crate::mutant;
use crate::store::{Isolation, StoreError, Transaction, Value};
use crate::{breaker, limits};

pub(super) enum Reservation {
    Reserved {
        intent_id: String,
    },
    Existing {
        intent_id: String,
        status: IntentStatus,
    },
}

/// What the book already knows of an intent id.
enum Known {
    /// Nothing: create it.
    New(String),
    /// A `pending` intent (the venue never took it): arm it again.
    Pending(String),
    /// Anything else: not placeable again.
    Final(IntentStatus),
}

impl Book {
    /// Nothing, in the reference book: the guards live in the reserve transaction. Under
    /// [`mutant::Mutant::CheckThenSetEntry`] or [`mutant::Mutant::LimitCheckedInApplication`]
    /// the guard is read here, in a transaction of its own, before the reservation.
    pub(super) fn checked_first(&mut self, signal: &Signal) -> Result<(), BookError> {
        let (sql, parameters, refusal) = match mutant::read_first(self.options.mutant) {
            None => return Ok(()),
            Some(mutant::ReadFirst::Entry(sql)) => (
                sql,
                vec![
                    Value::from(&signal.window_id),
                    Value::from(&signal.strategy),
                ],
                BookError::AlreadyEntered {
                    window_id: signal.window_id.clone(),
                    strategy: signal.strategy.clone(),
                },
            ),
            Some(mutant::ReadFirst::Limit(sql)) => (
                sql,
                vec![Value::Int(signal.notional().unwrap_or(i64::MAX))],
                BookError::LimitReached,
            ),
        };
        let refused = self.transact(Isolation::Read, "read", |transaction| {
            Ok(transaction.query_int(sql, &parameters)?)
        })?;
        if refused > 0 {
            return Err(refusal);
        }
        Ok(())
    }

    pub(super) fn reserve(&mut self, signal: &Signal) -> Result<Reservation, BookError> {
        let intent_id = self.intent_id(signal);
        let notional = signal
            .notional()
            .ok_or_else(|| InvalidSignal("notional overflows".into()))?;
        let max_daily_loss = self.options.limits.max_daily_loss;
        let context = self.context();
        self.transact(Isolation::Serializable, "reserve", |transaction| {
            breaker::ensure_closed(transaction, context.mutant)?;
            limits::ensure_daily_loss_ok(transaction, context.today, max_daily_loss)?;
            let (intent_id, resubmitted) = match known(transaction, &intent_id, &context)? {
                Known::Final(status) => {
                    let intent_id = intent_id.clone();
                    return Ok(Reservation::Existing { intent_id, status });
                }
                Known::Pending(intent_id) => {
                    rearm_intent(transaction, &intent_id, context.now)?;
                    (intent_id, true)
                }
                Known::New(intent_id) => {
                    insert_intent(transaction, &intent_id, signal, &context)?;
                    (intent_id, false)
                }
            };
            enter_window(transaction, &intent_id, signal, context.now, context.mutant)?;
            take_counters(transaction, notional, context.mutant)?;
            remember_signal(transaction, signal)?;
            let payload = json!({
                "bar_t": signal.bar_t,
                "intent_id": intent_id,
                "params": signal.params,
                "price": signal.price,
                "resubmitted": resubmitted,
                "side": signal.side,
                "size": signal.size,
                "strategy": signal.strategy,
                "symbol": signal.symbol,
                "window_id": signal.window_id,
            });
            let payload = mutant::reserved_payload(context.mutant, payload);
            events::append_text(
                transaction,
                &context.run_id,
                context.now,
                category::INTENT,
                "intent.reserved",
                payload,
            )?;
            Ok(Reservation::Reserved { intent_id })
        })
    }
}

fn known(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    context: &Context,
) -> Result<Known, BookError> {
    let existing = transaction.query_optional(
        "SELECT status FROM intents WHERE intent_id = $1",
        &[Value::from(intent_id)],
    )?;
    let status = match existing.as_deref() {
        None => return Ok(Known::New(intent_id.to_owned())),
        Some([Value::Text(status)]) => {
            IntentStatus::parse(status).ok_or_else(|| StoreError::Data {
                message: format!("intent {intent_id} has unknown status {status}"),
            })?
        }
        Some(other) => {
            return Err(BookError::Store(StoreError::Data {
                message: format!("intent {intent_id} has a malformed status: {other:?}"),
            }))
        }
    };
    if status == IntentStatus::Pending {
        return Ok(Known::Pending(intent_id.to_owned()));
    }
    if let Some(copy) = mutant::copy_of_existing_intent(context.mutant, transaction, intent_id)? {
        return Ok(Known::New(copy));
    }
    Ok(Known::Final(status))
}

fn rearm_intent(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    transaction.execute(
        "UPDATE intents SET status = 'executing', updated_ts = $2 WHERE intent_id = $1",
        &[Value::from(intent_id), Value::Int(now)],
    )?;
    Ok(())
}

fn insert_intent(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    signal: &Signal,
    context: &Context,
) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO intents (intent_id, run_id, strategy, window_id, symbol, side, size, price, bar_t, status, created_ts, updated_ts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'executing', $10, $11)",
        &[
            Value::from(intent_id),
            Value::from(&context.run_id),
            Value::from(&signal.strategy),
            Value::from(&signal.window_id),
            Value::from(&signal.symbol),
            Value::from(signal.side.as_str()),
            Value::Int(signal.size),
            Value::Int(signal.price),
            Value::Int(signal.bar_t),
            Value::Int(mutant::created_ts(context.mutant, context.now)),
            Value::Int(context.now),
        ],
    )?;
    Ok(())
}

/// One entry per (window, strategy), enforced by the primary key, never by a prior read.
fn enter_window(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    signal: &Signal,
    now: i64,
    mutant: Option<mutant::Mutant>,
) -> Result<(), BookError> {
    let entered = transaction.execute(
        mutant::enter_window_sql(mutant),
        &[
            Value::from(&signal.window_id),
            Value::from(&signal.strategy),
            Value::from(intent_id),
            Value::Int(now),
        ],
    );
    match entered {
        Ok(_) => Ok(()),
        Err(StoreError::UniqueViolation { constraint })
            if constraint.contains("window_entries") =>
        {
            Err(BookError::AlreadyEntered {
                window_id: signal.window_id.clone(),
                strategy: signal.strategy.clone(),
            })
        }
        Err(error) => Err(error.into()),
    }
}

/// Open-position and exposure limits by a conditional update (plus CHECK constraints),
/// never by a read and a later write.
fn take_counters(
    transaction: &mut (dyn Transaction + '_),
    notional: i64,
    mutant: Option<mutant::Mutant>,
) -> Result<(), BookError> {
    let counted = transaction.query(mutant::take_counters_sql(mutant), &[Value::Int(notional)])?;
    if counted.rows.is_empty() {
        return Err(BookError::LimitReached);
    }
    Ok(())
}

/// The last signal per (strategy, symbol, params) survives restarts (SPEC §2.9).
fn remember_signal(
    transaction: &mut (dyn Transaction + '_),
    signal: &Signal,
) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO last_signals (strategy, symbol, params, signal, bar_t) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (strategy, symbol, params) DO UPDATE SET signal = excluded.signal, bar_t = excluded.bar_t",
        &[
            Value::from(&signal.strategy),
            Value::from(&signal.symbol),
            Value::from(&signal.params),
            Value::Text(signal.canonical()),
            Value::Int(signal.bar_t),
        ],
    )?;
    Ok(())
}
