//! The simulated venue: the only mock, at the execution boundary. Deterministic: fills come
//! from its own ChaCha stream (derived from the case's seed), faults from a plan the
//! scenario arms one call at a time. Its state is shared by clones and so survives the book
//! that used it, as an exchange outlives a crashed trading process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use protocol::{OrderRequest, Venue, VenueError, VenueFill, VenueOrder, VenuePosition};
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::seed::Seed;

/// What the venue does with the next new order (the next client order id it has not seen)
/// instead of a plain acceptance. The fault sticks to that client order id: placing it
/// again meets the same answer, as a venue that keeps refusing an order would give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Refuse the order: final.
    Reject,
    /// Accept the order, then time out: the book cannot know it was accepted.
    TimeoutAfterAccept,
    /// 429 or 503: not accepted.
    RateLimited { status: u16 },
    /// HTTP 500 before accepting.
    Internal,
    /// Accept, and report the first fill twice (same trade id).
    ReplayFill,
}

#[derive(Debug, Clone, Default)]
pub struct SimVenue {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Draws fill sizes. None: every order fills completely at once.
    fills: Option<ChaCha8Rng>,
    orders: BTreeMap<String, VenueOrder>,
    /// Client order ids of every `place` call, in order.
    placements: Vec<String>,
    /// Client order ids placed again while the venue already held an order for them: at
    /// a real venue, a second order (or a rejection the book did not expect).
    duplicates: Vec<String>,
    armed: Option<Fault>,
    /// Calls answered so far (place, find_order, positions).
    calls: u64,
    /// The fault bound to each client order id it hit.
    sticky: BTreeMap<String, Fault>,
}

impl SimVenue {
    /// A venue that fills every order completely at its limit price, with no faults.
    pub fn new() -> SimVenue {
        SimVenue::default()
    }

    /// A venue whose fills are partial at times, drawn from `seed`'s `venue` stream.
    pub fn with_partial_fills(seed: Seed) -> SimVenue {
        let venue = SimVenue::default();
        venue.lock().fills = Some(seed.stream("venue"));
        venue
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `place` call fails (or misbehaves) as `fault` says.
    pub fn arm(&self, fault: Fault) {
        self.lock().armed = Some(fault);
    }

    /// Client order ids of every `place` call so far, in order.
    pub fn placements(&self) -> Vec<String> {
        self.lock().placements.clone()
    }

    /// How many calls the venue has answered.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Client order ids that were placed again while the venue held them already.
    pub fn duplicates(&self) -> Vec<String> {
        self.lock().duplicates.clone()
    }

    /// Fills the rest of every partly filled order (the market traded through).
    pub fn fill_open_orders(&self) {
        let mut state = self.lock();
        for order in state
            .orders
            .values_mut()
            .filter(|order| order.rejection.is_none())
        {
            let filled: i64 = order.filled_qty();
            if filled < order.size {
                let price = order.fills.first().map_or(1, |fill| fill.price);
                let number = order.fills.len() + 1;
                order.fills.push(VenueFill {
                    trade_id: format!("T-{}-{number}", order.client_order_id),
                    qty: order.size - filled,
                    price,
                });
            }
        }
    }
}

impl State {
    /// The fault for this client order id: the one it met before, else the armed one
    /// (which then sticks to it).
    fn fault_for(&mut self, client_order_id: &str) -> Option<Fault> {
        if let Some(fault) = self.sticky.get(client_order_id) {
            return Some(*fault);
        }
        let armed = self.armed.take();
        if let Some(fault) = armed {
            self.sticky.insert(client_order_id.to_owned(), fault);
        }
        armed
    }

    /// The answer of a fault that refuses the order before accepting it, if it is one. A
    /// rejection is remembered, so that a lookup can tell "refused" from "never seen".
    fn refusal(&mut self, request: &OrderRequest, fault: Option<Fault>) -> Option<VenueError> {
        match fault? {
            Fault::Reject => {
                let reason = "simulated rejection".to_owned();
                let rejected = VenueOrder {
                    venue_order_id: format!("V-{}", request.client_order_id),
                    client_order_id: request.client_order_id.clone(),
                    symbol: request.symbol.clone(),
                    side: request.side,
                    size: request.size,
                    fills: Vec::new(),
                    rejection: Some(reason.clone()),
                };
                self.orders
                    .insert(request.client_order_id.clone(), rejected);
                Some(VenueError::Rejected { reason })
            }
            Fault::RateLimited { status } => Some(VenueError::RateLimited {
                status,
                retry_after_ms: None,
            }),
            Fault::Internal => Some(VenueError::Internal { status: 500 }),
            Fault::TimeoutAfterAccept | Fault::ReplayFill => None,
        }
    }

    /// Accepts the order with its first fill: with partial fills on, about half the orders
    /// fill partly at first. The draw happens for every accepted order, so one order's size
    /// does not shift the stream.
    fn accept(&mut self, request: &OrderRequest) -> VenueOrder {
        let partial = self
            .fills
            .as_mut()
            .is_some_and(|rng| rng.next_u32() % 2 == 0);
        let first_qty = if partial && request.size > 1 {
            request.size / 2
        } else {
            request.size
        };
        let order = VenueOrder {
            venue_order_id: format!("V-{}", request.client_order_id),
            client_order_id: request.client_order_id.clone(),
            symbol: request.symbol.clone(),
            side: request.side,
            size: request.size,
            fills: vec![VenueFill {
                trade_id: format!("T-{}-1", request.client_order_id),
                qty: first_qty,
                price: request.price,
            }],
            rejection: None,
        };
        self.orders
            .insert(request.client_order_id.clone(), order.clone());
        order
    }
}

impl Venue for SimVenue {
    fn place(&mut self, request: &OrderRequest) -> Result<VenueOrder, VenueError> {
        let mut state = self.lock();
        state.calls += 1;
        let client_order_id = request.client_order_id.clone();
        state.placements.push(client_order_id.clone());
        if let Some(existing) = state.orders.get(&client_order_id).cloned() {
            // Answered like a venue that deduplicates client order ids, but recorded: a
            // book that sends an order twice has a duplicate-order bug at most venues.
            state.duplicates.push(client_order_id);
            return match existing.rejection {
                Some(reason) => Err(VenueError::Rejected { reason }),
                None => Ok(existing),
            };
        }
        let fault = state.fault_for(&client_order_id);
        if let Some(refusal) = state.refusal(request, fault) {
            return Err(refusal);
        }
        let order = state.accept(request);
        match fault {
            Some(Fault::TimeoutAfterAccept) => Err(VenueError::Timeout),
            Some(Fault::ReplayFill) => {
                let mut replayed = order;
                replayed.fills.push(replayed.fills[0].clone());
                Ok(replayed)
            }
            _ => Ok(order),
        }
    }

    fn find_order(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError> {
        let mut state = self.lock();
        state.calls += 1;
        Ok(state.orders.get(client_order_id).cloned())
    }

    fn positions(&mut self) -> Result<Vec<VenuePosition>, VenueError> {
        let mut state = self.lock();
        state.calls += 1;
        Ok(protocol::net_positions(state.orders.values()))
    }
}
