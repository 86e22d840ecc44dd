//! The `book` binary's line protocol: one JSON object per line on stdin and stdout.
//!
//! The driver (the harness, or any program) writes a [`Request`]; the book answers with
//! [`BookLine`]s: zero or more venue calls, each of which the driver answers with one
//! [`VenueReply`] line, then exactly one `done` line carrying the request's result. The
//! venue therefore lives in the driver's process and survives the book's death, as an
//! exchange does. A book written in another language can speak the same protocol.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::book::Book;
use crate::breaker::TripReason;
use crate::error::BookError;
use crate::intent::Signal;
use crate::store::StoreError;
use crate::venue::{OrderRequest, Venue, VenueError, VenueOrder, VenuePosition};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Submit {
        now_ms: i64,
        signal: Signal,
    },
    ClosePosition {
        now_ms: i64,
        intent_id: String,
        exit_price: i64,
    },
    TripBreaker {
        now_ms: i64,
        reason: TripReason,
        operator: String,
    },
    ResetBreaker {
        now_ms: i64,
        operator: String,
        reason: String,
    },
    Breaker {
        now_ms: i64,
    },
    RollDay {
        now_ms: i64,
    },
    Checkpoint {
        now_ms: i64,
        name: String,
        value: String,
    },
    Recover {
        now_ms: i64,
    },
    SyncFills {
        now_ms: i64,
    },
}

impl Request {
    /// The driver's logical time when it sent the request.
    pub fn now_ms(&self) -> i64 {
        match self {
            Request::Submit { now_ms, .. }
            | Request::ClosePosition { now_ms, .. }
            | Request::TripBreaker { now_ms, .. }
            | Request::ResetBreaker { now_ms, .. }
            | Request::Breaker { now_ms }
            | Request::RollDay { now_ms }
            | Request::Checkpoint { now_ms, .. }
            | Request::Recover { now_ms }
            | Request::SyncFills { now_ms } => *now_ms,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookLine {
    /// The book opened (migrated, initialised) and waits for requests.
    Ready,
    /// A venue call; the driver answers with one [`VenueReply`] line.
    Venue(VenueCall),
    /// The answer to the current request.
    Done(Result<serde_json::Value, BookError>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VenueCall {
    Place(OrderRequest),
    FindOrder(String),
    Positions,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VenueReply {
    Place(Result<VenueOrder, VenueError>),
    FindOrder(Result<Option<VenueOrder>, VenueError>),
    Positions(Result<Vec<VenuePosition>, VenueError>),
}

impl VenueCall {
    /// Answers the call with a real venue (the driver's side).
    pub fn answer(&self, venue: &mut dyn Venue) -> VenueReply {
        match self {
            VenueCall::Place(order) => VenueReply::Place(venue.place(order)),
            VenueCall::FindOrder(client_order_id) => {
                VenueReply::FindOrder(venue.find_order(client_order_id))
            }
            VenueCall::Positions => VenueReply::Positions(venue.positions()),
        }
    }
}

/// Runs `request` on `book`; the result as JSON.
pub fn serve(book: &mut Book, request: Request) -> Result<serde_json::Value, BookError> {
    let json = |value: Result<serde_json::Value, serde_json::Error>| {
        value.map_err(|error| {
            BookError::Store(StoreError::Data {
                message: error.to_string(),
            })
        })
    };
    match request {
        Request::Submit { signal, .. } => json(serde_json::to_value(book.submit(&signal)?)),
        Request::ClosePosition {
            intent_id,
            exit_price,
            ..
        } => Ok(book.close_position(&intent_id, exit_price)?.into()),
        Request::TripBreaker {
            reason, operator, ..
        } => json(serde_json::to_value(book.trip_breaker(reason, &operator)?)),
        Request::ResetBreaker {
            operator, reason, ..
        } => json(serde_json::to_value(
            book.reset_breaker(&operator, &reason)?,
        )),
        Request::Breaker { .. } => json(serde_json::to_value(book.breaker()?)),
        Request::RollDay { .. } => json(serde_json::to_value(book.roll_day()?)),
        Request::Checkpoint { name, value, .. } => {
            json(serde_json::to_value(book.checkpoint(&name, &value)?))
        }
        Request::Recover { .. } => json(serde_json::to_value(book.recover()?)),
        Request::SyncFills { .. } => json(serde_json::to_value(book.sync_fills()?)),
    }
}

/// Writes one protocol line and flushes it.
pub fn write_line(out: &mut dyn Write, line: &impl Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string(line).map_err(std::io::Error::other)?;
    writeln!(out, "{text}")?;
    out.flush()
}

/// Reads one protocol line; `None` at end of input.
pub fn read_line<T: for<'de> Deserialize<'de>>(
    input: &mut dyn BufRead,
) -> std::io::Result<Option<T>> {
    let mut text = String::new();
    if input.read_line(&mut text)? == 0 {
        return Ok(None);
    }
    serde_json::from_str(&text).map(Some).map_err(|error| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad protocol line {text:?}: {error}"),
        )
    })
}

/// The book side's venue: every call becomes a line on stdout, answered on stdin.
#[derive(Debug, Default)]
pub struct LineVenue;

impl LineVenue {
    fn call(&mut self, call: VenueCall) -> Result<VenueReply, VenueError> {
        // The driver is gone or spoke nonsense: the call's outcome is unknown (599).
        let unreachable_driver = |_: std::io::Error| VenueError::Internal { status: 599 };
        write_line(&mut std::io::stdout().lock(), &BookLine::Venue(call))
            .map_err(unreachable_driver)?;
        match read_line::<VenueReply>(&mut std::io::stdin().lock()) {
            Ok(Some(reply)) => Ok(reply),
            Ok(None) => Err(VenueError::Internal { status: 599 }),
            Err(error) => Err(unreachable_driver(error)),
        }
    }
}

impl Venue for LineVenue {
    fn place(&mut self, order: &OrderRequest) -> Result<VenueOrder, VenueError> {
        match self.call(VenueCall::Place(order.clone()))? {
            VenueReply::Place(result) => result,
            _ => Err(VenueError::Internal { status: 599 }),
        }
    }

    fn find_order(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError> {
        match self.call(VenueCall::FindOrder(client_order_id.to_owned()))? {
            VenueReply::FindOrder(result) => result,
            _ => Err(VenueError::Internal { status: 599 }),
        }
    }

    fn positions(&mut self) -> Result<Vec<VenuePosition>, VenueError> {
        match self.call(VenueCall::Positions)? {
            VenueReply::Positions(result) => result,
            _ => Err(VenueError::Internal { status: 599 }),
        }
    }
}
