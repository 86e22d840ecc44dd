//! What a book answers: the outcome of a placement, of a recovery, the breaker, and the
//! book's whole canonical state. Everything a driver needs without reading the book's
//! database or recomputing its ids.

use serde::{Deserialize, Serialize};

use crate::signal::Side;

/// Why the circuit breaker opened (SPEC §2.6).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum TripReason {
    StopLossBlind,
    TakeProfitBlind,
    PositionTrackingFailed,
    VerificationRateLimited,
    SerializationConflict,
    ManualTrip,
}

impl TripReason {
    pub const ALL: [TripReason; 6] = [
        TripReason::StopLossBlind,
        TripReason::TakeProfitBlind,
        TripReason::PositionTrackingFailed,
        TripReason::VerificationRateLimited,
        TripReason::SerializationConflict,
        TripReason::ManualTrip,
    ];

    /// The name SPEC §2.6 gives the reason (and the reference book persists).
    pub fn name(self) -> &'static str {
        match self {
            TripReason::StopLossBlind => "StopLossBlind",
            TripReason::TakeProfitBlind => "TakeProfitBlind",
            TripReason::PositionTrackingFailed => "PositionTrackingFailed",
            TripReason::VerificationRateLimited => "VerificationRateLimited",
            TripReason::SerializationConflict => "SerializationConflict",
            TripReason::ManualTrip => "ManualTrip",
        }
    }

    /// The reason with this [`TripReason::name`].
    pub fn from_name(name: &str) -> Option<TripReason> {
        TripReason::ALL
            .into_iter()
            .find(|reason| reason.name() == name)
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum IntentStatus {
    /// Known, holding no reservation: placeable once when its signal comes again.
    Pending,
    /// Reserved; the venue may or may not have the order.
    Executing,
    /// Placed and recorded.
    Completed,
    /// Refused by the venue, for good.
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
        [
            IntentStatus::Pending,
            IntentStatus::Executing,
            IntentStatus::Completed,
            IntentStatus::Rejected,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// What a book did with a signal.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Reserved, placed and recorded, with the client order id the venue received.
    Placed {
        intent_id: String,
        client_order_id: String,
        order_id: String,
    },
    /// The intent already existed and is not placeable again: nothing was sent.
    Existing {
        intent_id: String,
        status: IntentStatus,
    },
    /// The venue refused the order; final.
    Rejected {
        intent_id: String,
        client_order_id: String,
        reason: String,
    },
}

impl Outcome {
    /// The intent the signal is (whatever happened to it).
    pub fn intent_id(&self) -> &str {
        match self {
            Outcome::Placed { intent_id, .. }
            | Outcome::Existing { intent_id, .. }
            | Outcome::Rejected { intent_id, .. } => intent_id,
        }
    }
}

/// What a recovery did with the intents it found `executing`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The venue had them: confirmed from the venue's record.
    pub confirmed: Vec<String>,
    /// The venue never accepted them (or refused them): reservation released.
    pub released: Vec<String>,
}

/// The circuit breaker.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BreakerState {
    pub open: bool,
    pub reason: Option<TripReason>,
    /// Trips since the book was created; history, never reset.
    pub failure_count: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Not completely filled yet: the venue may fill more.
    Open,
    /// Completely filled.
    Filled,
    /// The venue cancelled the rest (on request or on expiry): it fills nothing more.
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Open => "open",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<OrderStatus> {
        [
            OrderStatus::Open,
            OrderStatus::Filled,
            OrderStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A book's canonical state (the `state` request): what it holds, in a fixed order, with
/// no timestamps and no event log. Two books that hold the same things answer the same.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct BookState {
    /// Sorted by intent id.
    pub intents: Vec<IntentState>,
    /// Sorted by order id.
    pub orders: Vec<OrderState>,
    /// Sorted by intent id.
    pub positions: Vec<PositionState>,
    /// Sorted by (window id, strategy).
    pub window_entries: Vec<WindowEntry>,
    pub counters: Counters,
    pub breaker: Option<BreakerState>,
    /// Sorted by day.
    pub daily: Vec<DailyState>,
    /// Sorted by name.
    pub checkpoints: Vec<CheckpointState>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct IntentState {
    pub intent_id: String,
    pub strategy: String,
    pub window_id: String,
    pub symbol: String,
    pub side: Side,
    pub size: i64,
    pub price: i64,
    pub bar_t: i64,
    pub status: IntentStatus,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OrderState {
    pub order_id: String,
    pub intent_id: String,
    pub client_order_id: String,
    pub status: OrderStatus,
    /// The sum of the fills the book recorded for it.
    pub filled_qty: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PositionState {
    pub intent_id: String,
    pub strategy: String,
    pub symbol: String,
    /// Signed: buys positive, sells negative.
    pub qty: i64,
    /// Signed: the sum of qty x price over its fills.
    pub cost: i64,
    pub open: bool,
    pub exit_price: Option<i64>,
    pub realized_pnl: Option<i64>,
    /// The venue order id of the reduce-only exit that took the position off the venue
    /// (none while open, or when nothing had filled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_order_id: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WindowEntry {
    pub window_id: String,
    pub strategy: String,
    pub intent_id: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub open_count: i64,
    pub exposure: i64,
    pub max_open: i64,
    pub max_exposure: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyState {
    /// Logical day: logical ms / 86,400,000.
    pub day: i64,
    pub pnl: i64,
    pub trade_count: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CheckpointState {
    pub name: String,
    pub value: String,
}
