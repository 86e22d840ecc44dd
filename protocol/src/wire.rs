//! The line protocol: one JSON object per line, in both directions. See the crate
//! documentation for the conversation and [`crate::examples`] for one example of each line.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::crash::CrashSite;
use crate::signal::Signal;
use crate::state::TripReason;
use crate::venue::{OrderRequest, Venue, VenueError, VenueOrder, VenuePosition};

/// The version a book announces in its `ready` line.
pub const PROTOCOL_VERSION: u32 = 1;

/// What the driver asks of the book. The result each request gets is documented on its
/// variant.
///
/// Operator commands (close, trip, reset, checkpoint) are delivered at least once: a
/// driver that does not know whether one took effect (the book crashed) sends it again
/// with the same `command_id`, and a book that already applied that id applies nothing
/// more and answers as the first time did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// -> [`crate::Outcome`]
    Submit { signal: Signal },
    /// -> [`Closed`]. Cancels what the venue has not filled of the position's order first.
    ClosePosition {
        intent_id: String,
        exit_price: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command_id: Option<String>,
    },
    /// -> `null`
    TripBreaker {
        reason: TripReason,
        operator: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command_id: Option<String>,
    },
    /// -> `null`
    ResetBreaker {
        operator: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command_id: Option<String>,
    },
    /// -> [`crate::BreakerState`]
    Breaker,
    /// -> `null`
    RollDay,
    /// -> `null`
    Checkpoint {
        name: String,
        value: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command_id: Option<String>,
    },
    /// -> [`crate::RecoveryReport`]
    Recover,
    /// -> [`FillsSynced`]
    SyncFills,
    /// -> [`ExitReport`]. Verifies the venue's positions against the book's first (SPEC
    /// §2.8), then closes every open position whose mark crosses its stop-loss (if
    /// `stop_loss`) or take-profit (if `take_profit`).
    EvaluateExits {
        marks: Vec<Mark>,
        stop_loss: bool,
        take_profit: bool,
    },
    /// -> [`crate::BookState`]
    State,
}

impl Request {
    /// The request's `op`, as on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Submit { .. } => "submit",
            Request::ClosePosition { .. } => "close_position",
            Request::TripBreaker { .. } => "trip_breaker",
            Request::ResetBreaker { .. } => "reset_breaker",
            Request::Breaker => "breaker",
            Request::RollDay => "roll_day",
            Request::Checkpoint { .. } => "checkpoint",
            Request::Recover => "recover",
            Request::SyncFills => "sync_fills",
            Request::EvaluateExits { .. } => "evaluate_exits",
            Request::State => "state",
        }
    }
}

/// A request as a line: the driver's logical time, then the request's fields, in one
/// object (`{"now_ms":5,"op":"breaker"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestLine {
    /// Logical milliseconds; never less than the previous request's.
    pub now_ms: i64,
    #[serde(flatten)]
    pub request: Request,
}

/// The result of `close_position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    pub realized_pnl: i64,
}

/// A symbol's price now, for exit evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub symbol: String,
    pub price: i64,
}

/// How the venue's positions were verified before exits were evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verification", rename_all = "snake_case")]
pub enum Verification {
    /// The venue answered and agrees with the book (or holds less: see `orphans`).
    Verified,
    /// The venue rate-limited; a verification this many logical ms old was used.
    Cached { age_ms: i64 },
    /// Paper mode: the venue was not asked; the book's own checks ran.
    Skipped,
}

/// Why an exit was due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    StopLoss,
    TakeProfit,
}

/// One position an evaluation closed (or tried to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub intent_id: String,
    pub reason: ExitReason,
    /// The realised pnl, or why the close was refused.
    pub realized_pnl: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// The result of `evaluate_exits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitReport {
    #[serde(flatten)]
    pub verification: Verification,
    /// Symbols where the book holds more than the venue (logged, no halt).
    pub orphans: Vec<String>,
    pub warnings: Vec<String>,
    pub exits: Vec<Exit>,
}

/// The result of `sync_fills`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillsSynced {
    pub new_fills: u64,
}

/// What the book writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "line", rename_all = "snake_case")]
pub enum BookLine {
    /// The book opened (migrated, initialised) and waits for requests.
    Ready { protocol_version: u32 },
    /// A venue call; the driver answers with one [`VenueReply`] line.
    Venue(VenueCall),
    /// The request succeeded; `result` is the request's result.
    Ok { result: serde_json::Value },
    /// The request was refused or failed; the book keeps serving (unless it crashed).
    Error { problem: Problem },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum VenueCall {
    Place { order: OrderRequest },
    FindOrder { client_order_id: String },
    Positions,
    Cancel { client_order_id: String },
}

/// A venue call's result on the wire: `{"ok": ...}` or `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VenueResult<T> {
    Ok(T),
    Error(VenueError),
}

impl<T> From<Result<T, VenueError>> for VenueResult<T> {
    fn from(result: Result<T, VenueError>) -> VenueResult<T> {
        match result {
            Ok(value) => VenueResult::Ok(value),
            Err(error) => VenueResult::Error(error),
        }
    }
}

impl<T> From<VenueResult<T>> for Result<T, VenueError> {
    fn from(result: VenueResult<T>) -> Result<T, VenueError> {
        match result {
            VenueResult::Ok(value) => Ok(value),
            VenueResult::Error(error) => Err(error),
        }
    }
}

/// What the driver answers to a [`VenueCall`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum VenueReply {
    Place {
        result: VenueResult<VenueOrder>,
    },
    FindOrder {
        result: VenueResult<Option<VenueOrder>>,
    },
    Positions {
        result: VenueResult<Vec<VenuePosition>>,
    },
    Cancel {
        result: VenueResult<Option<VenueOrder>>,
    },
}

impl VenueCall {
    /// Answers the call with a real venue (the driver's side).
    pub fn answer(&self, venue: &mut dyn Venue) -> VenueReply {
        match self {
            VenueCall::Place { order } => VenueReply::Place {
                result: venue.place(order).into(),
            },
            VenueCall::FindOrder { client_order_id } => VenueReply::FindOrder {
                result: venue.find_order(client_order_id).into(),
            },
            VenueCall::Positions => VenueReply::Positions {
                result: venue.positions().into(),
            },
            VenueCall::Cancel { client_order_id } => VenueReply::Cancel {
                result: venue.cancel(client_order_id).into(),
            },
        }
    }
}

/// Why a request did not succeed: a kind to match on, and the book's own words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
    /// The intent the problem concerns, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent_id: Option<String>,
    /// What the venue answered, when the problem is the venue's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub venue_error: Option<VenueError>,
    /// Where the book crashed, for `crashed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_site: Option<CrashSite>,
}

impl Problem {
    pub fn new(kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem {
            kind,
            message: message.into(),
            intent_id: None,
            venue_error: None,
            crash_site: None,
        }
    }
}

/// Every kind of problem a book can answer. Refusals are answers a scenario expects (the
/// book did the right thing by refusing); uncertain outcomes ask the driver to recover;
/// failures are failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    // Refusals.
    InvalidSignal,
    /// Another intent already holds this (window, strategy).
    AlreadyEntered,
    /// Max open positions or max exposure would be exceeded.
    LimitReached,
    DailyLossLimit,
    BreakerOpen,
    /// The breaker could not be read, so the book fails closed.
    BreakerUnreadable,
    /// A serialization conflict persisted after a retry.
    SerializationConflict,
    /// The venue refused to act now (429/503); nothing was placed.
    VenueUnavailable,
    /// The book halted after an unknown outcome.
    Halted,
    /// Intents from before a restart are unresolved: recovery must run before placing.
    RecoveryRequired,
    OperatorRequired,
    OpenOrders,
    NoOpenPosition,
    // Uncertain outcomes.
    /// The venue call's outcome is unknown (timeout, 5xx): recover to settle it.
    VenueUncertain,
    /// The venue accepted, the book could not record it: halted, breaker tripped.
    OutcomeUnknown,
    // Failures.
    SchemaAhead,
    ChecksumDrift,
    UnknownSchemaVersion,
    MigrationFailed,
    /// The database belongs to a run of another identity (seed, dataset, config or mode):
    /// reopening it as this run would change every intent id. Nothing was written.
    WrongRun,
    Storage,
    /// The book stopped at an armed crash point, or its process died.
    Crashed,
    /// The request line was malformed or impossible (unknown op, missing field, time
    /// going backwards); nothing was done.
    BadRequest,
    /// The driver could not talk to the book (broken pipe, a line that is not protocol).
    Protocol,
    /// The venue holds positions the book lacks: the breaker tripped (StopLossBlind or
    /// TakeProfitBlind) and nothing was evaluated.
    Blind,
    /// The venue rate-limited and no verification was fresh enough: the breaker tripped
    /// (VerificationRateLimited) and nothing was evaluated.
    VerificationRateLimited,
    /// The venue could not be asked (a 5xx, a timeout): nothing was evaluated.
    VerificationFailed,
}

impl ProblemKind {
    /// A refusal the book is meant to give: a scenario's result, not a failure.
    pub fn is_refusal(self) -> bool {
        matches!(
            self,
            ProblemKind::InvalidSignal
                | ProblemKind::AlreadyEntered
                | ProblemKind::LimitReached
                | ProblemKind::DailyLossLimit
                | ProblemKind::BreakerOpen
                | ProblemKind::BreakerUnreadable
                | ProblemKind::SerializationConflict
                | ProblemKind::VenueUnavailable
                | ProblemKind::Halted
                | ProblemKind::RecoveryRequired
                | ProblemKind::Blind
                | ProblemKind::VerificationRateLimited
                | ProblemKind::VerificationFailed
                | ProblemKind::OperatorRequired
                | ProblemKind::OpenOrders
                | ProblemKind::NoOpenPosition
        )
    }
}

/// Writes one protocol line and flushes it.
pub fn write_line(out: &mut dyn Write, line: &impl Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string(line).map_err(std::io::Error::other)?;
    writeln!(out, "{text}")?;
    out.flush()
}

/// Reads one line of text; `None` at end of input.
pub fn read_text(input: &mut dyn BufRead) -> std::io::Result<Option<String>> {
    let mut text = String::new();
    if input.read_line(&mut text)? == 0 {
        return Ok(None);
    }
    Ok(Some(text))
}

/// Reads one protocol line; `None` at end of input.
pub fn read_line<T: for<'de> Deserialize<'de>>(
    input: &mut dyn BufRead,
) -> std::io::Result<Option<T>> {
    let Some(text) = read_text(input)? else {
        return Ok(None);
    };
    serde_json::from_str(&text).map(Some).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad protocol line {:?}: {error}", text.trim_end()),
        )
    })
}
