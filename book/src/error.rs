//! The book's typed errors: refusals a caller is expected to match on, and failures.
//! `serve` maps each onto the contract's problem kinds.

use protocol::VenueError;

use crate::crash::Crashed;
use crate::intent::InvalidSignal;
use crate::migrate::MigrateError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error(transparent)]
    InvalidSignal(#[from] InvalidSignal),
    /// Another intent already holds this (window, strategy): the UNIQUE constraint said so.
    #[error("strategy {strategy} already entered window {window_id}")]
    AlreadyEntered { window_id: String, strategy: String },
    /// The conditional counter update matched no row: a limit would be exceeded.
    #[error("position limits reached (max open or max exposure)")]
    LimitReached,
    #[error("daily loss limit reached on day {day}: pnl {pnl}, limit -{max_daily_loss}")]
    DailyLossLimit {
        day: i64,
        pnl: i64,
        max_daily_loss: i64,
    },
    #[error("circuit breaker is open ({reason}); nothing is placed until an operator resets it")]
    BreakerOpen { reason: String },
    /// The breaker's state could not be read: fail closed.
    #[error("circuit breaker state is unreadable ({detail}); failing closed")]
    BreakerUnreadable { detail: String },
    #[error("serialization conflict persisted after a retry: {message}")]
    SerializationConflict { message: String },
    /// The venue may have accepted the order but the book could not record it. The breaker
    /// is tripped (PositionTrackingFailed) and this book places nothing more.
    #[error("outcome of intent {intent_id} is unknown: the venue accepted it but recording failed ({detail}); halted")]
    OutcomeUnknown { intent_id: String, detail: String },
    /// The venue call's outcome is unknown (timeout, 5xx). The intent stays `executing`;
    /// `recover` asks the venue and settles it.
    #[error("venue outcome for intent {intent_id} is uncertain: {source}")]
    VenueUncertain {
        intent_id: String,
        #[source]
        source: VenueError,
    },
    /// The venue refused to act now (429/503); the reservation was released.
    #[error("venue unavailable for intent {intent_id}: {source}")]
    VenueUnavailable {
        intent_id: String,
        #[source]
        source: VenueError,
    },
    #[error("book is halted after an unknown outcome: {reason}")]
    Halted { reason: String },
    /// Intents from before this open are still `executing`: their outcome is unknown until
    /// recovery asks the venue, so nothing is placed before it has.
    #[error("{unresolved} intent(s) from before the restart are unresolved: nothing is placed until recovery has run")]
    RecoveryRequired { unresolved: usize },
    #[error("breaker reset refused: an operator id is required")]
    OperatorRequired,
    #[error("breaker reset refused: {open_orders} order(s) still open")]
    OpenOrders { open_orders: i64 },
    #[error("no open position for intent {intent_id}")]
    NoOpenPosition { intent_id: String },
    /// The venue holds positions the book lacks: the breaker tripped, nothing evaluated.
    #[error("the venue holds positions the book lacks ({symbols:?}): breaker tripped, exits not evaluated blind")]
    Blind { symbols: Vec<String> },
    /// The venue rate-limited and no verification was fresh: the breaker tripped.
    #[error("the venue is rate limiting and no verification is under 30 s old: breaker tripped, exits not evaluated")]
    VerificationRateLimited,
    /// The venue's positions could not be read (never taken as "no positions").
    #[error("the venue's positions could not be verified: {source}; exits not evaluated")]
    VerificationFailed {
        #[source]
        source: VenueError,
    },
    /// The database's run was started with another identity: opened as this run, every
    /// intent id (and client order id) would change across the restart.
    #[error(
        "run {run_id} in this database was started with {field} {stored}, not {given}; refusing to \
         reopen it as another run (every intent id would change): reopen it with the run's own \
         {field}, or start a new run under a new run id"
    )]
    WrongRun {
        run_id: String,
        field: &'static str,
        stored: String,
        given: String,
    },
    /// An armed crash point fired (tests only): everything after it did not happen.
    #[error(transparent)]
    Crashed(#[from] Crashed),
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::crash::CommitError> for BookError {
    fn from(error: crate::crash::CommitError) -> BookError {
        match error {
            crate::crash::CommitError::Store(error) => BookError::Store(error),
            crate::crash::CommitError::Crashed(crashed) => BookError::Crashed(crashed),
        }
    }
}
