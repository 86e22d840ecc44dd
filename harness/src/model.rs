//! The independent model: a small, obviously correct in-memory book of what the book under
//! test must hold, written from SPEC §2 without any book code. It is advanced by the same
//! requests the book gets and by the same venue replies (the venue's journal), and after
//! every step the book's canonical state must equal the model's.
//!
//! Where the harness cannot observe what the book committed (it crashed in the middle of
//! an operation), the model keeps every legal state: one per commit boundary the
//! operation can have stopped at (before it, after the reservation, after the confirm,
//! ...). Recovery and re-delivery advance each; after the next step only the states the
//! book matches survive, and if none does, the book is in a state no correct book could be
//! in. Identity follows SPEC §2.1: the same signal is the same intent, and the model learns
//! the id the book gave it from the book's answer or its venue call, never computing one.

use std::collections::BTreeMap;

use book::clock::DAY_MS;
use book::Limits;
use protocol::{
    BookState, BreakerState, CheckpointState, Counters, DailyState, IntentState, IntentStatus,
    Mark, OrderRequest, OrderState, OrderStatus, Outcome, PositionState, ProblemKind, Side, Signal,
    TripReason, VenueCall, VenueError, VenueFill, VenueOrder, VenuePosition, VenueReply,
    WindowEntry,
};

use crate::venue::Exchange;

/// The checkpoint a day roll writes (the reference book's name for it).
pub const DAY_ROLLED: &str = "day_rolled";
/// The checkpoint holding when the venue's positions were last verified (SPEC §2.8).
pub const VERIFIED_AT: &str = "verified_at";
/// The checkpoint holding until when the venue asked not to be asked again (Retry-After).
pub const RETRY_AFTER: &str = "venue_retry_after";
/// A verification younger than this (logical ms) stands in for one the venue cannot give.
pub const VERIFICATION_FRESH_MS: i64 = 30_000;

/// A request, as the model applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Submit(Signal),
    Recover,
    SyncFills,
    Close {
        intent_id: String,
        exit_price: i64,
        command_id: String,
    },
    Trip {
        reason: TripReason,
        command_id: String,
    },
    Reset {
        command_id: String,
    },
    Checkpoint {
        name: String,
        value: String,
        command_id: String,
    },
    RollDay,
    EvaluateExits {
        marks: Vec<Mark>,
        stop_loss: bool,
        take_profit: bool,
    },
}

/// What the book answered, reduced to what the model can predict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Placed {
        intent_id: String,
    },
    Existing {
        intent_id: String,
        status: IntentStatus,
    },
    Rejected {
        intent_id: String,
    },
    /// Any other success.
    Done,
    /// A refusal or a problem, by kind (`venue_uncertain` included).
    Problem(ProblemKind, Option<String>),
}

impl Answer {
    pub fn of(outcome: &Outcome) -> Answer {
        match outcome {
            Outcome::Placed { intent_id, .. } => Answer::Placed {
                intent_id: intent_id.clone(),
            },
            Outcome::Existing { intent_id, status } => Answer::Existing {
                intent_id: intent_id.clone(),
                status: *status,
            },
            Outcome::Rejected { intent_id, .. } => Answer::Rejected {
                intent_id: intent_id.clone(),
            },
        }
    }

    fn intent_id(&self) -> Option<&str> {
        match self {
            Answer::Placed { intent_id } | Answer::Rejected { intent_id } => Some(intent_id),
            Answer::Existing { intent_id, .. } => Some(intent_id),
            Answer::Problem(_, intent_id) => intent_id.as_deref(),
            Answer::Done => None,
        }
    }
}

/// What the model expects a request to be answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Placed,
    Existing(IntentStatus),
    Rejected,
    Done,
    Problem(ProblemKind),
}

impl Expect {
    fn admits(&self, answer: &Answer) -> bool {
        match (self, answer) {
            (Expect::Placed, Answer::Placed { .. })
            | (Expect::Rejected, Answer::Rejected { .. }) => true,
            (Expect::Existing(want), Answer::Existing { status, .. }) => want == status,
            (Expect::Done, Answer::Done) => true,
            (Expect::Problem(want), Answer::Problem(kind, _)) => want == kind,
            _ => false,
        }
    }
}

/// The venue's journal for one request: each exchange is used once.
#[derive(Debug)]
struct Journal<'journal> {
    exchanges: &'journal [Exchange],
    used: Vec<bool>,
}

impl<'journal> Journal<'journal> {
    fn new(exchanges: &'journal [Exchange]) -> Journal<'journal> {
        Journal {
            exchanges,
            used: vec![false; exchanges.len()],
        }
    }

    fn take(&mut self, wanted: impl Fn(&VenueCall) -> bool) -> Option<&'journal VenueReply> {
        let index = (0..self.exchanges.len())
            .find(|index| !self.used[*index] && wanted(&self.exchanges[*index].call))?;
        self.used[index] = true;
        Some(&self.exchanges[index].reply)
    }

    /// The next placement's client order id and reply.
    fn place(&mut self) -> Option<(String, Result<VenueOrder, VenueError>)> {
        self.next_place()
            .map(|(order, reply)| (order.client_order_id, reply))
    }

    fn lookup(&mut self, client_order_id: &str) -> Option<Result<Option<VenueOrder>, VenueError>> {
        match self.take(|call| matches!(call, VenueCall::FindOrder { client_order_id: id } if id == client_order_id))? {
            VenueReply::FindOrder { result } => Some(result.clone().into()),
            _ => None,
        }
    }

    /// The next look-up, whatever it asked for.
    fn next_lookup(&mut self) -> Option<Result<Option<VenueOrder>, VenueError>> {
        match self.take(|call| matches!(call, VenueCall::FindOrder { .. }))? {
            VenueReply::FindOrder { result } => Some(result.clone().into()),
            _ => None,
        }
    }

    /// The next placement, as asked for, and its reply.
    fn next_place(&mut self) -> Option<(OrderRequest, Result<VenueOrder, VenueError>)> {
        let index = (0..self.exchanges.len()).find(|index| {
            !self.used[*index] && matches!(self.exchanges[*index].call, VenueCall::Place { .. })
        })?;
        self.used[index] = true;
        match (&self.exchanges[index].call, &self.exchanges[index].reply) {
            (VenueCall::Place { order }, VenueReply::Place { result }) => {
                Some((order.clone(), result.clone().into()))
            }
            _ => None,
        }
    }

    fn positions(&mut self) -> Option<Result<Vec<VenuePosition>, VenueError>> {
        match self.take(|call| matches!(call, VenueCall::Positions))? {
            VenueReply::Positions { result } => Some(result.clone().into()),
            _ => None,
        }
    }

    fn cancel(&mut self, client_order_id: &str) -> Option<Result<Option<VenueOrder>, VenueError>> {
        match self.take(|call| matches!(call, VenueCall::Cancel { client_order_id: id } if id == client_order_id))? {
            VenueReply::Cancel { result } => Some(result.clone().into()),
            _ => None,
        }
    }

    /// Calls that change the venue, and position reads, that the model did not expect (a
    /// read before a Retry-After passed is one).
    fn unexpected(&self) -> Vec<String> {
        self.exchanges
            .iter()
            .zip(&self.used)
            .filter(|(exchange, used)| {
                !**used
                    && matches!(
                        exchange.call,
                        VenueCall::Place { .. } | VenueCall::Cancel { .. } | VenueCall::Positions
                    )
            })
            .map(|(exchange, _)| format!("{:?}", exchange.call))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Intent {
    signal: Signal,
    client_order_id: String,
    status: IntentStatus,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Order {
    intent_id: String,
    client_order_id: String,
    size: i64,
    fills: BTreeMap<String, (i64, i64)>,
    cancelled: bool,
}

impl Order {
    fn filled(&self) -> i64 {
        self.fills.values().map(|(qty, _)| qty).sum()
    }

    fn status(&self) -> OrderStatus {
        if self.filled() >= self.size {
            OrderStatus::Filled
        } else if self.cancelled {
            OrderStatus::Cancelled
        } else {
            OrderStatus::Open
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    strategy: String,
    symbol: String,
    qty: i64,
    cost: i64,
    open: bool,
    exit_price: Option<i64>,
    realized_pnl: Option<i64>,
    exit_order_id: Option<String>,
}

/// One legal state of the book.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelBook {
    limits: Limits,
    /// Live mode: exits verify the venue's positions first (paper mode skips the venue).
    live: bool,
    intents: BTreeMap<String, Intent>,
    /// A signal's identity (SPEC §2.1: strategy, canonical signal, bar) -> its intent.
    signal_ids: BTreeMap<String, String>,
    orders: BTreeMap<String, Order>,
    positions: BTreeMap<String, Position>,
    entries: BTreeMap<(String, String), String>,
    open_count: i64,
    exposure: i64,
    breaker: BreakerState,
    /// Day -> (pnl, trade count).
    daily: BTreeMap<i64, (i64, i64)>,
    checkpoints: BTreeMap<String, String>,
    /// Applied operator commands, with a close's pnl.
    commands: BTreeMap<String, Option<i64>>,
    /// The book restarted with intents executing: nothing is placed until a recovery has
    /// settled them all.
    recovery_required: bool,
}

fn identity(signal: &Signal) -> String {
    format!(
        "{}::{}::{}",
        signal.strategy,
        signal.canonical(),
        signal.bar_t
    )
}

/// Applies one request to one state, recording the state after each commit in `commits`.
struct Step<'step, 'journal> {
    now: i64,
    journal: &'step mut Journal<'journal>,
    commits: &'step mut Vec<ModelBook>,
    /// The id the book gave a submitted signal's intent, if the harness learned it (from
    /// the book's answer, or from its tables after a crash). Ids are the book's choice.
    name: Option<&'step str>,
    /// What the book did that no correct book does, in words (a wrong exit order, a
    /// verification it skipped).
    wrong: Vec<String>,
}

impl ModelBook {
    fn new(limits: Limits, live: bool) -> ModelBook {
        ModelBook {
            limits,
            live,
            intents: BTreeMap::new(),
            signal_ids: BTreeMap::new(),
            orders: BTreeMap::new(),
            positions: BTreeMap::new(),
            entries: BTreeMap::new(),
            open_count: 0,
            exposure: 0,
            breaker: BreakerState {
                open: false,
                reason: None,
                failure_count: 0,
            },
            daily: BTreeMap::new(),
            checkpoints: BTreeMap::new(),
            commands: BTreeMap::new(),
            recovery_required: false,
        }
    }

    fn apply(&mut self, op: &Op, step: &mut Step<'_, '_>) -> Expect {
        match op {
            Op::Submit(signal) => self.submit(signal, step),
            Op::Recover => self.recover(step),
            Op::SyncFills => self.sync(step),
            Op::Close {
                intent_id,
                exit_price,
                command_id,
            } => self.close(intent_id, *exit_price, command_id, step),
            Op::Trip { reason, command_id } => self.trip(*reason, command_id, step),
            Op::Reset { command_id } => self.reset(command_id, step),
            Op::Checkpoint {
                name,
                value,
                command_id,
            } => self.checkpoint(name, value, command_id, step),
            Op::RollDay => self.roll_day(step),
            Op::EvaluateExits {
                marks,
                stop_loss,
                take_profit,
            } => self.evaluate_exits(marks, *stop_loss, *take_profit, step),
        }
    }

    fn submit(&mut self, signal: &Signal, step: &mut Step<'_, '_>) -> Expect {
        let today = step.now.div_euclid(DAY_MS);
        if self.recovery_required {
            return Expect::Problem(ProblemKind::RecoveryRequired);
        }
        if self.breaker.open {
            return Expect::Problem(ProblemKind::BreakerOpen);
        }
        if self
            .daily
            .get(&today)
            .is_some_and(|(pnl, _)| *pnl <= -self.limits.max_daily_loss)
        {
            return Expect::Problem(ProblemKind::DailyLossLimit);
        }
        let known = self.signal_ids.get(&identity(signal)).cloned();
        if let Some(status) = known
            .as_ref()
            .and_then(|id| self.intents.get(id))
            .map(|intent| intent.status)
        {
            if status != IntentStatus::Pending {
                return Expect::Existing(status);
            }
        }
        let window = (signal.window_id.clone(), signal.strategy.clone());
        if self.entries.contains_key(&window) {
            return Expect::Problem(ProblemKind::AlreadyEntered);
        }
        let notional = signal.size * signal.price;
        if self.open_count >= self.limits.max_open
            || self.exposure + notional > self.limits.max_exposure
        {
            return Expect::Problem(ProblemKind::LimitReached);
        }
        // The book reserves, then places: the id comes from its answer, else its call.
        let placed = step.journal.place();
        let named = known.or_else(|| step.name.map(str::to_owned)).or_else(|| {
            placed
                .as_ref()
                .map(|(client_order_id, _)| client_order_id.clone())
        });
        let Some(intent_id) = named else {
            // No answer and no call: it stopped before anything it could name.
            return Expect::Placed;
        };
        let client_order_id = placed
            .as_ref()
            .map_or_else(|| intent_id.clone(), |(id, _)| id.clone());
        self.reserve(&intent_id, &client_order_id, signal, window, notional);
        step.commits.push(self.clone());
        match placed {
            Some((_, reply)) => self.settle(&intent_id, reply, step),
            None => Expect::Placed,
        }
    }

    fn reserve(
        &mut self,
        intent_id: &str,
        client_order_id: &str,
        signal: &Signal,
        window: (String, String),
        notional: i64,
    ) {
        self.signal_ids
            .insert(identity(signal), intent_id.to_owned());
        self.intents.insert(
            intent_id.to_owned(),
            Intent {
                signal: signal.clone(),
                client_order_id: client_order_id.to_owned(),
                status: IntentStatus::Executing,
            },
        );
        self.entries.insert(window, intent_id.to_owned());
        self.open_count += 1;
        self.exposure += notional;
    }

    /// The venue's answer to a placement (or to recovery's look-up), recorded.
    fn settle(
        &mut self,
        intent_id: &str,
        reply: Result<VenueOrder, VenueError>,
        step: &mut Step<'_, '_>,
    ) -> Expect {
        match reply {
            Ok(order) if order.rejection.is_some() => {
                self.unplaced(intent_id, IntentStatus::Rejected, step, Expect::Rejected)
            }
            Ok(order) => {
                self.confirm(intent_id, &order, step.now);
                step.commits.push(self.clone());
                Expect::Placed
            }
            Err(VenueError::Rejected { .. }) => {
                self.unplaced(intent_id, IntentStatus::Rejected, step, Expect::Rejected)
            }
            Err(VenueError::RateLimited { .. }) => self.unplaced(
                intent_id,
                IntentStatus::Pending,
                step,
                Expect::Problem(ProblemKind::VenueUnavailable),
            ),
            Err(VenueError::Duplicate { .. }) => {
                let client_order_id = self.intents.get(intent_id).map_or_else(
                    || intent_id.to_owned(),
                    |intent| intent.client_order_id.clone(),
                );
                match step.journal.lookup(&client_order_id) {
                    Some(Ok(Some(order))) => self.settle(intent_id, Ok(order), step),
                    _ => Expect::Problem(ProblemKind::VenueUncertain),
                }
            }
            Err(VenueError::Timeout | VenueError::Internal { .. }) => {
                Expect::Problem(ProblemKind::VenueUncertain)
            }
        }
    }

    fn unplaced(
        &mut self,
        intent_id: &str,
        status: IntentStatus,
        step: &mut Step<'_, '_>,
        expect: Expect,
    ) -> Expect {
        self.release(intent_id);
        if let Some(intent) = self.intents.get_mut(intent_id) {
            intent.status = status;
        }
        step.commits.push(self.clone());
        expect
    }

    fn release(&mut self, intent_id: &str) {
        self.entries.retain(|_, holder| holder != intent_id);
        if let Some(intent) = self.intents.get(intent_id) {
            self.open_count -= 1;
            self.exposure -= intent.signal.size * intent.signal.price;
        }
    }

    fn confirm(&mut self, intent_id: &str, venue: &VenueOrder, now: i64) {
        let Some(intent) = self.intents.get_mut(intent_id) else {
            return;
        };
        intent.status = IntentStatus::Completed;
        let signal = intent.signal.clone();
        let mut order = Order {
            intent_id: intent_id.to_owned(),
            client_order_id: venue.client_order_id.clone(),
            size: signal.size,
            fills: BTreeMap::new(),
            cancelled: false,
        };
        merge(&mut order, venue);
        let (qty, cost) = signed_fills(&order, &signal);
        self.positions.insert(
            intent_id.to_owned(),
            Position {
                strategy: signal.strategy.clone(),
                symbol: signal.symbol.clone(),
                qty,
                cost,
                open: true,
                exit_price: None,
                realized_pnl: None,
                exit_order_id: None,
            },
        );
        self.orders.insert(venue.venue_order_id.clone(), order);
        self.daily.entry(now.div_euclid(DAY_MS)).or_default().1 += 1;
    }

    fn recover(&mut self, step: &mut Step<'_, '_>) -> Expect {
        let executing: Vec<String> = self
            .intents
            .iter()
            .filter(|(_, intent)| intent.status == IntentStatus::Executing)
            .map(|(id, _)| id.clone())
            .collect();
        let mut settled_all = true;
        for intent_id in executing {
            let client_order_id = self.intents[&intent_id].client_order_id.clone();
            match step.journal.lookup(&client_order_id) {
                Some(Ok(Some(order))) => {
                    self.settle(&intent_id, Ok(order), step);
                }
                Some(Ok(None)) => {
                    self.unplaced(&intent_id, IntentStatus::Pending, step, Expect::Done);
                }
                Some(Err(_)) | None => settled_all = false,
            }
        }
        if settled_all {
            self.recovery_required = false;
            Expect::Done
        } else {
            Expect::Problem(ProblemKind::VenueUncertain)
        }
    }

    fn sync(&mut self, step: &mut Step<'_, '_>) -> Expect {
        let open: Vec<String> = self
            .orders
            .iter()
            .filter(|(_, order)| order.status() == OrderStatus::Open)
            .map(|(id, _)| id.clone())
            .collect();
        for order_id in open {
            let client_order_id = self.orders[&order_id].client_order_id.clone();
            match step.journal.lookup(&client_order_id) {
                Some(Ok(Some(venue))) => {
                    let before = self.orders[&order_id].clone();
                    self.record(&order_id, &venue);
                    if self.orders[&order_id] != before {
                        step.commits.push(self.clone());
                    }
                }
                Some(Err(_)) => return Expect::Problem(ProblemKind::VenueUncertain),
                Some(Ok(None)) | None => {}
            }
        }
        Expect::Done
    }

    /// What the venue says of an order the book holds: new fills and its cancellation.
    fn record(&mut self, order_id: &str, venue: &VenueOrder) {
        let Some(order) = self.orders.get_mut(order_id) else {
            return;
        };
        merge(order, venue);
        let order = order.clone();
        let signal = self.intents[&order.intent_id].signal.clone();
        if let Some(position) = self.positions.get_mut(&order.intent_id) {
            (position.qty, position.cost) = signed_fills(&order, &signal);
        }
    }

    fn close(
        &mut self,
        intent_id: &str,
        exit_price: i64,
        command_id: &str,
        step: &mut Step<'_, '_>,
    ) -> Expect {
        if self.commands.contains_key(command_id) {
            return Expect::Done;
        }
        if !self
            .positions
            .get(intent_id)
            .is_some_and(|position| position.open)
        {
            return Expect::Problem(ProblemKind::NoOpenPosition);
        }
        // The book writes nothing unless the whole close succeeds: work on a copy.
        let mut closed = self.clone();
        let order_id = self
            .orders
            .iter()
            .find(|(_, order)| order.intent_id == intent_id)
            .map(|(id, _)| id.clone());
        if let Some(order_id) = order_id.filter(|id| self.orders[id].status() == OrderStatus::Open)
        {
            let client_order_id = self.orders[&order_id].client_order_id.clone();
            match step.journal.cancel(&client_order_id) {
                Some(Ok(Some(venue))) => closed.record(&order_id, &venue),
                Some(Err(_)) => return Expect::Problem(ProblemKind::VenueUnavailable),
                // The book closed without cancelling the rest: what fills later is lost.
                Some(Ok(None)) | None => return Expect::Problem(ProblemKind::Protocol),
            }
        }
        let exit = match closed.exit(intent_id, exit_price, step) {
            Ok(exit) => exit,
            Err(refused) => return refused,
        };
        closed.realise(intent_id, exit_price, exit.as_ref(), step.now);
        closed.commands.insert(
            command_id.to_owned(),
            closed.positions[intent_id].realized_pnl,
        );
        *self = closed;
        step.commits.push(self.clone());
        Expect::Done
    }

    /// The position is closed at `exit_price` by `exit`: the pnl is what the exit's fills
    /// brought in (or cost, buying a short back) less the entry's cost.
    fn realise(&mut self, intent_id: &str, exit_price: i64, exit: Option<&VenueOrder>, now: i64) {
        let signal = &self.intents[intent_id].signal;
        let notional = signal.size * signal.price;
        let Some(position) = self.positions.get_mut(intent_id) else {
            return;
        };
        let proceeds = exit.map_or(0, |exit| {
            let mut trades = BTreeMap::new();
            for fill in &exit.fills {
                trades
                    .entry(fill.trade_id.clone())
                    .or_insert(fill.qty * fill.price);
            }
            trades.values().sum::<i64>()
        });
        let pnl = position.qty.signum() * proceeds - position.cost;
        position.open = false;
        position.exit_price = Some(exit_price);
        position.realized_pnl = Some(pnl);
        position.exit_order_id = exit.map(|exit| exit.venue_order_id.clone());
        self.open_count -= 1;
        self.exposure -= notional;
        self.daily.entry(now.div_euclid(DAY_MS)).or_default().0 += pnl;
    }

    /// The exit that takes what filled off the venue: a correct close asks for it first (a
    /// close sent again after an uncertain answer finds the exit it placed), else places
    /// it: reduce-only, the other side, what filled, at the exit price. `Err`: the close is
    /// refused, nothing written.
    fn exit(
        &self,
        intent_id: &str,
        exit_price: i64,
        step: &mut Step<'_, '_>,
    ) -> Result<Option<VenueOrder>, Expect> {
        let (position, side) = (
            &self.positions[intent_id],
            self.intents[intent_id].signal.side,
        );
        let filled = position.qty.abs();
        if filled == 0 {
            return Ok(None);
        }
        let refused = |error: &VenueError| match error {
            VenueError::Rejected { .. } | VenueError::RateLimited { .. } => {
                Expect::Problem(ProblemKind::VenueUnavailable)
            }
            _ => Expect::Problem(ProblemKind::VenueUncertain),
        };
        match step.journal.next_lookup() {
            Some(Ok(Some(order))) if order.rejection.is_none() => return Ok(Some(order)),
            Some(Ok(Some(_))) => return Err(Expect::Problem(ProblemKind::VenueUnavailable)),
            Some(Ok(None)) => {}
            Some(Err(error)) => return Err(refused(&error)),
            None => {
                step.wrong.push(format!("the close of {intent_id} did not ask the venue for its exit before placing one (a close sent again would place it twice)"));
                return Err(Expect::Problem(ProblemKind::VenueUnavailable));
            }
        }
        let Some((request, reply)) = step.journal.next_place() else {
            // It stopped before (a crash): nothing placed.
            return Err(Expect::Problem(ProblemKind::VenueUncertain));
        };
        let closing = side.opposite();
        if !(request.reduce_only
            && request.side == closing
            && request.size == filled
            && request.price == exit_price
            && request.symbol == position.symbol)
        {
            step.wrong.push(format!("the exit for {intent_id} was {request:?}; a correct one is reduce-only {} {filled} {} at {exit_price}", closing.as_str(), position.symbol));
        }
        match reply {
            Ok(order) if order.rejection.is_none() => Ok(Some(order)),
            Ok(_) => Err(Expect::Problem(ProblemKind::VenueUnavailable)),
            Err(error) => Err(refused(&error)),
        }
    }

    /// SPEC §2.8: verify the venue's positions, then close what crossed its stop-loss or
    /// take-profit, in intent order, each close refused by the venue left for next time.
    fn evaluate_exits(
        &mut self,
        marks: &[Mark],
        stop_loss: bool,
        take_profit: bool,
        step: &mut Step<'_, '_>,
    ) -> Expect {
        if self.recovery_required {
            return Expect::Problem(ProblemKind::RecoveryRequired);
        }
        if self.breaker.open {
            return Expect::Problem(ProblemKind::BreakerOpen);
        }
        let blind = if stop_loss {
            TripReason::StopLossBlind
        } else {
            TripReason::TakeProfitBlind
        };
        if let Err(refused) = self.verify(blind, step) {
            return refused;
        }
        let due: Vec<(String, i64)> = self
            .positions
            .iter()
            .filter(|(_, position)| position.open)
            .filter_map(|(id, position)| {
                let mark = marks.iter().find(|mark| mark.symbol == position.symbol)?;
                let entry = self.intents[id].signal.price;
                // Millionths moved in the position's favour (negative: against it).
                let gained = match self.intents[id].signal.side {
                    Side::Buy => mark.price - entry,
                    Side::Sell => entry - mark.price,
                };
                let stopped = stop_loss && -gained * 1_000_000 >= entry * self.limits.stop_loss;
                let taken = take_profit && gained * 1_000_000 >= entry * self.limits.take_profit;
                (stopped || taken).then(|| (id.clone(), mark.price))
            })
            .collect();
        for (intent_id, mark) in due {
            let command_id = format!("exit:{intent_id}");
            match self.close(&intent_id, mark, &command_id, step) {
                Expect::Done
                | Expect::Problem(ProblemKind::VenueUnavailable | ProblemKind::VenueUncertain) => {}
                other => return other,
            }
        }
        Expect::Done
    }

    /// The verification before exits. `Err`: what the book must answer instead.
    fn verify(&mut self, blind: TripReason, step: &mut Step<'_, '_>) -> Result<(), Expect> {
        if !self.live {
            return Ok(());
        }
        let now = step.now;
        let checkpoint = |name: &str| -> Option<i64> { self.checkpoints.get(name)?.parse().ok() };
        let verified_at = checkpoint(VERIFIED_AT);
        let retry_until = checkpoint(RETRY_AFTER);
        let waiting = retry_until.is_some_and(|until| now < until);
        let reply = if waiting {
            Err(VenueError::RateLimited {
                status: 429,
                retry_after_ms: None,
            })
        } else if let Some(reply) = step.journal.positions() {
            reply
        } else {
            step.wrong
                .push("exits were evaluated without asking the venue for its positions".to_owned());
            return Err(Expect::Done);
        };
        match reply {
            Ok(positions) => {
                if self.blind(&positions) {
                    self.trip_now(blind, step);
                    return Err(Expect::Problem(ProblemKind::Blind));
                }
                // A checkpoint is written when its value changes.
                if verified_at != Some(now) {
                    self.checkpoints
                        .insert(VERIFIED_AT.to_owned(), now.to_string());
                    step.commits.push(self.clone());
                }
                Ok(())
            }
            Err(VenueError::RateLimited { retry_after_ms, .. }) => {
                if let Some(wait) = retry_after_ms.filter(|wait| Some(now + wait) != retry_until) {
                    self.checkpoints
                        .insert(RETRY_AFTER.to_owned(), (now + wait).to_string());
                    step.commits.push(self.clone());
                }
                match verified_at {
                    Some(at) if now - at < VERIFICATION_FRESH_MS => Ok(()),
                    _ => {
                        self.trip_now(TripReason::VerificationRateLimited, step);
                        Err(Expect::Problem(ProblemKind::VerificationRateLimited))
                    }
                }
            }
            Err(_) => Err(Expect::Problem(ProblemKind::VerificationFailed)),
        }
    }

    /// Whether the venue holds, in some symbol, more (long or short) than anything the book
    /// holds or may still come to hold explains: filled open positions, what their open
    /// orders may fill, what executing intents may have placed.
    fn blind(&self, venue: &[VenuePosition]) -> bool {
        // symbol -> (filled, lowest, highest) the book may hold.
        let mut book: BTreeMap<&str, (i64, i64, i64)> = BTreeMap::new();

        for (id, position) in self.positions.iter().filter(|(_, position)| position.open) {
            let signal = &self.intents[id].signal;
            let still_open = self
                .orders
                .values()
                .any(|order| &order.intent_id == id && order.status() == OrderStatus::Open);
            let more = if still_open {
                signal.size - position.qty.abs()
            } else {
                0
            };
            let entry = book.entry(position.symbol.as_str()).or_default();
            entry.0 += position.qty;
            match signal.side {
                Side::Buy => entry.2 += more,
                Side::Sell => entry.1 -= more,
            }
        }
        for intent in self
            .intents
            .values()
            .filter(|intent| intent.status == IntentStatus::Executing)
        {
            let entry = book.entry(intent.signal.symbol.as_str()).or_default();
            match intent.signal.side {
                Side::Buy => entry.2 += intent.signal.size,
                Side::Sell => entry.1 -= intent.signal.size,
            }
        }
        venue.iter().any(|position| {
            let (filled, down, up) = book
                .get(position.symbol.as_str())
                .copied()
                .unwrap_or_default();
            position.qty > (filled + up).max(0) || position.qty < (filled + down).min(0)
        })
    }

    /// The book trips its own breaker (no command id).
    fn trip_now(&mut self, reason: TripReason, step: &mut Step<'_, '_>) {
        self.breaker.open = true;
        self.breaker.reason = Some(reason);
        self.breaker.failure_count += 1;
        step.commits.push(self.clone());
    }

    fn trip(&mut self, reason: TripReason, command_id: &str, step: &mut Step<'_, '_>) -> Expect {
        if self.commands.insert(command_id.to_owned(), None).is_none() {
            self.breaker.open = true;
            self.breaker.reason = Some(reason);
            self.breaker.failure_count += 1;
            step.commits.push(self.clone());
        }
        Expect::Done
    }

    fn reset(&mut self, command_id: &str, step: &mut Step<'_, '_>) -> Expect {
        if self.commands.contains_key(command_id) {
            return Expect::Done;
        }
        if self
            .orders
            .values()
            .any(|order| order.status() == OrderStatus::Open)
        {
            return Expect::Problem(ProblemKind::OpenOrders);
        }
        self.breaker.open = false;
        self.breaker.reason = None;
        self.commands.insert(command_id.to_owned(), None);
        step.commits.push(self.clone());
        Expect::Done
    }

    fn checkpoint(
        &mut self,
        name: &str,
        value: &str,
        command_id: &str,
        step: &mut Step<'_, '_>,
    ) -> Expect {
        if self.commands.insert(command_id.to_owned(), None).is_none() {
            self.checkpoints.insert(name.to_owned(), value.to_owned());
            step.commits.push(self.clone());
        }
        Expect::Done
    }

    fn roll_day(&mut self, step: &mut Step<'_, '_>) -> Expect {
        let today = step.now.div_euclid(DAY_MS);
        if self.checkpoints.get(DAY_ROLLED) != Some(&today.to_string()) {
            self.daily.entry(today).or_default();
            self.checkpoints
                .insert(DAY_ROLLED.to_owned(), today.to_string());
            step.commits.push(self.clone());
        }
        Expect::Done
    }

    fn state(&self) -> BookState {
        BookState {
            intents: self
                .intents
                .iter()
                .map(|(id, intent)| IntentState {
                    intent_id: id.clone(),
                    strategy: intent.signal.strategy.clone(),
                    window_id: intent.signal.window_id.clone(),
                    symbol: intent.signal.symbol.clone(),
                    side: intent.signal.side,
                    size: intent.signal.size,
                    price: intent.signal.price,
                    bar_t: intent.signal.bar_t,
                    status: intent.status,
                })
                .collect(),
            orders: self
                .orders
                .iter()
                .map(|(id, order)| OrderState {
                    order_id: id.clone(),
                    intent_id: order.intent_id.clone(),
                    client_order_id: order.client_order_id.clone(),
                    status: order.status(),
                    filled_qty: order.filled(),
                })
                .collect(),
            positions: self
                .positions
                .iter()
                .map(|(id, position)| PositionState {
                    intent_id: id.clone(),
                    strategy: position.strategy.clone(),
                    symbol: position.symbol.clone(),
                    qty: position.qty,
                    cost: position.cost,
                    open: position.open,
                    exit_price: position.exit_price,
                    realized_pnl: position.realized_pnl,
                    exit_order_id: position.exit_order_id.clone(),
                })
                .collect(),
            window_entries: self
                .entries
                .iter()
                .map(|((window_id, strategy), intent_id)| WindowEntry {
                    window_id: window_id.clone(),
                    strategy: strategy.clone(),
                    intent_id: intent_id.clone(),
                })
                .collect(),
            counters: Counters {
                open_count: self.open_count,
                exposure: self.exposure,
                max_open: self.limits.max_open,
                max_exposure: self.limits.max_exposure,
            },
            breaker: Some(self.breaker.clone()),
            daily: self
                .daily
                .iter()
                .map(|(day, (pnl, trade_count))| DailyState {
                    day: *day,
                    pnl: *pnl,
                    trade_count: *trade_count,
                })
                .collect(),
            checkpoints: self
                .checkpoints
                .iter()
                .map(|(name, value)| CheckpointState {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

/// Adds the venue's fills the order has not seen (each trade once) and its cancellation.
fn merge(order: &mut Order, venue: &VenueOrder) {
    for VenueFill {
        trade_id,
        qty,
        price,
    } in &venue.fills
    {
        order
            .fills
            .entry(trade_id.clone())
            .or_insert((*qty, *price));
    }
    order.cancelled |= venue.cancelled;
}

fn signed_fills(order: &Order, signal: &Signal) -> (i64, i64) {
    let qty: i64 = order.fills.values().map(|(qty, _)| qty).sum();
    let cost: i64 = order.fills.values().map(|(qty, price)| qty * price).sum();
    (signal.side.signed(qty), signal.side.signed(cost))
}

/// The model: every legal state of the book (one unless a crash left something in doubt).
#[derive(Debug, Clone)]
pub struct Model {
    candidates: Vec<ModelBook>,
}

impl Model {
    /// `live`: the book runs in live mode (exits verify the venue's positions first).
    pub fn new(limits: Limits, live: bool) -> Model {
        Model {
            candidates: vec![ModelBook::new(limits, live)],
        }
    }

    /// Applies a request the book answered. With one legal state, the answer and the venue
    /// calls are checked too: returns what the book did that the model did not expect.
    /// `name`: see [`Step`].
    pub fn apply(
        &mut self,
        op: &Op,
        now: i64,
        exchanges: &[Exchange],
        answer: &Answer,
        name: Option<&str>,
    ) -> Vec<String> {
        let single = self.candidates.len() == 1;
        let mut surprises = Vec::new();
        let name = name.or_else(|| answer.intent_id());
        for candidate in &mut self.candidates {
            let mut journal = Journal::new(exchanges);
            let mut commits = Vec::new();
            let mut step = Step {
                now,
                journal: &mut journal,
                commits: &mut commits,
                name,
                wrong: Vec::new(),
            };
            let expect = candidate.apply(op, &mut step);
            let wrong = std::mem::take(&mut step.wrong);
            if single {
                surprises.extend(wrong);
                if !expect.admits(answer) {
                    surprises.push(format!(
                        "{op:?} was answered {answer:?}; the model expected {expect:?}"
                    ));
                }
                surprises.extend(journal.unexpected().into_iter().map(|call| {
                    format!("{op:?} made a venue call the model did not expect: {call}")
                }));
            }
        }
        self.dedup();
        surprises
    }

    /// Applies a request during which the book crashed: every commit boundary it may have
    /// stopped at becomes a legal state. `name`: see [`Step`].
    pub fn crashed(&mut self, op: &Op, now: i64, exchanges: &[Exchange], name: Option<&str>) {
        let mut candidates = Vec::new();
        for candidate in &self.candidates {
            let mut journal = Journal::new(exchanges);
            let mut commits = Vec::new();
            let mut state = candidate.clone();
            let mut step = Step {
                now,
                journal: &mut journal,
                commits: &mut commits,
                name,
                wrong: Vec::new(),
            };
            state.apply(op, &mut step);
            candidates.push(candidate.clone());
            candidates.extend(commits);
        }
        self.candidates = candidates;
        self.dedup();
    }

    fn dedup(&mut self) {
        let mut unique: Vec<ModelBook> = Vec::new();
        for candidate in self.candidates.drain(..) {
            if !unique.contains(&candidate) {
                unique.push(candidate);
            }
        }
        self.candidates = unique;
    }

    /// The book restarted: where intents are executing, nothing may be placed until a
    /// recovery settles them.
    pub fn restarted(&mut self) {
        for candidate in &mut self.candidates {
            candidate.recovery_required = candidate
                .intents
                .values()
                .any(|intent| intent.status == IntentStatus::Executing);
        }
        self.dedup();
    }

    /// A recording failed after the venue accepted (an unknown outcome): the book may have
    /// tripped its breaker, or not (the database may be what failed).
    pub fn maybe_tripped(&mut self, reason: TripReason) {
        let tripped: Vec<ModelBook> = self
            .candidates
            .iter()
            .map(|candidate| {
                let mut tripped = candidate.clone();
                tripped.breaker.open = true;
                tripped.breaker.reason = Some(reason);
                tripped.breaker.failure_count += 1;
                tripped
            })
            .collect();
        self.candidates.extend(tripped);
        self.dedup();
    }

    /// Keeps the legal states the book's state equals. `Err` with the first difference from
    /// the nearest legal state when none does.
    pub fn compare(&mut self, book: &BookState) -> Result<(), String> {
        let states: Vec<BookState> = self.candidates.iter().map(ModelBook::state).collect();
        let matching: Vec<usize> = (0..states.len())
            .filter(|index| &states[*index] == book)
            .collect();
        if matching.is_empty() {
            let difference = states
                .iter()
                .filter_map(|state| crate::state::first_difference(book, state))
                .next()
                .unwrap_or_else(|| "no legal state".to_owned());
            let count = states.len();
            return Err(if count == 1 {
                difference
            } else {
                format!("{difference} (nearest of {count} legal states)")
            });
        }
        let kept: Vec<ModelBook> = matching
            .into_iter()
            .map(|index| self.candidates[index].clone())
            .collect();
        self.candidates = kept;
        Ok(())
    }

    /// How many legal states the model holds (more than one only while a crash is in
    /// doubt).
    pub fn legal_states(&self) -> usize {
        self.candidates.len()
    }

    /// The open positions, by intent id, with their entry price: what a close picks from.
    pub fn open_positions(&self) -> Vec<(String, i64)> {
        let Some(model) = self.candidates.first() else {
            return Vec::new();
        };
        model
            .positions
            .iter()
            .filter(|(_, position)| position.open)
            .map(|(id, _)| (id.clone(), model.intents[id].signal.price))
            .collect()
    }
}
