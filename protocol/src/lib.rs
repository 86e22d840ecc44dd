//! The contract between a trading book and bookproof.
//!
//! bookproof verifies a book through this crate's types only: the signals it receives, the
//! venue it calls, the outcomes and problems it answers, the state it holds, and the crash
//! sites it can be stopped at. The reference book (`book`) implements the contract in Rust;
//! a book written in any language implements the line protocol below and faces the same
//! process gates.
//!
//! # The line protocol
//! One JSON object per line on the book's stdin and stdout; every key and every enum value
//! is snake_case. The conversation:
//!
//! 1. The book starts (`--sqlite PATH` or `--postgres` with `BOOK_POSTGRES_URL`, plus
//!    `--run-id`, `--seed` and optionally `--crash-at POINT#HIT`), opens its database and
//!    writes `{"line":"ready","protocol_version":1}`.
//! 2. The driver writes one [`RequestLine`]: `now_ms` (logical time, never going
//!    backwards) and the request's `op` with its fields.
//! 3. The book answers with zero or more `{"line":"venue","call":...}` lines, each of which
//!    the driver answers with one [`VenueReply`] line (so the venue lives in the driver and
//!    outlives the book), then exactly one `{"line":"ok","result":...}` or
//!    `{"line":"error","problem":{"kind":...,"message":...}}`.
//! 4. A malformed request (unknown op, missing field, time going backwards) gets an
//!    `error` line of kind `bad_request` naming the problem; the book keeps serving.
//!    End of input ends the book with exit code 0.
//!
//! [`examples::EXAMPLES`] holds one example of every line; each request's result is
//! documented on its [`Request`] variant.

pub mod crash;
pub mod examples;
pub mod signal;
pub mod state;
pub mod venue;
pub mod wire;

pub use crate::crash::{CrashPoint, CrashSite, Moment};
pub use crate::signal::{Side, Signal};
pub use crate::state::{
    BookState, BreakerState, CheckpointState, Counters, DailyState, IntentState, IntentStatus,
    OrderState, OrderStatus, Outcome, PositionState, RecoveryReport, TripReason, WindowEntry,
};
pub use crate::venue::{
    filled_qty, net_positions, OrderRequest, Venue, VenueError, VenueFill, VenueOrder,
    VenuePosition,
};
pub use crate::wire::{
    read_line, read_text, write_line, BookLine, Closed, Exit, ExitReason, ExitReport, FillsSynced,
    Mark, Problem, ProblemKind, Request, RequestLine, VenueCall, VenueReply, VenueResult,
    Verification, PROTOCOL_VERSION,
};
