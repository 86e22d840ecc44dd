//! The book's canonical state ([`protocol::BookState`]) as the harness reads it from a
//! dump of the database, and the first difference between two states, named by table,
//! key and column. The model oracle compares its own state with this.

use std::collections::{BTreeMap, BTreeSet};

use book::store::Value;
use protocol::{
    BookState, BreakerState, CheckpointState, Counters, DailyState, IntentState, IntentStatus,
    OrderState, OrderStatus, PositionState, Side, TripReason, WindowEntry,
};

use crate::dump::{Dump, TableDump};

fn text(value: &Value) -> String {
    value.as_text().unwrap_or_default().to_owned()
}

fn int(value: &Value) -> i64 {
    value.as_int().unwrap_or_default()
}

fn rows<T>(table: &TableDump, read: impl Fn(&[Value]) -> T) -> Vec<T> {
    table.rows.iter().map(|row| read(row)).collect()
}

/// The canonical state of the book whose dump this is.
pub fn from_dump(dump: &Dump) -> BookState {
    let (counters, breaker) = (
        dump.table("position_counters"),
        dump.table("circuit_breaker"),
    );
    let (daily, checkpoints) = (dump.table("daily_limits"), dump.table("checkpoints"));
    BookState {
        intents: intents(dump.table("intents")),
        orders: orders(dump),
        positions: positions(dump.table("positions")),
        window_entries: window_entries(dump.table("window_entries")),
        counters: rows(counters, |row| Counters {
            open_count: int(counters.get(row, "open_count")),
            exposure: int(counters.get(row, "exposure")),
            max_open: int(counters.get(row, "max_open")),
            max_exposure: int(counters.get(row, "max_exposure")),
        })
        .pop()
        .unwrap_or_default(),
        breaker: rows(breaker, |row| BreakerState {
            open: text(breaker.get(row, "state")) == "OPEN",
            reason: breaker
                .get(row, "reason")
                .as_text()
                .and_then(TripReason::from_name),
            failure_count: int(breaker.get(row, "failure_count")),
        })
        .pop(),
        daily: rows(daily, |row| DailyState {
            day: int(daily.get(row, "day")),
            pnl: int(daily.get(row, "pnl")),
            trade_count: int(daily.get(row, "trade_count")),
        }),
        checkpoints: rows(checkpoints, |row| CheckpointState {
            name: text(checkpoints.get(row, "name")),
            value: text(checkpoints.get(row, "value")),
        }),
    }
}

fn intents(intents: &TableDump) -> Vec<IntentState> {
    rows(intents, |row| IntentState {
        intent_id: text(intents.get(row, "intent_id")),
        strategy: text(intents.get(row, "strategy")),
        window_id: text(intents.get(row, "window_id")),
        symbol: text(intents.get(row, "symbol")),
        side: Side::parse(&text(intents.get(row, "side"))).unwrap_or(Side::Buy),
        size: int(intents.get(row, "size")),
        price: int(intents.get(row, "price")),
        bar_t: int(intents.get(row, "bar_t")),
        status: IntentStatus::parse(&text(intents.get(row, "status")))
            .unwrap_or(IntentStatus::Executing),
    })
}

fn orders(dump: &Dump) -> Vec<OrderState> {
    let mut filled: BTreeMap<String, i64> = BTreeMap::new();
    let fills = dump.table("fills");
    for row in &fills.rows {
        *filled.entry(text(fills.get(row, "order_id"))).or_default() += int(fills.get(row, "qty"));
    }
    let orders = dump.table("orders");
    rows(orders, |row| OrderState {
        order_id: text(orders.get(row, "order_id")),
        intent_id: text(orders.get(row, "intent_id")),
        client_order_id: text(orders.get(row, "client_order_id")),
        status: OrderStatus::parse(&text(orders.get(row, "status"))).unwrap_or(OrderStatus::Open),
        filled_qty: filled
            .get(&text(orders.get(row, "order_id")))
            .copied()
            .unwrap_or(0),
    })
}

fn positions(positions: &TableDump) -> Vec<PositionState> {
    rows(positions, |row| PositionState {
        intent_id: text(positions.get(row, "intent_id")),
        strategy: text(positions.get(row, "strategy")),
        symbol: text(positions.get(row, "symbol")),
        qty: int(positions.get(row, "qty")),
        cost: int(positions.get(row, "cost")),
        open: text(positions.get(row, "status")) == "open",
        exit_price: positions.get(row, "exit_price").as_int(),
        realized_pnl: positions.get(row, "realized_pnl").as_int(),
        exit_order_id: positions
            .get(row, "exit_order_id")
            .as_text()
            .map(str::to_owned),
    })
}

fn window_entries(entries: &TableDump) -> Vec<WindowEntry> {
    rows(entries, |row| WindowEntry {
        window_id: text(entries.get(row, "window_id")),
        strategy: text(entries.get(row, "strategy_id")),
        intent_id: text(entries.get(row, "intent_id")),
    })
}

/// A state as rows: (table, key) -> (column, value) pairs.
type Rows = BTreeMap<(&'static str, String), Vec<(&'static str, String)>>;

fn table_rows(state: &BookState) -> Rows {
    let mut rows = Rows::new();
    for intent in &state.intents {
        rows.insert(
            ("intents", intent.intent_id.clone()),
            vec![
                ("strategy", intent.strategy.clone()),
                ("window_id", intent.window_id.clone()),
                ("symbol", intent.symbol.clone()),
                ("side", intent.side.as_str().to_owned()),
                ("size", intent.size.to_string()),
                ("price", intent.price.to_string()),
                ("bar_t", intent.bar_t.to_string()),
                ("status", intent.status.as_str().to_owned()),
            ],
        );
    }
    for order in &state.orders {
        rows.insert(
            ("orders", order.order_id.clone()),
            vec![
                ("intent_id", order.intent_id.clone()),
                ("client_order_id", order.client_order_id.clone()),
                ("status", order.status.as_str().to_owned()),
                ("filled_qty", order.filled_qty.to_string()),
            ],
        );
    }
    for position in &state.positions {
        rows.insert(
            ("positions", position.intent_id.clone()),
            vec![
                ("strategy", position.strategy.clone()),
                ("symbol", position.symbol.clone()),
                ("qty", position.qty.to_string()),
                ("cost", position.cost.to_string()),
                ("open", position.open.to_string()),
                ("exit_price", format!("{:?}", position.exit_price)),
                ("realized_pnl", format!("{:?}", position.realized_pnl)),
                ("exit_order_id", format!("{:?}", position.exit_order_id)),
            ],
        );
    }
    singleton_rows(state, &mut rows);
    rows
}

/// Window entries, counters, breaker, days and checkpoints.
fn singleton_rows(state: &BookState, rows: &mut Rows) {
    for entry in &state.window_entries {
        let key = format!("{} / {}", entry.window_id, entry.strategy);
        rows.insert(
            ("window_entries", key),
            vec![("intent_id", entry.intent_id.clone())],
        );
    }
    let counters = state.counters;
    rows.insert(
        ("position_counters", "1".to_owned()),
        vec![
            ("open_count", counters.open_count.to_string()),
            ("exposure", counters.exposure.to_string()),
            ("max_open", counters.max_open.to_string()),
            ("max_exposure", counters.max_exposure.to_string()),
        ],
    );
    if let Some(breaker) = &state.breaker {
        rows.insert(
            ("circuit_breaker", "1".to_owned()),
            vec![
                ("open", breaker.open.to_string()),
                ("reason", format!("{:?}", breaker.reason)),
                ("failure_count", breaker.failure_count.to_string()),
            ],
        );
    }
    for daily in &state.daily {
        rows.insert(
            ("daily_limits", daily.day.to_string()),
            vec![
                ("pnl", daily.pnl.to_string()),
                ("trade_count", daily.trade_count.to_string()),
            ],
        );
    }
    for checkpoint in &state.checkpoints {
        rows.insert(
            ("checkpoints", checkpoint.name.clone()),
            vec![("value", checkpoint.value.clone())],
        );
    }
}

/// The first difference between the book's state and the model's, as "table T, key K:
/// column C is X in the book, Y in the model", or `None`.
pub fn first_difference(book: &BookState, model: &BookState) -> Option<String> {
    let (book, model) = (table_rows(book), table_rows(model));
    let keys: BTreeSet<&(&str, String)> = book.keys().chain(model.keys()).collect();
    for key @ (table, row) in keys {
        match (book.get(key), model.get(key)) {
            (Some(left), Some(right)) => {
                for ((column, left), (_, right)) in left.iter().zip(right) {
                    if left != right {
                        return Some(format!("table {table}, key {row}: column {column} is {left} in the book, {right} in the model"));
                    }
                }
            }
            (Some(left), None) => {
                return Some(format!(
                    "table {table}, key {row}: the book has {left:?}, the model has no such row"
                ))
            }
            (None, Some(right)) => {
                return Some(format!(
                    "table {table}, key {row}: the model has {right:?}, the book has no such row"
                ))
            }
            (None, None) => {}
        }
    }
    None
}
