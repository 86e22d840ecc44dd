//! The book's canonical state (the protocol's `state` request): what it holds, read in one
//! snapshot, sorted by key compared as values (never by a database collation).

use protocol::{
    BookState, CheckpointState, Counters, DailyState, IntentState, IntentStatus, OrderState,
    OrderStatus, PositionState, Side, WindowEntry,
};

use crate::book::Book;
use crate::breaker;
use crate::error::BookError;
use crate::store::{Isolation, StoreError, Transaction, Value};

impl Book {
    pub fn state(&mut self) -> Result<BookState, BookError> {
        self.transact(Isolation::Read, "read", |transaction| {
            let mut state = BookState {
                intents: rows(transaction, INTENTS, intent)?,
                orders: rows(transaction, ORDERS, order)?,
                positions: rows(transaction, POSITIONS, position)?,
                window_entries: rows(transaction, WINDOW_ENTRIES, window_entry)?,
                counters: rows(transaction, COUNTERS, counters)?
                    .pop()
                    .unwrap_or_default(),
                breaker: Some(breaker::read(transaction, None)?),
                daily: rows(transaction, DAILY, daily)?,
                checkpoints: rows(transaction, CHECKPOINTS, checkpoint)?,
            };
            state.intents.sort_by(|a, b| a.intent_id.cmp(&b.intent_id));
            state.orders.sort_by(|a, b| a.order_id.cmp(&b.order_id));
            state
                .positions
                .sort_by(|a, b| a.intent_id.cmp(&b.intent_id));
            state
                .window_entries
                .sort_by(|a, b| (&a.window_id, &a.strategy).cmp(&(&b.window_id, &b.strategy)));
            state.daily.sort_by_key(|daily| daily.day);
            state.checkpoints.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(state)
        })
    }
}

const INTENTS: &str =
    "SELECT intent_id, strategy, window_id, symbol, side, size, price, bar_t, status FROM intents";
const ORDERS: &str = "SELECT o.order_id, o.intent_id, o.client_order_id, o.status, \
     CAST(COALESCE((SELECT SUM(f.qty) FROM fills f WHERE f.order_id = o.order_id), 0) AS BIGINT) \
     FROM orders o";
const POSITIONS: &str =
    "SELECT intent_id, strategy, symbol, qty, cost, status, exit_price, realized_pnl, exit_order_id FROM positions";
const WINDOW_ENTRIES: &str = "SELECT window_id, strategy_id, intent_id FROM window_entries";
const COUNTERS: &str =
    "SELECT open_count, exposure, max_open, max_exposure FROM position_counters WHERE id = 1";
const DAILY: &str = "SELECT day, pnl, trade_count FROM daily_limits";
const CHECKPOINTS: &str = "SELECT name, value FROM checkpoints";

fn rows<T>(
    transaction: &mut (dyn Transaction + '_),
    sql: &str,
    parse: fn(&[Value]) -> Option<T>,
) -> Result<Vec<T>, StoreError> {
    transaction
        .query(sql, &[])?
        .rows
        .iter()
        .map(|row| {
            parse(row).ok_or_else(|| StoreError::Data {
                message: format!("a row does not fit the book's state: {row:?} from {sql}"),
            })
        })
        .collect()
}

fn text(value: &Value) -> Option<String> {
    value.as_text().map(str::to_owned)
}

fn optional_int(value: &Value) -> Option<Option<i64>> {
    match value {
        Value::Null => Some(None),
        Value::Int(integer) => Some(Some(*integer)),
        Value::Text(_) => None,
    }
}

fn optional_text(value: &Value) -> Option<Option<String>> {
    match value {
        Value::Null => Some(None),
        Value::Text(text) => Some(Some(text.clone())),
        Value::Int(_) => None,
    }
}

fn intent(row: &[Value]) -> Option<IntentState> {
    Some(IntentState {
        intent_id: text(row.first()?)?,
        strategy: text(row.get(1)?)?,
        window_id: text(row.get(2)?)?,
        symbol: text(row.get(3)?)?,
        side: Side::parse(row.get(4)?.as_text()?)?,
        size: row.get(5)?.as_int()?,
        price: row.get(6)?.as_int()?,
        bar_t: row.get(7)?.as_int()?,
        status: IntentStatus::parse(row.get(8)?.as_text()?)?,
    })
}

fn order(row: &[Value]) -> Option<OrderState> {
    Some(OrderState {
        order_id: text(row.first()?)?,
        intent_id: text(row.get(1)?)?,
        client_order_id: text(row.get(2)?)?,
        status: OrderStatus::parse(row.get(3)?.as_text()?)?,
        filled_qty: row.get(4)?.as_int()?,
    })
}

fn position(row: &[Value]) -> Option<PositionState> {
    Some(PositionState {
        intent_id: text(row.first()?)?,
        strategy: text(row.get(1)?)?,
        symbol: text(row.get(2)?)?,
        qty: row.get(3)?.as_int()?,
        cost: row.get(4)?.as_int()?,
        open: row.get(5)?.as_text()? == "open",
        exit_price: optional_int(row.get(6)?)?,
        realized_pnl: optional_int(row.get(7)?)?,
        exit_order_id: optional_text(row.get(8)?)?,
    })
}

fn window_entry(row: &[Value]) -> Option<WindowEntry> {
    Some(WindowEntry {
        window_id: text(row.first()?)?,
        strategy: text(row.get(1)?)?,
        intent_id: text(row.get(2)?)?,
    })
}

fn counters(row: &[Value]) -> Option<Counters> {
    Some(Counters {
        open_count: row.first()?.as_int()?,
        exposure: row.get(1)?.as_int()?,
        max_open: row.get(2)?.as_int()?,
        max_exposure: row.get(3)?.as_int()?,
    })
}

fn daily(row: &[Value]) -> Option<DailyState> {
    Some(DailyState {
        day: row.first()?.as_int()?,
        pnl: row.get(1)?.as_int()?,
        trade_count: row.get(2)?.as_int()?,
    })
}

fn checkpoint(row: &[Value]) -> Option<CheckpointState> {
    Some(CheckpointState {
        name: text(row.first()?)?,
        value: text(row.get(1)?)?,
    })
}
