//! The execution boundary: the exchange. The only part of the world that is simulated in
//! tests, so it is a trait, and its state lives outside the book (an order it accepted
//! before a crash is still there after it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::intent::Side;

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// The intent id; venues deduplicate on it.
    pub client_order_id: String,
    pub symbol: String,
    pub side: Side,
    pub size: i64,
    pub price: i64,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VenueFill {
    /// The venue's trade id; the book deduplicates fills on it.
    pub trade_id: String,
    pub qty: i64,
    pub price: i64,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
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
}

/// A net position the venue reports for a symbol (signed quantity).
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VenuePosition {
    pub symbol: String,
    pub qty: i64,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VenueError {
    /// Final: the venue refused the order and will never fill it.
    #[error("venue rejected the order: {reason}")]
    Rejected { reason: String },
    /// HTTP 429 or 503: try later. The order was not accepted.
    #[error("venue is rate limiting (HTTP {status})")]
    RateLimited { status: u16 },
    /// The call timed out: the venue may or may not have accepted the order.
    #[error("venue call timed out; the order may have been accepted")]
    Timeout,
    /// HTTP 5xx other than 503: the outcome is unknown.
    #[error("venue failed (HTTP {status}); the order may have been accepted")]
    Internal { status: u16 },
}

pub trait Venue: Send {
    fn place(&mut self, order: &OrderRequest) -> Result<VenueOrder, VenueError>;
    /// The order with this client order id, if the venue has it.
    fn find_order(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError>;
    /// Net positions per symbol, sorted by symbol, zero positions left out.
    fn positions(&mut self) -> Result<Vec<VenuePosition>, VenueError>;
}

/// A paper venue: accepts every order and fills it at once at its limit price. Order and
/// trade ids derive from the client order id, so runs are deterministic. Clones share state,
/// so a caller can keep a handle and inspect the venue after the book that used it is gone.
#[derive(Debug, Clone, Default)]
pub struct PaperVenue {
    state: Arc<Mutex<PaperState>>,
}

#[derive(Debug, Default)]
struct PaperState {
    orders: BTreeMap<String, VenueOrder>,
    /// Every `place` call, in order: a second call with the same client order id is how a
    /// duplicate-order bug shows up.
    placements: Vec<String>,
}

impl PaperVenue {
    pub fn new() -> PaperVenue {
        PaperVenue::default()
    }

    /// Client order ids of every `place` call so far, in call order.
    pub fn placements(&self) -> Vec<String> {
        self.lock().placements.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PaperState> {
        // A panic while holding the lock leaves plain data behind; keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Venue for PaperVenue {
    fn place(&mut self, order: &OrderRequest) -> Result<VenueOrder, VenueError> {
        let mut state = self.lock();
        state.placements.push(order.client_order_id.clone());
        // Like real venues, a repeated client order id returns the existing order.
        let placed = state
            .orders
            .entry(order.client_order_id.clone())
            .or_insert_with(|| VenueOrder {
                venue_order_id: format!("P-{}", order.client_order_id),
                client_order_id: order.client_order_id.clone(),
                symbol: order.symbol.clone(),
                side: order.side,
                size: order.size,
                fills: vec![VenueFill {
                    trade_id: format!("T-{}-1", order.client_order_id),
                    qty: order.size,
                    price: order.price,
                }],
                rejection: None,
            });
        Ok(placed.clone())
    }

    fn find_order(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError> {
        Ok(self.lock().orders.get(client_order_id).cloned())
    }

    fn positions(&mut self) -> Result<Vec<VenuePosition>, VenueError> {
        Ok(net_positions(self.lock().orders.values()))
    }
}

/// Net position per symbol over `orders`, each trade counted once (a venue may report a
/// trade twice), sorted by symbol, zero positions left out.
pub fn net_positions<'order>(
    orders: impl Iterator<Item = &'order VenueOrder>,
) -> Vec<VenuePosition> {
    let mut net: BTreeMap<&str, i64> = BTreeMap::new();
    for order in orders {
        *net.entry(&order.symbol).or_default() += order.side.signed(filled_qty(&order.fills));
    }
    net.into_iter()
        .filter(|(_, qty)| *qty != 0)
        .map(|(symbol, qty)| VenuePosition {
            symbol: symbol.to_owned(),
            qty,
        })
        .collect()
}

/// The quantity `fills` add up to, each trade id counted once.
pub fn filled_qty(fills: &[VenueFill]) -> i64 {
    let mut trades = std::collections::BTreeSet::new();
    fills
        .iter()
        .filter(|fill| trades.insert(fill.trade_id.as_str()))
        .map(|fill| fill.qty)
        .sum()
}
