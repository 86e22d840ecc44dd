//! Deliberately broken variants of the book, one known bug each.
//!
//! A gate that cannot catch a broken book proves nothing, so every gate has a test that
//! runs it against a mutant and asserts that it fails. Each bug lives here behind a small
//! helper that the correct path calls once; with no mutant selected
//! (`BookOptions::mutant == None`) every helper returns "no change".

use std::sync::atomic::{AtomicU64, Ordering};

use crate::rows::OpenPosition;
use crate::store::{StoreError, Transaction, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// The intent id mixes in a per-process counter bumped on every open, so the same
    /// signal after a restart gets a new id and is placed a second time.
    IntentIdWithOpenCounter,
    /// Creating an intent skips the "does it already exist" lookup and writes a fresh,
    /// suffixed intent for a signal it has already placed (an insert that is not idempotent).
    NonIdempotentCreate,
    /// A new intent's `created_ts` comes from the wall clock instead of the book's Clock.
    WallClockTimestamp,
    /// The `intent.reserved` payload is serialised from a HashMap, so its key order
    /// follows the map's random iteration order.
    HashMapPayloadOrder,
    /// The `intent.reserved` payload carries the price formatted through a float (in
    /// major units), not the fixed-point integer.
    FloatPrice,
    /// Recovery re-places every executing intent at the venue without asking whether the
    /// venue already has it.
    BlindReplaceOnRecovery,
    /// Today's trade count is kept in the process and written as an absolute value, so a
    /// restart resets it to zero.
    DailyCounterInMemory,
    /// The confirm commits the order row in a transaction of its own before the rest
    /// (fills, position, intent `completed`): a crash between leaves half a confirm.
    ConfirmSplitInTwo,
    /// The day roll writes its checkpoint in a transaction of its own before the work it
    /// covers: a crash between makes the restarted book believe the day was rolled.
    CheckpointBeforeWork,
    /// A close that is not idempotent: it does not require the position to be open and
    /// ignores command ids, so a close delivered twice realises the pnl again and frees the
    /// counters again.
    NonIdempotentClose,
    /// Recovery reads a venue error on the look-up as "the venue does not have the order":
    /// it releases the reservation, and the order can be placed a second time.
    VenueErrorReadAsNotFound,
    /// The confirm records the order as `filled` even when the venue filled only part of
    /// it, so the rest is never synced.
    PartialFillRecordedAsFilled,
    /// Recovery rejects every executing intent without asking the venue, which may well
    /// hold (and fill) the order.
    RecoveryRejectsWithoutAsking,
    /// A placement the venue rejects as a duplicate client order id is treated as a final
    /// rejection, although the venue holds the order.
    DuplicateRejectionTreatedAsFailure,
    /// A close neither cancels the unfilled rest at the venue nor keeps syncing the order:
    /// fills the venue makes afterwards are never recorded. (Found in the reference book by
    /// a check from outside: kept as a mutant so that the gates keep catching it.)
    CloseStopsFillSync,
    /// The config accepts `CONFIRM_LIVE_TRADING=1` as a confirmation to trade live.
    ConfirmLiveAcceptsOne,
    /// A `DATABASE_URL` that does not parse is quoted whole in the error, password and all.
    UrlErrorShowsPassword,
    /// A recording that failed after the venue accepted is logged and the book carries on:
    /// no halt, no trip.
    LogAndContinue,
    /// A missing breaker row is read as CLOSED instead of failing closed.
    MissingBreakerReadAsClosed,
    /// A book that opens with intents still executing places before recovering them.
    PlacesBeforeRecovery,
    /// Stop-loss and take-profit read the positions the process loaded when it opened, not
    /// the database: positions opened since are never stopped out.
    StopLossReadsMemory,
    /// The verifier reads a venue failure (a 500) as "no positions" and evaluates anyway.
    VerifierReadsErrorAsEmpty,
    /// A database is reopened as its run whatever seed, dataset, config or mode it is
    /// given (every intent id changes across the restart).
    ReopensAsAnyRun,
    /// Check-then-set entry: "is the window entered?" is read in its own transaction
    /// first, and the entry is then written with ON CONFLICT DO NOTHING, so two entries
    /// that both read "no" both place.
    CheckThenSetEntry,
    /// The open-position and exposure limits are checked in application code from a read
    /// of the counters, and the counters then raised unconditionally.
    LimitCheckedInApplication,
    /// The latch's "halted?" is a relaxed fast path read before the placement counts
    /// itself in flight (see `latch::Flaw`).
    LatchCheckedBeforeCount,
}

impl Mutant {
    pub const ALL: [Mutant; 26] = [
        Mutant::IntentIdWithOpenCounter,
        Mutant::NonIdempotentCreate,
        Mutant::WallClockTimestamp,
        Mutant::HashMapPayloadOrder,
        Mutant::FloatPrice,
        Mutant::BlindReplaceOnRecovery,
        Mutant::DailyCounterInMemory,
        Mutant::ConfirmSplitInTwo,
        Mutant::CheckpointBeforeWork,
        Mutant::NonIdempotentClose,
        Mutant::VenueErrorReadAsNotFound,
        Mutant::PartialFillRecordedAsFilled,
        Mutant::RecoveryRejectsWithoutAsking,
        Mutant::DuplicateRejectionTreatedAsFailure,
        Mutant::CloseStopsFillSync,
        Mutant::ConfirmLiveAcceptsOne,
        Mutant::UrlErrorShowsPassword,
        Mutant::LogAndContinue,
        Mutant::MissingBreakerReadAsClosed,
        Mutant::PlacesBeforeRecovery,
        Mutant::StopLossReadsMemory,
        Mutant::VerifierReadsErrorAsEmpty,
        Mutant::ReopensAsAnyRun,
        Mutant::CheckThenSetEntry,
        Mutant::LimitCheckedInApplication,
        Mutant::LatchCheckedBeforeCount,
    ];

    /// The mutant with this [`Mutant::name`].
    pub fn parse(name: &str) -> Option<Mutant> {
        Mutant::ALL.into_iter().find(|mutant| mutant.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Mutant::IntentIdWithOpenCounter => "intent-id-with-open-counter",
            Mutant::NonIdempotentCreate => "non-idempotent-create",
            Mutant::WallClockTimestamp => "wall-clock-timestamp",
            Mutant::HashMapPayloadOrder => "hash-map-payload-order",
            Mutant::FloatPrice => "float-price",
            Mutant::BlindReplaceOnRecovery => "blind-replace-on-recovery",
            Mutant::DailyCounterInMemory => "daily-counter-in-memory",
            Mutant::ConfirmSplitInTwo => "confirm-split-in-two",
            Mutant::CheckpointBeforeWork => "checkpoint-before-work",
            Mutant::NonIdempotentClose => "non-idempotent-close",
            Mutant::VenueErrorReadAsNotFound => "venue-error-read-as-not-found",
            Mutant::PartialFillRecordedAsFilled => "partial-fill-recorded-as-filled",
            Mutant::RecoveryRejectsWithoutAsking => "recovery-rejects-without-asking",
            Mutant::DuplicateRejectionTreatedAsFailure => "duplicate-rejection-treated-as-failure",
            Mutant::CloseStopsFillSync => "close-stops-fill-sync",
            Mutant::ConfirmLiveAcceptsOne => "confirm-live-accepts-one",
            Mutant::UrlErrorShowsPassword => "url-error-shows-password",
            Mutant::LogAndContinue => "log-and-continue",
            Mutant::MissingBreakerReadAsClosed => "missing-breaker-read-as-closed",
            Mutant::PlacesBeforeRecovery => "places-before-recovery",
            Mutant::StopLossReadsMemory => "stop-loss-reads-memory",
            Mutant::VerifierReadsErrorAsEmpty => "verifier-reads-error-as-empty",
            Mutant::ReopensAsAnyRun => "reopens-as-any-run",
            Mutant::CheckThenSetEntry => "check-then-set-entry",
            Mutant::LimitCheckedInApplication => "limit-checked-in-application",
            Mutant::LatchCheckedBeforeCount => "latch-checked-before-count",
        }
    }
}

/// Bumped by every `Book::open` under [`Mutant::IntentIdWithOpenCounter`].
static OPEN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What a mutant keeps in the process. Empty in production.
#[derive(Debug, Default)]
pub(crate) struct MutantState {
    mutant: Option<Mutant>,
    /// [`Mutant::IntentIdWithOpenCounter`]: this open's number.
    open_count: u64,
    /// [`Mutant::DailyCounterInMemory`]: trades counted since this open.
    trades_in_memory: i64,
    /// [`Mutant::StopLossReadsMemory`]: the open positions as loaded when the book opened.
    position_cache: Option<Vec<OpenPosition>>,
}

impl MutantState {
    pub(crate) fn opened(mutant: Option<Mutant>) -> MutantState {
        let open_count = match mutant {
            Some(Mutant::IntentIdWithOpenCounter) => {
                OPEN_COUNTER.fetch_add(1, Ordering::SeqCst) + 1
            }
            _ => 0,
        };
        MutantState {
            mutant,
            open_count,
            trades_in_memory: 0,
            position_cache: None,
        }
    }

    /// Whether the mutant wants the open positions cached at open.
    pub(crate) fn caches_positions(&self) -> bool {
        self.mutant == Some(Mutant::StopLossReadsMemory)
    }

    pub(crate) fn cache_positions(&mut self, positions: Vec<OpenPosition>) {
        self.position_cache = Some(positions);
    }

    /// [`Mutant::StopLossReadsMemory`]: the positions exits are evaluated on. `None`: read
    /// the database.
    pub(crate) fn cached_positions(&self) -> Option<&[OpenPosition]> {
        self.position_cache.as_deref()
    }

    /// The dataset digest that goes into intent ids: `dataset_sha`, or, under
    /// [`Mutant::IntentIdWithOpenCounter`], that digest salted with this open's number.
    pub(crate) fn id_dataset(&self, dataset_sha: &str) -> String {
        match self.mutant {
            Some(Mutant::IntentIdWithOpenCounter) => format!("{dataset_sha}#{}", self.open_count),
            _ => dataset_sha.to_owned(),
        }
    }

    /// [`Mutant::DailyCounterInMemory`]: counts the trade in memory and returns the
    /// absolute count to write. `None`: count it in the database.
    pub(crate) fn trade_counted_in_memory(&mut self) -> Option<i64> {
        if self.mutant != Some(Mutant::DailyCounterInMemory) {
            return None;
        }
        self.trades_in_memory += 1;
        Some(self.trades_in_memory)
    }
}

/// [`Mutant::NonIdempotentCreate`]: a fresh id for a copy of an intent that already
/// exists. `None`: use the existing intent.
pub(crate) fn copy_of_existing_intent(
    mutant: Option<Mutant>,
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
) -> Result<Option<String>, StoreError> {
    if mutant != Some(Mutant::NonIdempotentCreate) {
        return Ok(None);
    }
    let copies = transaction.query_int(
        "SELECT COUNT(*) FROM intents WHERE intent_id LIKE $1",
        &[Value::Text(format!("{intent_id}%"))],
    )?;
    Ok(Some(format!("{intent_id}-{copies}")))
}

/// The `created_ts` of a new intent: `now`, or under [`Mutant::WallClockTimestamp`] the
/// wall clock in nanoseconds since the Unix epoch: exactly what the book must never
/// persist. Lives here, and only here, so that the deliberate bug is easy to find.
pub(crate) fn created_ts(mutant: Option<Mutant>, now: i64) -> i64 {
    if mutant != Some(Mutant::WallClockTimestamp) {
        return now;
    }
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
}

/// The `intent.reserved` payload as text: canonical JSON, or under
/// [`Mutant::HashMapPayloadOrder`] in a HashMap's random key order, or under
/// [`Mutant::FloatPrice`] with the price as a float in major units.
pub(crate) fn reserved_payload(mutant: Option<Mutant>, payload: serde_json::Value) -> String {
    match mutant {
        Some(Mutant::HashMapPayloadOrder) => hash_map_order(&payload),
        Some(Mutant::FloatPrice) => float_price(payload).to_string(),
        _ => payload.to_string(),
    }
}

fn hash_map_order(payload: &serde_json::Value) -> String {
    let map: std::collections::HashMap<&String, &serde_json::Value> = payload
        .as_object()
        .map(|object| object.iter().collect())
        .unwrap_or_default();
    let fields: Vec<String> = map
        .iter()
        .map(|(key, value)| format!("{}:{value}", serde_json::Value::String((*key).clone())))
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn float_price(mut payload: serde_json::Value) -> serde_json::Value {
    if let Some(price) = payload.get("price").and_then(serde_json::Value::as_i64) {
        let major = price as f64 / 100.0;
        payload["price"] = serde_json::json!(major);
    }
    payload
}

/// [`Mutant::DailyCounterInMemory`]: writes today's trade count as the absolute value the
/// process counted.
pub(crate) fn write_trade_count(
    transaction: &mut (dyn Transaction + '_),
    day: i64,
    count: i64,
) -> Result<(), StoreError> {
    transaction.execute(
        "INSERT INTO daily_limits (day, pnl, trade_count) VALUES ($1, 0, $2) \
         ON CONFLICT (day) DO UPDATE SET trade_count = $2",
        &[Value::Int(day), Value::Int(count)],
    )?;
    Ok(())
}

/// [`Mutant::ConfirmSplitInTwo`]: the confirm writes its order row first, on its own.
pub(crate) fn splits_confirm(mutant: Option<Mutant>) -> bool {
    mutant == Some(Mutant::ConfirmSplitInTwo)
}

/// [`Mutant::CheckpointBeforeWork`]: the day roll commits its checkpoint first, on its own.
pub(crate) fn checkpoints_before_work(mutant: Option<Mutant>) -> bool {
    mutant == Some(Mutant::CheckpointBeforeWork)
}

/// [`Mutant::BlindReplaceOnRecovery`]: recovery places again instead of asking.
pub(crate) fn replaces_blindly(mutant: Option<Mutant>) -> bool {
    mutant == Some(Mutant::BlindReplaceOnRecovery)
}

/// The close's command id: ignored under [`Mutant::NonIdempotentClose`].
pub(crate) fn close_command_id(mutant: Option<Mutant>, command_id: Option<&str>) -> Option<&str> {
    match mutant {
        Some(Mutant::NonIdempotentClose) => None,
        _ => command_id,
    }
}

/// How a close finds its position: only an open one, or under
/// [`Mutant::NonIdempotentClose`] any.
pub(crate) fn close_lookup_sql(mutant: Option<Mutant>) -> &'static str {
    match mutant {
        Some(Mutant::NonIdempotentClose) => {
            "SELECT p.symbol, i.side, p.qty FROM positions p JOIN intents i ON i.intent_id = p.intent_id \
             WHERE p.intent_id = $1"
        }
        _ => {
            "SELECT p.symbol, i.side, p.qty FROM positions p JOIN intents i ON i.intent_id = p.intent_id \
             WHERE p.intent_id = $1 AND p.status = 'open'"
        }
    }
}

/// [`Mutant::CloseStopsFillSync`]: the close does not cancel the unfilled rest.
pub(crate) fn skips_cancel_on_close(mutant: Option<Mutant>) -> bool {
    mutant == Some(Mutant::CloseStopsFillSync)
}

/// [`Mutant::CloseStopsFillSync`]: the closed position's order is marked done, so fill
/// syncing skips it.
pub(crate) fn stop_syncing_closed_order(
    mutant: Option<Mutant>,
    transaction: &mut (dyn Transaction + '_),
    intent_id: &str,
) -> Result<(), StoreError> {
    if mutant == Some(Mutant::CloseStopsFillSync) {
        transaction.execute(
            "UPDATE orders SET status = 'filled' WHERE intent_id = $1",
            &[Value::from(intent_id)],
        )?;
    }
    Ok(())
}

/// The status a confirm records: `status`, or `filled` whatever filled under
/// [`Mutant::PartialFillRecordedAsFilled`].
pub(crate) fn confirmed_status(mutant: Option<Mutant>, status: &'static str) -> &'static str {
    match mutant {
        Some(Mutant::PartialFillRecordedAsFilled) => "filled",
        _ => status,
    }
}

/// [`Mutant::VenueErrorReadAsNotFound`]: recovery reads a failed look-up as "not found".
pub(crate) fn reads_lookup_error_as_not_found(mutant: Option<Mutant>) -> bool {
    mutant == Some(Mutant::VenueErrorReadAsNotFound)
}

/// [`Mutant::RecoveryRejectsWithoutAsking`]: recovery rejects without asking.
pub(crate) fn rejects_without_asking(mutant: Option<Mutant>) -> bool {
    mutant == Some(Mutant::RecoveryRejectsWithoutAsking)
}

/// [`Mutant::DuplicateRejectionTreatedAsFailure`]: a duplicate rejection is final.
pub(crate) fn duplicate_is_final(mutant: Option<Mutant>) -> bool {
    mutant == Some(Mutant::DuplicateRejectionTreatedAsFailure)
}

/// [`Mutant::LogAndContinue`]: a failed recording neither halts nor trips.
pub(crate) fn logs_and_continues(mutant: Option<Mutant>) -> bool {
    mutant == Some(Mutant::LogAndContinue)
}

/// [`Mutant::MissingBreakerReadAsClosed`]: a missing breaker row reads CLOSED.
pub(crate) fn missing_breaker_row(mutant: Option<Mutant>) -> Option<protocol::BreakerState> {
    (mutant == Some(Mutant::MissingBreakerReadAsClosed)).then_some(protocol::BreakerState {
        open: false,
        reason: None,
        failure_count: 0,
    })
}

/// The latch a book makes (or its process shares): flawed under
/// [`Mutant::LatchCheckedBeforeCount`].
pub(crate) fn latch(mutant: Option<Mutant>) -> latch::Latch {
    match mutant {
        Some(Mutant::LatchCheckedBeforeCount) => {
            latch::Latch::with_flaw(latch::Flaw::CheckedBeforeCount)
        }
        _ => latch::Latch::new(),
    }
}

/// The window entry's INSERT: a conflict is an error the book answers `AlreadyEntered`,
/// or under [`Mutant::CheckThenSetEntry`] ignored (the earlier read decided).
pub(crate) fn enter_window_sql(mutant: Option<Mutant>) -> &'static str {
    match mutant {
        Some(Mutant::CheckThenSetEntry) => {
            "INSERT INTO window_entries (window_id, strategy_id, intent_id, ts) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (window_id, strategy_id) DO NOTHING"
        }
        _ => "INSERT INTO window_entries (window_id, strategy_id, intent_id, ts) VALUES ($1, $2, $3, $4)",
    }
}

/// The counters' UPDATE: conditional on the limits, or under
/// [`Mutant::LimitCheckedInApplication`] unconditional (the earlier read decided).
pub(crate) fn take_counters_sql(mutant: Option<Mutant>) -> &'static str {
    match mutant {
        Some(Mutant::LimitCheckedInApplication) => {
            "UPDATE position_counters SET open_count = open_count + 1, exposure = exposure + $1 \
             WHERE id = 1 RETURNING open_count"
        }
        _ => {
            "UPDATE position_counters SET open_count = open_count + 1, exposure = exposure + $1 \
             WHERE id = 1 AND open_count < max_open AND exposure + $1 <= max_exposure \
             RETURNING open_count"
        }
    }
}

/// A guard read before reserving, in a transaction of its own: a count, non-zero to
/// refuse.
pub(crate) enum ReadFirst {
    /// Parameters: window, strategy.
    Entry(&'static str),
    /// Parameter: the signal's notional.
    Limit(&'static str),
}

/// What [`Mutant::CheckThenSetEntry`] and [`Mutant::LimitCheckedInApplication`] read
/// before reserving; `None` for every other book.
pub(crate) fn read_first(mutant: Option<Mutant>) -> Option<ReadFirst> {
    match mutant {
        Some(Mutant::CheckThenSetEntry) => Some(ReadFirst::Entry(
            "SELECT COUNT(*) FROM window_entries WHERE window_id = $1 AND strategy_id = $2",
        )),
        Some(Mutant::LimitCheckedInApplication) => Some(ReadFirst::Limit(
            "SELECT COUNT(*) FROM position_counters \
             WHERE id = 1 AND (open_count >= max_open OR exposure + $1 > max_exposure)",
        )),
        _ => None,
    }
}

/// [`Mutant::ReopensAsAnyRun`]: the run's identity is not checked on reopen.
pub(crate) fn reopens_as_any_run(mutant: Option<Mutant>) -> bool {
    mutant == Some(Mutant::ReopensAsAnyRun)
}

/// [`Mutant::PlacesBeforeRecovery`]: unresolved intents do not stop placements.
pub(crate) fn places_before_recovery(mutant: Option<Mutant>) -> bool {
    mutant == Some(Mutant::PlacesBeforeRecovery)
}

/// [`Mutant::VerifierReadsErrorAsEmpty`]: a failed position read becomes "no positions".
pub(crate) fn verified_positions(
    mutant: Option<Mutant>,
    answer: Result<Vec<protocol::VenuePosition>, protocol::VenueError>,
) -> Result<Vec<protocol::VenuePosition>, protocol::VenueError> {
    match answer {
        Err(protocol::VenueError::Internal { .. })
            if mutant == Some(Mutant::VerifierReadsErrorAsEmpty) =>
        {
            Ok(Vec::new())
        }
        other => other,
    }
}
