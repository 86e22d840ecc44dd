//! Write-ahead placement and recovery (SPEC §2.2–2.4).
//!
//! reserve (one transaction: intent `executing`, window entry, counters) -> act (the venue
//! call, outside any transaction) -> confirm (one transaction: order, fills, position,
//! intent `completed`). After a crash, `recover` asks the venue about every `executing`
//! intent by client order id and either confirms it or releases its reservation. Nothing is
//! ever re-placed without asking.

use serde_json::json;

use crate::book::Book;
use crate::error::BookError;
use crate::events::{self, category};
use crate::intent::Signal;
use crate::mutant::{self, Mutant};
use crate::store::{Isolation, StoreError, Transaction, Value};
use crate::venue::{OrderRequest, VenueError, VenueOrder};

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentStatus {
    Pending,
    Executing,
    Completed,
    Rejected,
}

impl IntentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStatus::Pending => "pending",
            IntentStatus::Executing => "executing",
            IntentStatus::Completed => "completed",
            IntentStatus::Rejected => "rejected",
        }
    }

    pub fn parse(text: &str) -> Option<IntentStatus> {
        match text {
            "pending" => Some(IntentStatus::Pending),
            "executing" => Some(IntentStatus::Executing),
            "completed" => Some(IntentStatus::Completed),
            "rejected" => Some(IntentStatus::Rejected),
            _ => None,
        }
    }
}

/// What `submit` did with a signal.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Reserved, placed and recorded.
    Placed { intent_id: String, order_id: String },
    /// The intent already existed and is not placeable again: nothing was sent.
    Existing {
        intent_id: String,
        status: IntentStatus,
    },
    /// The venue refused the order; final.
    Rejected { intent_id: String, reason: String },
}

/// What `recover` did.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Intents the venue had: confirmed from the venue's record.
    pub confirmed: Vec<String>,
    /// Intents the venue never saw: reservation released, back to `pending`.
    pub released: Vec<String>,
}

enum Reservation {
    Reserved {
        intent_id: String,
    },
    Existing {
        intent_id: String,
        status: IntentStatus,
    },
}

impl Book {
    /// Places `signal` at most once, whatever happened before (SPEC §2.2, §2.3).
    pub fn submit(&mut self, signal: &Signal) -> Result<Outcome, BookError> {
        signal.validate()?;
        if let Some(reason) = &self.halted {
            return Err(BookError::Halted {
                reason: reason.clone(),
            });
        }
        let intent_id = match self.reserve(signal)? {
            Reservation::Existing { intent_id, status } => {
                return Ok(Outcome::Existing { intent_id, status })
            }
            Reservation::Reserved { intent_id } => intent_id,
        };
        let request = OrderRequest {
            client_order_id: intent_id.clone(),
            symbol: signal.symbol.clone(),
            side: signal.side,
            size: signal.size,
            price: signal.price,
        };
        let placed = self.venue.place(&request);
        if let Some(plan) = &self.options.crash_plan {
            // Between the venue call and the confirm: the order may exist at the venue
            // while the book only knows an executing intent.
            plan.point("act.after_venue".to_owned())?;
        }
        match placed {
            Ok(order) => {
                let order_id = self.confirm_or_halt(&intent_id, &order, category::ORDER)?;
                Ok(Outcome::Placed {
                    intent_id,
                    order_id,
                })
            }
            Err(VenueError::Rejected { reason }) => {
                self.settle_unplaced(&intent_id, Unplaced::Rejected(&reason))?;
                Ok(Outcome::Rejected { intent_id, reason })
            }
            Err(source @ VenueError::RateLimited { .. }) => {
                self.settle_unplaced(&intent_id, Unplaced::NotAccepted(category::INTENT))?;
                Err(BookError::VenueUnavailable { intent_id, source })
            }
            Err(source @ (VenueError::Timeout | VenueError::Internal { .. })) => {
                Err(BookError::VenueUncertain { intent_id, source })
            }
        }
    }

    fn reserve(&mut self, signal: &Signal) -> Result<Reservation, BookError> {
        let intent_id = self.intent_id(signal);
        let notional = signal.notional().ok_or_else(|| {
            BookError::InvalidSignal(crate::intent::InvalidSignal("notional overflows".into()))
        })?;
        let run_id = self.options.run.run_id.clone();
        let max_daily_loss = self.options.limits.max_daily_loss;
        let mutant = self.options.mutant;
        let now = self.now_ms();
        let today = self.today();
        self.transact(Isolation::Serializable, "reserve", |transaction| {
            ensure_breaker_closed(transaction)?;
            ensure_daily_loss_ok(transaction, today, max_daily_loss)?;
            let mut intent_id = intent_id.clone();
            let existing = transaction.query_optional(
                "SELECT status FROM intents WHERE intent_id = $1",
                &[Value::from(&intent_id)],
            )?;
            let resubmitted = match existing.as_deref() {
                None => false,
                Some([Value::Text(status)]) if status == "pending" => true,
                Some([Value::Text(_)]) if mutant == Some(Mutant::NonIdempotentCreate) => {
                    let copies = transaction.query_int(
                        "SELECT COUNT(*) FROM intents WHERE intent_id LIKE $1",
                        &[Value::Text(format!("{intent_id}%"))],
                    )?;
                    intent_id = format!("{intent_id}-{copies}");
                    false
                }
                Some([Value::Text(status)]) => {
                    let status = IntentStatus::parse(status).ok_or_else(|| StoreError::Data {
                        message: format!("intent {intent_id} has unknown status {status}"),
                    })?;
                    return Ok(Reservation::Existing { intent_id, status });
                }
                Some(other) => {
                    return Err(BookError::Store(StoreError::Data {
                        message: format!("intent {intent_id} has a malformed status: {other:?}"),
                    }))
                }
            };
            if resubmitted {
                transaction.execute(
                    "UPDATE intents SET status = 'executing', updated_ts = $2 WHERE intent_id = $1",
                    &[Value::from(&intent_id), Value::Int(now)],
                )?;
            } else {
                let created_ts = match mutant {
                    Some(Mutant::WallClockTimestamp) => mutant::wall_clock_nanos(),
                    _ => now,
                };
                insert_intent(transaction, &intent_id, &run_id, signal, created_ts, now)?;
            }
            enter_window(transaction, &intent_id, signal, now)?;
            let counted = transaction.query(
                "UPDATE position_counters SET open_count = open_count + 1, exposure = exposure + $1 \
                 WHERE id = 1 AND open_count < max_open AND exposure + $1 <= max_exposure \
                 RETURNING open_count",
                &[Value::Int(notional)],
            )?;
            if counted.rows.is_empty() {
                return Err(BookError::LimitReached);
            }
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
            let payload = match mutant {
                Some(Mutant::HashMapPayloadOrder) => mutant::hash_map_order(&payload),
                Some(Mutant::FloatPrice) => mutant::float_price(payload).to_string(),
                _ => payload.to_string(),
            };
            events::append_text(transaction, &run_id, now, category::INTENT, "intent.reserved", payload)?;
            Ok(Reservation::Reserved { intent_id })
        })
    }

    /// Records what the venue holds for `intent_id`. On failure the outcome is unknown: the
    /// book halts and trips the breaker (SPEC §2.7).
    fn confirm_or_halt(
        &mut self,
        intent_id: &str,
        order: &VenueOrder,
        event_category: &str,
    ) -> Result<String, BookError> {
        match self.confirm(intent_id, order, event_category) {
            Ok(()) => Ok(order.venue_order_id.clone()),
            // A crash stops everything, the halt logic included.
            Err(crashed @ BookError::Crashed(_)) => Err(crashed),
            Err(error) => {
                let detail = error.to_string();
                self.halted = Some(format!("recording intent {intent_id} failed: {detail}"));
                // Best effort: the database may be what failed. The in-memory halt holds
                // either way.
                let _ =
                    self.trip_breaker(crate::breaker::TripReason::PositionTrackingFailed, "book");
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
        let trades_in_memory = match self.options.mutant {
            Some(Mutant::DailyCounterInMemory) => {
                self.trades_in_memory += 1;
                Some(self.trades_in_memory)
            }
            _ => None,
        };
        let run_id = self.options.run.run_id.clone();
        let now = self.now_ms();
        let today = self.today();
        let split = self.options.mutant == Some(Mutant::ConfirmSplitInTwo);
        if split {
            self.transact(Isolation::Write, "confirm.order", |transaction| {
                let size = transaction.query_int(
                    "SELECT size FROM intents WHERE intent_id = $1",
                    &[Value::from(intent_id)],
                )?;
                let status = if crate::venue::filled_qty(&order.fills) >= size {
                    "filled"
                } else {
                    "open"
                };
                Ok(insert_order(transaction, intent_id, order, status, now)?)
            })?;
        }
        self.transact(Isolation::Write, "confirm", |transaction| {
            let intent = transaction
                .query_optional(
                    "SELECT strategy, symbol, side, size FROM intents WHERE intent_id = $1 AND status = 'executing'",
                    &[Value::from(intent_id)],
                )?
                .ok_or_else(|| StoreError::Data {
                    message: format!("intent {intent_id} is not executing; cannot confirm it"),
                })?;
            let [Value::Text(strategy), Value::Text(symbol), Value::Text(side), Value::Int(size)] = intent.as_slice() else {
                return Err(BookError::Store(StoreError::Data {
                    message: format!("intent {intent_id} is malformed: {intent:?}"),
                }));
            };
            let side = crate::intent::Side::parse(side).ok_or_else(|| StoreError::Data {
                message: format!("intent {intent_id} has unknown side {side}"),
            })?;
            // Count each trade once: a venue may report the same trade twice.
            let filled = crate::venue::filled_qty(&order.fills);
            let order_status = if filled >= *size { "filled" } else { "open" };
            if !split {
                insert_order(transaction, intent_id, order, order_status, now)?;
            }
            transaction.execute(
                "INSERT INTO positions (intent_id, strategy, symbol, qty, cost, status, exit_price, realized_pnl, updated_ts) \
                 VALUES ($1, $2, $3, 0, 0, 'open', NULL, NULL, $4)",
                &[Value::from(intent_id), Value::from(strategy), Value::from(symbol), Value::Int(now)],
            )?;
            let applied = apply_fills(transaction, intent_id, &order.venue_order_id, side, &order.fills, now)?;
            transaction.execute(
                "UPDATE intents SET status = 'completed', updated_ts = $2 WHERE intent_id = $1",
                &[Value::from(intent_id), Value::Int(now)],
            )?;
            match trades_in_memory {
                Some(count) => transaction.execute(
                    "INSERT INTO daily_limits (day, pnl, trade_count) VALUES ($1, 0, $2) \
                     ON CONFLICT (day) DO UPDATE SET trade_count = $2",
                    &[Value::Int(today), Value::Int(count)],
                )?,
                None => transaction.execute(
                    "INSERT INTO daily_limits (day, pnl, trade_count) VALUES ($1, 0, 1) \
                     ON CONFLICT (day) DO UPDATE SET trade_count = daily_limits.trade_count + 1",
                    &[Value::Int(today)],
                )?,
            };
            events::append(
                transaction,
                &run_id,
                now,
                event_category,
                "order.recorded",
                json!({
                    "client_order_id": order.client_order_id,
                    "fills": fills_json(&applied),
                    "intent_id": intent_id,
                    "order_id": order.venue_order_id,
                    "status": order_status,
                }),
            )?;
            Ok(())
        })
    }

    fn settle_unplaced(&mut self, intent_id: &str, how: Unplaced<'_>) -> Result<(), BookError> {
        let run_id = self.options.run.run_id.clone();
        let now = self.now_ms();
        self.transact(Isolation::Write, "settle", |transaction| {
            let (status, event_category, kind, reason) = match how {
                Unplaced::Rejected(reason) => {
                    ("rejected", category::INTENT, "intent.rejected", reason)
                }
                Unplaced::NotAccepted(event_category) => (
                    "pending",
                    event_category,
                    "intent.released",
                    "venue does not have the order",
                ),
            };
            let released = release_reservation(transaction, intent_id)?;
            transaction.execute(
                "UPDATE intents SET status = $2, updated_ts = $3 WHERE intent_id = $1",
                &[Value::from(intent_id), Value::from(status), Value::Int(now)],
            )?;
            events::append(
                transaction,
                &run_id,
                now,
                event_category,
                kind,
                json!({ "intent_id": intent_id, "reason": reason, "released_notional": released }),
            )?;
            Ok(())
        })
    }

    /// Settles every `executing` intent with the venue (SPEC §2.3): the venue has the
    /// order -> confirm it from the venue's record; the venue does not -> release the
    /// reservation and return the intent to `pending`. Never re-places.
    pub fn recover(&mut self) -> Result<RecoveryReport, BookError> {
        let executing = self.read_texts(
            "SELECT intent_id FROM intents WHERE status = 'executing' ORDER BY intent_id",
        )?;
        let mut report = RecoveryReport::default();
        for intent_id in executing {
            let found = if self.options.mutant == Some(Mutant::BlindReplaceOnRecovery) {
                self.blind_replace(&intent_id)
            } else {
                self.venue.find_order(&intent_id)
            };
            let found = found.map_err(|source| BookError::VenueUncertain {
                intent_id: intent_id.clone(),
                source,
            })?;
            match found {
                Some(VenueOrder {
                    rejection: Some(reason),
                    ..
                }) => {
                    self.settle_unplaced(&intent_id, Unplaced::Rejected(&reason))?;
                    report.released.push(intent_id);
                }
                Some(order) => {
                    self.confirm_or_halt(&intent_id, &order, category::RECOVERY)?;
                    report.confirmed.push(intent_id);
                }
                None => {
                    self.settle_unplaced(&intent_id, Unplaced::NotAccepted(category::RECOVERY))?;
                    report.released.push(intent_id);
                }
            }
        }
        Ok(report)
    }
}

impl Book {
    /// `Mutant::BlindReplaceOnRecovery`: places the intent again instead of asking.
    fn blind_replace(&mut self, intent_id: &str) -> Result<Option<VenueOrder>, VenueError> {
        let row = self
            .transact(Isolation::Read, "read", |transaction| {
                Ok(transaction.query_optional(
                    "SELECT symbol, side, size, price FROM intents WHERE intent_id = $1",
                    &[Value::from(intent_id)],
                )?)
            })
            .ok()
            .flatten();
        let Some([Value::Text(symbol), Value::Text(side), Value::Int(size), Value::Int(price)]) =
            row.as_deref()
        else {
            return Ok(None);
        };
        let side = crate::intent::Side::parse(side).unwrap_or(crate::intent::Side::Buy);
        let request = OrderRequest {
            client_order_id: intent_id.to_owned(),
            symbol: symbol.clone(),
            side,
            size: *size,
            price: *price,
        };
        self.venue.place(&request).map(Some)
    }

    /// Asks the venue about every order that is not fully filled yet and records the fills
    /// it has not seen (deduplicated by trade id). Returns the number of new fills.
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
            synced += self.record_new_fills(&order)?;
        }
        Ok(synced)
    }

    fn record_new_fills(&mut self, order: &VenueOrder) -> Result<usize, BookError> {
        let run_id = self.options.run.run_id.clone();
        let now = self.now_ms();
        self.transact(Isolation::Write, "fills", |transaction| {
            let intent = transaction.query_optional(
                "SELECT i.intent_id, i.side, i.size FROM intents i WHERE i.intent_id = $1",
                &[Value::from(&order.client_order_id)],
            )?;
            let Some([Value::Text(intent_id), Value::Text(side), Value::Int(size)]) =
                intent.as_deref()
            else {
                return Err(BookError::Store(StoreError::Data {
                    message: format!("order {} has no intent", order.venue_order_id),
                }));
            };
            let side = crate::intent::Side::parse(side).ok_or_else(|| StoreError::Data {
                message: format!("intent {intent_id} has unknown side {side}"),
            })?;
            let applied = apply_fills(
                transaction,
                intent_id,
                &order.venue_order_id,
                side,
                &order.fills,
                now,
            )?;
            let filled = transaction.query_int(
                "SELECT CAST(COALESCE(SUM(qty), 0) AS BIGINT) FROM fills WHERE order_id = $1",
                &[Value::from(&order.venue_order_id)],
            )?;
            let status = if filled >= *size { "filled" } else { "open" };
            if applied.is_empty() {
                return Ok(0);
            }
            transaction.execute(
                "UPDATE orders SET status = $2 WHERE order_id = $1",
                &[Value::from(&order.venue_order_id), Value::from(status)],
            )?;
            events::append(
                transaction,
                &run_id,
                now,
                category::ORDER,
                "fills.synced",
                json!({
                    "fills": fills_json(&applied),
                    "intent_id": intent_id,
                    "order_id": order.venue_order_id,
                    "status": status,
                }),
            )?;
            Ok(applied.len())
        })
    }
}

/// Inserts the fills the book has not seen (by trade id) and moves the intent's position
/// by exactly those. Returns the fills it inserted.
fn apply_fills<'fills>(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    order_id: &str,
    side: crate::intent::Side,
    fills: &'fills [crate::venue::VenueFill],
    now: i64,
) -> Result<Vec<&'fills crate::venue::VenueFill>, StoreError> {
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

fn fills_json(fills: &[&crate::venue::VenueFill]) -> serde_json::Value {
    fills
        .iter()
        .map(|fill| json!({ "price": fill.price, "qty": fill.qty, "trade_id": fill.trade_id }))
        .collect()
}

#[derive(Clone, Copy)]
enum Unplaced<'reason> {
    /// The venue refused the order: the intent is `rejected`, for good.
    Rejected(&'reason str),
    /// The venue never accepted it: back to `pending`, placeable once when the signal
    /// comes again. The argument is the event category (recovery or not).
    NotAccepted(&'static str),
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

fn insert_intent(
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
    run_id: &str,
    signal: &Signal,
    created_ts: i64,
    now: i64,
) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO intents (intent_id, run_id, strategy, window_id, symbol, side, size, price, bar_t, status, created_ts, updated_ts) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'executing', $10, $11)",
        &[
            Value::from(intent_id),
            Value::from(run_id),
            Value::from(&signal.strategy),
            Value::from(&signal.window_id),
            Value::from(&signal.symbol),
            Value::from(signal.side.as_str()),
            Value::Int(signal.size),
            Value::Int(signal.price),
            Value::Int(signal.bar_t),
            Value::Int(created_ts),
            Value::Int(now),
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
) -> Result<(), BookError> {
    let entered = transaction.execute(
        "INSERT INTO window_entries (window_id, strategy_id, intent_id, ts) VALUES ($1, $2, $3, $4)",
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

/// Reads the breaker inside the entry transaction; a missing or unreadable row fails closed.
pub(crate) fn ensure_breaker_closed(
    transaction: &mut (dyn Transaction + '_),
) -> Result<(), BookError> {
    let row = transaction
        .query_optional(
            "SELECT state, reason FROM circuit_breaker WHERE id = 1",
            &[],
        )
        .map_err(|error| BookError::BreakerUnreadable {
            detail: error.to_string(),
        })?;
    match row.as_deref() {
        Some([Value::Text(state), _]) if state == "CLOSED" => Ok(()),
        Some([Value::Text(state), reason]) if state == "OPEN" => Err(BookError::BreakerOpen {
            reason: reason.as_text().unwrap_or("no reason recorded").to_owned(),
        }),
        other => Err(BookError::BreakerUnreadable {
            detail: format!("unexpected breaker row {other:?}"),
        }),
    }
}

fn ensure_daily_loss_ok(
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
