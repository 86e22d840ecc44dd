//! The execution boundary: the exchange, as a book sees it. The only simulated part of the
//! world in bookproof, so it is a trait; its state lives outside the book (an order it
//! accepted before a crash is still there after it).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::signal::Side;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// The book's id for the order; venues deduplicate on it.
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub size: i64,
    pub price: i64,
    /// An exit: it may only reduce a position, and fills at once or not at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reduce_only: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VenueFill {
    /// The venue's trade id; a book deduplicates fills on it.
    pub trade_id: String,
    pub qty: i64,
    pub price: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VenueOrder {
    pub venue_order_id: String,
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub size: i64,
    pub fills: Vec<VenueFill>,
    /// Why the venue refused the order, if it did: the venue remembers rejections, so
    /// recovery can tell "refused" from "never seen".
    pub rejection: Option<String>,
    /// The venue cancelled what was not filled (on request, or when the order expired): it
    /// fills nothing more.
    #[serde(default)]
    pub cancelled: bool,
}

impl VenueOrder {
    /// The quantity its fills add up to, each trade counted once.
    pub fn filled_qty(&self) -> i64 {
        filled_qty(&self.fills)
    }

    /// Nothing more will fill: completely filled, cancelled, or rejected.
    pub fn is_done(&self) -> bool {
        self.rejection.is_some() || self.cancelled || self.filled_qty() >= self.size
    }
}

/// A net position the venue reports for a symbol (signed quantity).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VenuePosition {
    pub symbol: String,
    pub qty: i64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VenueError {
    /// Final: the venue refused the order and will never fill it.
    #[error("venue rejected the order: {reason}")]
    Rejected { reason: String },
    /// HTTP 429 or 503: try later. The order was not accepted.
    #[error("venue is rate limiting (HTTP {status})")]
    RateLimited {
        status: u16,
        /// The venue's Retry-After, in logical ms, when it sent one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<i64>,
    },
    /// The call timed out: the venue may or may not have accepted the order.
    #[error("venue call timed out; the order may have been accepted")]
    Timeout,
    /// HTTP 5xx other than 503: the outcome is unknown.
    #[error("venue failed (HTTP {status}); the order may have been accepted")]
    Internal { status: u16 },
    /// The venue already holds an order with this client order id (as real venues answer a
    /// second placement): the book must confirm the existing order, never treat this as a
    /// failure.
    #[error("venue already holds an order with client order id {client_order_id}")]
    Duplicate { client_order_id: String },
}

/// The exchange. Implemented by the harness's simulated venue, and on the book's side of
/// the line protocol by a venue that forwards every call to the driver.
pub trait Venue: Send {
    fn place(&mut self, order: &OrderRequest) -> Result<VenueOrder, VenueError>;
    /// The order with this client order id, if the venue has it.
    fn find_order(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError>;
    /// Net positions per symbol, sorted by symbol, zero positions left out.
    fn positions(&mut self) -> Result<Vec<VenuePosition>, VenueError>;
    /// Cancels what is not filled of the order with this client order id and returns the
    /// order as it stands (every fill it made); `None` if the venue does not know it.
    /// Cancelling a finished order changes nothing.
    fn cancel(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError>;
}

/// Net position per symbol over `orders`, each trade counted once, sorted by symbol, zero
/// positions left out.
pub fn net_positions<'order>(
    orders: impl Iterator<Item = &'order VenueOrder>,
) -> Vec<VenuePosition> {
    let mut net: BTreeMap<&str, i64> = BTreeMap::new();
    for order in orders {
        *net.entry(&order.symbol).or_default() += order.side.signed(order.filled_qty());
    }
    net.into_iter()
        .filter(|(_, qty)| *qty != 0)
        .map(|(symbol, qty)| VenuePosition {
            symbol: symbol.to_owned(),
            qty,
        })
        .collect()
}

/// The quantity `fills` add up to, each trade id counted once (a venue may report a trade
/// twice).
pub fn filled_qty(fills: &[VenueFill]) -> i64 {
    let mut trades = BTreeSet::new();
    fills
        .iter()
        .filter(|fill| trades.insert(fill.trade_id.as_str()))
        .map(|fill| fill.qty)
        .sum()
}
