//! The simulated venue: the only mock, at the execution boundary, and the truth the book is
//! checked against. Deterministic: fills come from its own ChaCha stream (derived from the
//! case's seed), faults from steps the scenario arms. Its state is shared by clones and so
//! survives the book that used it, as an exchange outlives a crashed trading process.
//!
//! It behaves like a real venue: a second placement of a client order id it holds is
//! rejected as a duplicate; look-ups fail at times (timeout, 429 with Retry-After, 500); an
//! order whose placement timed out may stay invisible to look-ups for a while; a 500 may
//! come back for an order it accepted; it cancels on request and on expiry; fills show up
//! late, twice or out of order. Every call and its reply go to a journal the harness's
//! model reads, and every fault that takes effect is counted for the coverage report.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use protocol::{
    OrderRequest, Side, Venue, VenueCall, VenueError, VenueFill, VenueOrder, VenuePosition,
    VenueReply,
};
use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha8Rng;

use crate::seed::Seed;

/// Look-ups an order stays invisible for after a placement that [`Fault::AppearsLate`].
const LATE_ORDER_LOOKUPS: u8 = 2;
/// Look-ups [`Fault::FillsScrambled`] lasts.
const SCRAMBLED_LOOKUPS: u8 = 2;
/// Placement faults armed and not used yet, at most.
const ARMED_MAX: usize = 4;
/// The symbol of [`Fault::ForeignPosition`]: one the book never trades.
pub const FOREIGN_SYMBOL: &str = "SOL-USD";

/// What the venue does, armed by a scenario step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    // The next new order (the fault sticks to its client order id: placing it again
    // meets the same answer).
    /// Refuse the order: final.
    Reject,
    /// 429 or 503 with a Retry-After: not accepted.
    RateLimited { status: u16, retry_after_ms: i64 },
    /// HTTP 500 before accepting.
    Internal,
    /// Accept the order, then time out: the book cannot know it was accepted.
    TimeoutAfterAccept,
    /// Accept the order, then answer HTTP 500.
    InternalAfterAccept,
    /// Accept, time out, and answer "not found" to the next look-ups of it.
    AppearsLate,
    /// Accept, and report the first fill twice (same trade id).
    ReplayFill,
    /// Accept, filling only half the size at first (for incidents that need a partly filled
    /// order whatever the seed draws).
    PartialFill,
    // The next look-ups (find_order, cancel).
    /// The next `calls` look-ups fail with `error`.
    LookupsFail { error: LookupError, calls: u8 },
    // The market, at once or on its next move.
    /// The venue cancels the oldest order that is still filling (it expired).
    Expire,
    /// The fills the market makes next show up one look-up late.
    FillsLate,
    /// The next look-ups report fills in reverse order, the first of them twice.
    FillsScrambled,
    // Exits (reduce-only orders).
    /// The next exit is refused before it is accepted (429, Retry-After 2 s).
    ExitRefused,
    /// The next exit is accepted and filled, then the answer times out.
    ExitTimeout,
    // The account.
    /// Position reads fail with `error` for `for_ms` of logical time from now (0: only
    /// while the clock stands where it is): a rate limit lasts a while, whoever asks.
    PositionsFail { error: LookupError, for_ms: i64 },
    /// Someone trades the account outside the book: a position in [`FOREIGN_SYMBOL`].
    ForeignPosition,
    /// The venue closes the first of the book's positions it holds (a liquidation): the
    /// book holds more than the venue.
    Liquidation,
}

/// How a look-up fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupError {
    Timeout,
    /// 429 with Retry-After 1 s.
    RateLimited,
    /// 503 with Retry-After 5 s.
    Unavailable,
    Internal,
}

impl LookupError {
    fn name(self) -> &'static str {
        match self {
            LookupError::Timeout => "timeout",
            LookupError::RateLimited => "rate_limited",
            LookupError::Unavailable => "unavailable",
            LookupError::Internal => "internal",
        }
    }

    fn error(self) -> VenueError {
        match self {
            LookupError::Timeout => VenueError::Timeout,
            LookupError::RateLimited => VenueError::RateLimited {
                status: 429,
                retry_after_ms: Some(1_000),
            },
            LookupError::Unavailable => VenueError::RateLimited {
                status: 503,
                retry_after_ms: Some(5_000),
            },
            LookupError::Internal => VenueError::Internal { status: 500 },
        }
    }
}

impl Fault {
    /// The fault's name in the coverage report.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Reject => "reject",
            Fault::RateLimited { status: 503, .. } => "rate_limited_503",
            Fault::RateLimited { .. } => "rate_limited_429",
            Fault::Internal => "internal_before_accept",
            Fault::TimeoutAfterAccept => "timeout_after_accept",
            Fault::InternalAfterAccept => "internal_after_accept",
            Fault::AppearsLate => "order_appears_late",
            Fault::ReplayFill => "fill_replayed",
            Fault::PartialFill => "partial_fill",
            Fault::LookupsFail { error, .. } => match error {
                LookupError::Timeout => "lookup_timeout",
                LookupError::RateLimited => "lookup_rate_limited",
                LookupError::Unavailable => "lookup_unavailable",
                LookupError::Internal => "lookup_internal",
            },
            Fault::Expire => "order_expired",
            Fault::FillsLate => "fills_late",
            Fault::FillsScrambled => "fills_scrambled",
            Fault::ExitRefused => "exit_refused",
            Fault::ExitTimeout => "exit_timeout",
            Fault::PositionsFail { error, .. } => match error {
                LookupError::Timeout => "positions_timeout",
                LookupError::RateLimited => "positions_rate_limited",
                LookupError::Unavailable => "positions_unavailable",
                LookupError::Internal => "positions_internal",
            },
            Fault::ForeignPosition => "foreign_position",
            Fault::Liquidation => "liquidation",
        }
    }

    /// Every name [`Fault::name`] gives, for the coverage report's rows.
    pub const NAMES: &'static [&'static str] = &[
        "reject",
        "rate_limited_429",
        "rate_limited_503",
        "internal_before_accept",
        "timeout_after_accept",
        "internal_after_accept",
        "order_appears_late",
        "fill_replayed",
        "partial_fill",
        "lookup_timeout",
        "lookup_rate_limited",
        "lookup_unavailable",
        "lookup_internal",
        "order_expired",
        "fills_late",
        "fills_scrambled",
        "exit_refused",
        "exit_timeout",
        "exit_rejected_not_reducing",
        "positions_timeout",
        "positions_rate_limited",
        "positions_unavailable",
        "positions_internal",
        "foreign_position",
        "liquidation",
        "duplicate_rejected",
        "lookup_in_recovery_failed",
    ];
}

impl fmt::Display for Fault {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::RateLimited {
                status,
                retry_after_ms,
            } => write!(
                formatter,
                "rate limited (HTTP {status}, retry after {retry_after_ms} ms)"
            ),
            Fault::LookupsFail { error, calls } => {
                write!(
                    formatter,
                    "the next {calls} look-up(s) fail ({})",
                    error.name()
                )
            }
            Fault::PositionsFail { error, for_ms } => write!(
                formatter,
                "position reads fail for {for_ms} ms ({})",
                error.name()
            ),
            other => formatter.write_str(&other.name().replace('_', " ")),
        }
    }
}

/// One call the book made and what the venue answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub call: VenueCall,
    pub reply: VenueReply,
}

/// An order as the venue holds it, and what it has shown the book of it.
#[derive(Debug, Clone)]
struct Held {
    /// The truth: every fill, whether it was cancelled or rejected.
    order: VenueOrder,
    /// Look-ups that still answer "not found" ([`Fault::AppearsLate`]).
    hidden_lookups: u8,
    /// A look-up answered "not found" while the venue held it: the book had no way to
    /// know, so a second placement of it is not the book's fault.
    hid_from_book: bool,
    /// Trailing fills not reported yet, and the look-ups before they show.
    hidden_fills: usize,
    hidden_fill_lookups: u8,
    /// An exit: it may only reduce a position.
    reduce_only: bool,
    /// Not the book's: a trade made outside it ([`Fault::ForeignPosition`],
    /// [`Fault::Liquidation`]).
    foreign: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SimVenue {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// Draws fill sizes. None: every order fills completely at once.
    fills: Option<ChaCha8Rng>,
    orders: BTreeMap<String, Held>,
    /// Client order ids of every `place` call, in order.
    placements: Vec<String>,
    /// Client order ids placed again while the venue held them and had shown them: a
    /// book that sends an order twice without asking has a duplicate-order bug.
    duplicates: Vec<String>,
    /// Placement faults armed for the next new orders, in order.
    armed: std::collections::VecDeque<Fault>,
    /// Faults armed for the next exits, in order.
    armed_exits: std::collections::VecDeque<Fault>,
    lookup_failures: Option<(LookupError, u8)>,
    /// Position reads fail with this error until this logical time (inclusive).
    positions_failures: Option<(LookupError, i64)>,
    /// The case's clock (time-bound faults read it); none: time stands at 0.
    clock: Option<crate::SimClock>,
    /// Trades made outside the book so far.
    foreign_trades: u32,
    fills_late: bool,
    scrambled_lookups: u8,
    /// Calls answered so far (place, find_order, positions, cancel).
    calls: u64,
    /// The fault bound to each client order id it hit.
    sticky: BTreeMap<String, Fault>,
    journal: Vec<Exchange>,
    /// How often each fault took effect, by [`Fault::name`].
    happened: BTreeMap<&'static str, u64>,
}

/// A venue order as the harness sees it: the truth, and what the book could have seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthOrder {
    pub order: VenueOrder,
    /// A look-up would answer "not found" now.
    pub invisible: bool,
    /// A look-up answered "not found" while the venue held it.
    pub hid_from_book: bool,
    /// What a look-up would report now (fills still hidden left out).
    pub visible_fills: Vec<VenueFill>,
    /// An exit (reduce-only).
    pub reduce_only: bool,
    /// Not the book's order: a trade made outside it.
    pub foreign: bool,
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

    /// The same venue, its time-bound faults reading `clock`.
    pub fn on_clock(self, clock: &crate::SimClock) -> SimVenue {
        self.lock().clock = Some(clock.clone());
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Arms `fault` (or, for the market's faults, makes it happen now).
    pub fn arm(&self, fault: Fault) {
        let mut state = self.lock();
        match fault {
            Fault::LookupsFail { error, calls } => state.lookup_failures = Some((error, calls)),
            Fault::Expire => state.expire(),
            Fault::FillsLate => state.fills_late = true,
            Fault::FillsScrambled => state.scrambled_lookups = SCRAMBLED_LOOKUPS,
            Fault::PositionsFail { error, for_ms } => {
                let until = state.now() + for_ms;
                state.positions_failures = Some((error, until));
            }
            Fault::ForeignPosition => state.foreign_position(),
            Fault::Liquidation => state.liquidate(),
            Fault::ExitRefused | Fault::ExitTimeout => {
                if state.armed_exits.len() >= ARMED_MAX {
                    state.armed_exits.pop_back();
                }
                state.armed_exits.push_back(fault);
            }
            placement => {
                // A few at most: a fault armed on top of many unused ones replaces the
                // newest, so a scenario cannot pile up an unbounded queue.
                if state.armed.len() >= ARMED_MAX {
                    state.armed.pop_back();
                }
                state.armed.push_back(placement);
            }
        }
    }

    /// Client order ids of every `place` call so far, in order.
    pub fn placements(&self) -> Vec<String> {
        self.lock().placements.clone()
    }

    /// How many calls the venue has answered.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Client order ids the book placed again while the venue held them and had shown them.
    pub fn duplicates(&self) -> Vec<String> {
        self.lock().duplicates.clone()
    }

    /// The calls since the last drain, with their replies.
    pub fn drain_journal(&self) -> Vec<Exchange> {
        std::mem::take(&mut self.lock().journal)
    }

    /// How often each fault took effect.
    pub fn happened(&self) -> BTreeMap<&'static str, u64> {
        self.lock().happened.clone()
    }

    /// Counts a fault the harness observed from outside (a look-up failing in recovery).
    pub fn count(&self, name: &'static str) {
        *self.lock().happened.entry(name).or_default() += 1;
    }

    /// Every order the venue holds, by client order id.
    pub fn truth(&self) -> Vec<TruthOrder> {
        self.lock()
            .orders
            .values()
            .map(|held| TruthOrder {
                order: held.order.clone(),
                invisible: held.hidden_lookups > 0,
                hid_from_book: held.hid_from_book,
                visible_fills: visible_fills(held),
                reduce_only: held.reduce_only,
                foreign: held.foreign,
            })
            .collect()
    }

    /// The market trades through: fills the rest of every order that is still filling.
    pub fn fill_open_orders(&self) {
        let mut state = self.lock();
        let late = std::mem::take(&mut state.fills_late);
        let mut filled_late = false;
        for held in state.orders.values_mut() {
            let order = &mut held.order;
            let filled = order.filled_qty();
            if order.rejection.is_some() || order.cancelled || filled >= order.size {
                continue;
            }
            let price = order.fills.first().map_or(1, |fill| fill.price);
            let number = order.fills.len() + 1;
            order.fills.push(VenueFill {
                trade_id: format!("T-{}-{number}", order.client_order_id),
                qty: order.size - filled,
                price,
            });
            if late {
                held.hidden_fills += 1;
                held.hidden_fill_lookups = 1;
                filled_late = true;
            }
        }
        if filled_late {
            *state.happened.entry(Fault::FillsLate.name()).or_default() += 1;
        }
    }
}

fn visible_fills(held: &Held) -> Vec<VenueFill> {
    let shown = held.order.fills.len() - held.hidden_fills.min(held.order.fills.len());
    held.order.fills[..shown].to_vec()
}

impl State {
    fn happened(&mut self, name: &'static str) {
        *self.happened.entry(name).or_default() += 1;
    }

    /// The fault for this client order id: the one it met before, else the armed one
    /// (which then sticks to it).
    fn fault_for(&mut self, client_order_id: &str) -> Option<Fault> {
        if let Some(fault) = self.sticky.get(client_order_id) {
            return Some(*fault);
        }
        let armed = self.armed.pop_front();
        if let Some(fault) = armed {
            self.sticky.insert(client_order_id.to_owned(), fault);
        }
        armed
    }

    /// The answer of a fault that refuses the order before accepting it, if it is one. A
    /// rejection is remembered, so that a look-up can tell "refused" from "never seen".
    fn refusal(&mut self, request: &OrderRequest, fault: Option<Fault>) -> Option<VenueError> {
        let refusal = match fault? {
            Fault::Reject => {
                let reason = "simulated rejection".to_owned();
                let mut rejected = new_order(request, Vec::new());
                rejected.rejection = Some(reason.clone());
                self.orders
                    .insert(request.client_order_id.clone(), held(rejected));
                VenueError::Rejected { reason }
            }
            Fault::RateLimited {
                status,
                retry_after_ms,
            } => VenueError::RateLimited {
                status,
                retry_after_ms: Some(retry_after_ms),
            },
            Fault::Internal => VenueError::Internal { status: 500 },
            _ => return None,
        };
        self.happened(fault.map_or("", Fault::name));
        Some(refusal)
    }

    /// Accepts the order with its first fill: with partial fills on, about half the orders
    /// fill partly at first. The draw happens for every accepted order, so one order's size
    /// does not shift the stream.
    fn accept(&mut self, request: &OrderRequest, fault: Option<Fault>) -> VenueOrder {
        let drawn = self
            .fills
            .as_mut()
            .is_some_and(|rng| rng.next_u32() % 2 == 0);
        let partial = drawn || fault == Some(Fault::PartialFill);
        let first_qty = if partial && request.size > 1 {
            request.size / 2
        } else {
            request.size
        };
        let order = new_order(
            request,
            vec![VenueFill {
                trade_id: format!("T-{}-1", request.client_order_id),
                qty: first_qty,
                price: request.price,
            }],
        );
        self.orders
            .insert(request.client_order_id.clone(), held(order.clone()));
        order
    }

    /// The answer to an accepted order, as the fault bends it.
    fn accepted(
        &mut self,
        order: VenueOrder,
        fault: Option<Fault>,
    ) -> Result<VenueOrder, VenueError> {
        let answer = match fault {
            Some(Fault::TimeoutAfterAccept) => Err(VenueError::Timeout),
            Some(Fault::InternalAfterAccept) => Err(VenueError::Internal { status: 500 }),
            Some(Fault::AppearsLate) => {
                if let Some(held) = self.orders.get_mut(&order.client_order_id) {
                    held.hidden_lookups = LATE_ORDER_LOOKUPS;
                }
                Err(VenueError::Timeout)
            }
            Some(Fault::ReplayFill) => {
                let mut replayed = order;
                replayed.fills.push(replayed.fills[0].clone());
                Ok(replayed)
            }
            Some(Fault::PartialFill) => Ok(order),
            _ => return Ok(order),
        };
        self.happened(fault.map_or("", Fault::name));
        answer
    }

    /// Fails this look-up if look-up failures are armed.
    fn lookup_failure(&mut self) -> Result<(), VenueError> {
        let Some((error, calls)) = self.lookup_failures else {
            return Ok(());
        };
        self.lookup_failures = (calls > 1).then_some((error, calls - 1));
        self.happened(Fault::LookupsFail { error, calls }.name());
        Err(error.error())
    }

    fn now(&self) -> i64 {
        self.clock.as_ref().map_or(0, book::Clock::now_ms)
    }

    /// Fails this position read while a position-read failure lasts.
    fn positions_failure(&mut self) -> Result<(), VenueError> {
        let Some((error, until)) = self.positions_failures else {
            return Ok(());
        };
        if self.now() > until {
            self.positions_failures = None;
            return Ok(());
        }
        self.happened(Fault::PositionsFail { error, for_ms: 0 }.name());
        Err(error.error())
    }

    /// What the account holds of `symbol` on `side` (hedge mode: longs and shorts apart):
    /// that side's fills, less the reduce-only fills that closed it.
    fn held_side(&self, symbol: &str, side: Side) -> i64 {
        self.orders
            .values()
            .filter(|held| held.order.symbol == symbol)
            .map(|held| {
                let filled = held.order.filled_qty();
                match (held.reduce_only, held.order.side == side) {
                    (false, true) => filled,
                    (true, false) => -filled,
                    _ => 0,
                }
            })
            .sum()
    }

    /// An exit: refused as armed, rejected (not recorded, as real venues answer a
    /// reduce-only order that would not reduce) when the account does not hold what it
    /// closes, else filled completely at once at its price. No fill draw: the entries'
    /// stream stays as it is.
    fn place_exit(&mut self, request: &OrderRequest) -> Result<VenueOrder, VenueError> {
        let fault = self.armed_exits.pop_front();
        if fault == Some(Fault::ExitRefused) {
            self.happened(Fault::ExitRefused.name());
            return Err(VenueError::RateLimited {
                status: 429,
                retry_after_ms: Some(2_000),
            });
        }
        let closes = request.side.opposite();
        if self.held_side(&request.symbol, closes) < request.size {
            if let Some(fault) = fault {
                self.armed_exits.push_front(fault);
            }
            self.happened("exit_rejected_not_reducing");
            return Err(VenueError::Rejected {
                reason: "reduce-only order would not reduce a position".to_owned(),
            });
        }
        let order = filled_at_once(request);
        let mut exit = held(order.clone());
        exit.reduce_only = true;
        self.orders.insert(request.client_order_id.clone(), exit);
        if fault == Some(Fault::ExitTimeout) {
            self.happened(Fault::ExitTimeout.name());
            return Err(VenueError::Timeout);
        }
        Ok(order)
    }

    /// Someone buys 1 of [`FOREIGN_SYMBOL`] on the account, outside the book.
    fn foreign_position(&mut self) {
        self.foreign_trades += 1;
        let request = OrderRequest {
            client_order_id: format!("manual-{}", self.foreign_trades),
            symbol: FOREIGN_SYMBOL.to_owned(),
            side: Side::Buy,
            size: 1,
            price: 15_000,
            reduce_only: false,
        };
        self.trade_outside(&request, false);
        self.happened(Fault::ForeignPosition.name());
    }

    /// The venue closes what the account holds of the first book order still held.
    fn liquidate(&mut self) {
        let target = self
            .placements
            .iter()
            .filter_map(|client_order_id| self.orders.get(client_order_id))
            .filter(|held| !held.reduce_only && !held.foreign)
            .map(|held| {
                (
                    held.order.symbol.clone(),
                    held.order.side,
                    held.order.fills.first().map_or(1, |fill| fill.price),
                )
            })
            .find(|(symbol, side, _)| self.held_side(symbol, *side) > 0);
        let Some((symbol, side, price)) = target else {
            return;
        };
        self.foreign_trades += 1;
        let request = OrderRequest {
            client_order_id: format!("liquidation-{}", self.foreign_trades),
            size: self.held_side(&symbol, side),
            symbol,
            side: side.opposite(),
            price,
            reduce_only: true,
        };
        self.trade_outside(&request, true);
        self.happened(Fault::Liquidation.name());
    }

    fn trade_outside(&mut self, request: &OrderRequest, reduce_only: bool) {
        let mut outside = held(filled_at_once(request));
        outside.reduce_only = reduce_only;
        outside.foreign = true;
        self.orders.insert(request.client_order_id.clone(), outside);
    }

    /// What a look-up shows of an order now, and what it uses up of the faults.
    fn show(&mut self, client_order_id: &str) -> Option<VenueOrder> {
        let scrambled = self.scrambled_lookups > 0;
        let held = self.orders.get_mut(client_order_id)?;
        if held.hidden_lookups > 0 {
            held.hidden_lookups -= 1;
            held.hid_from_book = true;
            return None;
        }
        let mut shown = held.order.clone();
        if held.hidden_fills > 0 && held.hidden_fill_lookups > 0 {
            held.hidden_fill_lookups -= 1;
            shown.fills = visible_fills(held);
        } else {
            held.hidden_fills = 0;
        }
        if scrambled && !shown.fills.is_empty() {
            shown.fills.reverse();
            shown.fills.push(shown.fills[0].clone());
            self.scrambled_lookups -= 1;
            self.happened(Fault::FillsScrambled.name());
        }
        Some(shown)
    }

    /// The venue cancels the oldest order still filling.
    fn expire(&mut self) {
        let oldest = self.placements.iter().find(|client_order_id| {
            self.orders.get(*client_order_id).is_some_and(|held| {
                let order = &held.order;
                order.rejection.is_none() && !order.cancelled && order.filled_qty() < order.size
            })
        });
        if let Some(client_order_id) = oldest.cloned() {
            if let Some(held) = self.orders.get_mut(&client_order_id) {
                held.order.cancelled = true;
            }
            self.happened(Fault::Expire.name());
        }
    }

    fn record(&mut self, call: VenueCall, reply: VenueReply) {
        self.calls += 1;
        self.journal.push(Exchange { call, reply });
    }
}

fn new_order(request: &OrderRequest, fills: Vec<VenueFill>) -> VenueOrder {
    VenueOrder {
        venue_order_id: format!("V-{}", request.client_order_id),
        client_order_id: request.client_order_id.clone(),
        symbol: request.symbol.clone(),
        side: request.side,
        size: request.size,
        fills,
        rejection: None,
        cancelled: false,
    }
}

/// The order `request` asks for, filled completely at its price in one trade.
fn filled_at_once(request: &OrderRequest) -> VenueOrder {
    new_order(
        request,
        vec![VenueFill {
            trade_id: format!("T-{}-1", request.client_order_id),
            qty: request.size,
            price: request.price,
        }],
    )
}

fn held(order: VenueOrder) -> Held {
    Held {
        order,
        hidden_lookups: 0,
        hid_from_book: false,
        hidden_fills: 0,
        hidden_fill_lookups: 0,
        reduce_only: false,
        foreign: false,
    }
}

impl State {
    fn place(&mut self, request: &OrderRequest) -> Result<VenueOrder, VenueError> {
        let client_order_id = request.client_order_id.clone();
        self.placements.push(client_order_id.clone());
        if let Some(existing) = self.orders.get(&client_order_id) {
            // Rejected like a real venue does, and recorded unless the venue hid the order
            // from the book: sending an order twice without asking is a duplicate-order bug.
            if !existing.hid_from_book {
                self.duplicates.push(client_order_id.clone());
            }
            self.happened("duplicate_rejected");
            return Err(VenueError::Duplicate { client_order_id });
        }
        if request.reduce_only {
            return self.place_exit(request);
        }
        let fault = self.fault_for(&client_order_id);
        if let Some(refusal) = self.refusal(request, fault) {
            return Err(refusal);
        }
        let order = self.accept(request, fault);
        self.accepted(order, fault)
    }

    fn find_order(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError> {
        self.lookup_failure()?;
        Ok(self.show(client_order_id))
    }

    fn cancel(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError> {
        self.lookup_failure()?;
        let Some(held) = self.orders.get_mut(client_order_id) else {
            return Ok(None);
        };
        // A cancel shows everything: the order as it stands, every fill.
        held.hidden_lookups = 0;
        held.hidden_fills = 0;
        let order = &mut held.order;
        if order.rejection.is_none() && order.filled_qty() < order.size {
            order.cancelled = true;
        }
        Ok(Some(order.clone()))
    }
}

impl Venue for SimVenue {
    fn place(&mut self, request: &OrderRequest) -> Result<VenueOrder, VenueError> {
        let mut state = self.lock();
        let result = state.place(request);
        let call = VenueCall::Place {
            order: request.clone(),
        };
        state.record(
            call,
            VenueReply::Place {
                result: result.clone().into(),
            },
        );
        result
    }

    fn find_order(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError> {
        let mut state = self.lock();
        let result = state.find_order(client_order_id);
        let call = VenueCall::FindOrder {
            client_order_id: client_order_id.to_owned(),
        };
        state.record(
            call,
            VenueReply::FindOrder {
                result: result.clone().into(),
            },
        );
        result
    }

    /// The account's net position per symbol, the book's orders and trades made outside
    /// it alike.
    fn positions(&mut self) -> Result<Vec<VenuePosition>, VenueError> {
        let mut state = self.lock();
        let result = state
            .positions_failure()
            .map(|()| protocol::net_positions(state.orders.values().map(|held| &held.order)));
        state.record(
            VenueCall::Positions,
            VenueReply::Positions {
                result: result.clone().into(),
            },
        );
        result
    }

    fn cancel(&mut self, client_order_id: &str) -> Result<Option<VenueOrder>, VenueError> {
        let mut state = self.lock();
        let result = state.cancel(client_order_id);
        let call = VenueCall::Cancel {
            client_order_id: client_order_id.to_owned(),
        };
        state.record(
            call,
            VenueReply::Cancel {
                result: result.clone().into(),
            },
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use protocol::Side;

    use super::*;

    fn request(client_order_id: &str, size: i64) -> OrderRequest {
        OrderRequest {
            client_order_id: client_order_id.to_owned(),
            symbol: "BTC-USD".to_owned(),
            side: Side::Buy,
            size,
            price: 100,
            reduce_only: false,
        }
    }

    #[test]
    fn a_second_placement_is_a_duplicate_and_counted_unless_the_venue_hid_the_order() {
        let mut venue = SimVenue::new();
        venue.place(&request("a", 1)).expect("accepted");
        assert!(matches!(
            venue.place(&request("a", 1)),
            Err(VenueError::Duplicate { .. })
        ));
        assert_eq!(venue.duplicates(), ["a"]);
        venue.arm(Fault::AppearsLate);
        assert_eq!(venue.place(&request("b", 1)), Err(VenueError::Timeout));
        assert_eq!(venue.find_order("b"), Ok(None));
        assert!(matches!(
            venue.place(&request("b", 1)),
            Err(VenueError::Duplicate { .. })
        ));
        assert_eq!(venue.duplicates(), ["a"], "b was hidden from the book");
        assert_eq!(venue.find_order("b"), Ok(None));
        assert!(venue.find_order("b").is_ok_and(|order| order.is_some()));
    }

    #[test]
    fn look_ups_fail_as_armed_then_recover() {
        let mut venue = SimVenue::new();
        venue.place(&request("a", 1)).expect("accepted");
        venue.arm(Fault::LookupsFail {
            error: LookupError::Internal,
            calls: 2,
        });
        assert!(venue.find_order("a").is_err());
        assert!(venue.cancel("a").is_err());
        assert!(venue.find_order("a").is_ok());
        assert_eq!(venue.happened()["lookup_internal"], 2);
        assert_eq!(venue.drain_journal().len(), 4);
        assert!(venue.drain_journal().is_empty());
    }

    #[test]
    fn late_fills_show_one_look_up_late_and_a_cancel_shows_everything() {
        let mut venue = SimVenue::with_partial_fills(Seed(1));
        // Find a seed draw that fills partly.
        let mut number = 0;
        let partial = loop {
            number += 1;
            let id = format!("o{number}");
            let order = venue.place(&request(&id, 4)).expect("accepted");
            if order.filled_qty() < 4 {
                break id;
            }
        };
        venue.arm(Fault::FillsLate);
        venue.fill_open_orders();
        let first = venue.find_order(&partial).expect("ok").expect("known");
        assert_eq!(first.filled_qty(), 2, "the new fill is still hidden");
        let second = venue.find_order(&partial).expect("ok").expect("known");
        assert_eq!(second.filled_qty(), 4);
        let cancelled = venue.cancel(&partial).expect("ok").expect("known");
        assert!(!cancelled.cancelled, "a filled order is not cancelled");
    }
}
