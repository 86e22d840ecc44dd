//! Rebuilds the book's tables from its event log alone (SPEC §2.12). The rebuild must equal
//! the tables: if it does not, a state change went unrecorded, or an event says something
//! the tables do not (a float price, say).

use std::collections::BTreeMap;

use book::clock::DAY_MS;
use book::store::Value;
use protocol::{Side, Signal};
use serde_json::Value as Json;

use crate::dump::{Dump, TableDump};

/// Tables the event log determines. `schema_migrations` and `events` are not rebuilt.
pub const REBUILT_TABLES: &[&str] = &[
    "runs",
    "intents",
    "orders",
    "fills",
    "positions",
    "window_entries",
    "position_counters",
    "circuit_breaker",
    "breaker_audit",
    "daily_limits",
    "last_signals",
    "checkpoints",
    "operator_commands",
];

type Row = BTreeMap<&'static str, Value>;

#[derive(Default)]
struct Tables {
    tables: BTreeMap<&'static str, BTreeMap<Vec<Value>, Row>>,
}

impl Tables {
    fn put(&mut self, table: &'static str, key: Vec<Value>, row: Row) {
        self.tables.entry(table).or_default().insert(key, row);
    }

    fn row(&mut self, table: &'static str, key: &[Value]) -> Result<&mut Row, String> {
        self.tables
            .get_mut(table)
            .and_then(|rows| rows.get_mut(key))
            .ok_or_else(|| format!("an event refers to a missing {table} row {key:?}"))
    }

    fn remove_where(&mut self, table: &'static str, column: &str, value: &Value) {
        if let Some(rows) = self.tables.get_mut(table) {
            rows.retain(|_, row| row.get(column) != Some(value));
        }
    }
}

fn field<'payload>(payload: &'payload Json, key: &str) -> Result<&'payload Json, String> {
    payload
        .get(key)
        .ok_or_else(|| format!("payload {payload} has no {key}"))
}

fn int(payload: &Json, key: &str) -> Result<i64, String> {
    field(payload, key)?
        .as_i64()
        .ok_or_else(|| format!("{key} is not a fixed-point integer in payload {payload}"))
}

fn text(payload: &Json, key: &str) -> Result<String, String> {
    field(payload, key)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("{key} is not text in payload {payload}"))
}

fn row(pairs: &[(&'static str, Value)]) -> Row {
    pairs.iter().cloned().collect()
}

fn add(row: &mut Row, column: &'static str, delta: i64) {
    let current = row.get(column).and_then(Value::as_int).unwrap_or(0);
    row.insert(column, Value::Int(current + delta));
}

/// The tables as the events in `dump` say they must be, in `dump`'s column order.
pub fn rebuild(dump: &Dump) -> Result<Dump, String> {
    let events = dump.table("events");
    let mut tables = Tables::default();
    for event in &events.rows {
        let seq = events.get(event, "seq").as_int().unwrap_or_default();
        let kind = events.get(event, "type").as_text().unwrap_or_default();
        let ts = events.get(event, "ts").as_int().unwrap_or_default();
        let run_id = events.get(event, "run_id").clone();
        let payload: Json =
            serde_json::from_str(events.get(event, "payload").as_text().unwrap_or_default())
                .map_err(|error| format!("event {seq}: payload is not JSON: {error}"))?;
        apply(&mut tables, kind, ts, &run_id, &payload)
            .map_err(|error| format!("event {seq} ({kind}): {error}"))?;
        let run = tables.row("runs", std::slice::from_ref(&run_id))?;
        run.insert("last_seq", Value::Int(seq));
    }
    let mut rebuilt = Vec::new();
    for name in REBUILT_TABLES {
        let real = dump.table(name);
        let rows = tables.tables.remove(name).unwrap_or_default();
        let rows = rows
            .into_values()
            .map(|row| {
                real.columns
                    .iter()
                    .map(|column| row.get(column.as_str()).cloned().unwrap_or(Value::Null))
                    .collect()
            })
            .collect();
        rebuilt.push(TableDump {
            name: real.name.clone(),
            key: real.key.clone(),
            columns: real.columns.clone(),
            rows,
        });
    }
    Ok(Dump { tables: rebuilt })
}

/// The tables of `dump` that [`rebuild`] produces, for comparison.
pub fn rebuilt_part(dump: &Dump) -> Dump {
    Dump {
        tables: REBUILT_TABLES
            .iter()
            .map(|name| dump.table(name).clone())
            .collect(),
    }
}

/// One event's effect on the tables. Each event kind has its own function below.
fn apply(
    tables: &mut Tables,
    kind: &str,
    ts: i64,
    run_id: &Value,
    payload: &Json,
) -> Result<(), String> {
    match kind {
        "run.started" => run_started(tables, ts, run_id, payload),
        "intent.reserved" => reserved(tables, ts, run_id, payload),
        "order.recorded" => order_recorded(tables, ts, payload),
        "fills.synced" => fills_synced(tables, ts, payload),
        "intent.rejected" => unplaced(tables, ts, payload, "rejected"),
        "intent.released" => unplaced(tables, ts, payload, "pending"),
        "position.closed" => position_closed(tables, ts, payload),
        "day.rolled" => {
            daily(tables, int(payload, "day")?);
            Ok(())
        }
        "breaker.tripped" => breaker_moved(tables, ts, payload, "OPEN"),
        "breaker.reset" => breaker_moved(tables, ts, payload, "CLOSED"),
        "checkpoint.written" => checkpoint_written(tables, ts, payload),
        other => Err(format!("unknown event type {other}")),
    }
}

fn run_started(tables: &mut Tables, ts: i64, run_id: &Value, payload: &Json) -> Result<(), String> {
    tables.put(
        "runs",
        vec![run_id.clone()],
        row(&[
            ("run_id", run_id.clone()),
            ("mode", Value::Text(text(payload, "mode")?)),
            ("dataset_sha", Value::Text(text(payload, "dataset_sha")?)),
            ("config_sha", Value::Text(text(payload, "config_sha")?)),
            ("seed", Value::Text(text(payload, "seed")?)),
            ("status", Value::from("running")),
        ]),
    );
    tables.put(
        "position_counters",
        vec![Value::Int(1)],
        row(&[
            ("id", Value::Int(1)),
            ("open_count", Value::Int(0)),
            ("max_open", Value::Int(int(payload, "max_open")?)),
            ("exposure", Value::Int(0)),
            ("max_exposure", Value::Int(int(payload, "max_exposure")?)),
        ]),
    );
    tables.put(
        "circuit_breaker",
        vec![Value::Int(1)],
        row(&[
            ("id", Value::Int(1)),
            ("state", Value::from("CLOSED")),
            ("reason", Value::Null),
            ("failure_count", Value::Int(0)),
            ("updated_ts", Value::Int(ts)),
        ]),
    );
    Ok(())
}

fn order_recorded(tables: &mut Tables, ts: i64, payload: &Json) -> Result<(), String> {
    let intent_id = Value::Text(text(payload, "intent_id")?);
    let order_id = Value::Text(text(payload, "order_id")?);
    let intent = tables.row("intents", std::slice::from_ref(&intent_id))?;
    intent.insert("status", Value::from("completed"));
    intent.insert("updated_ts", Value::Int(ts));
    let (strategy, symbol) = (intent["strategy"].clone(), intent["symbol"].clone());
    tables.put(
        "orders",
        vec![order_id.clone()],
        row(&[
            ("order_id", order_id.clone()),
            ("intent_id", intent_id.clone()),
            (
                "client_order_id",
                Value::Text(text(payload, "client_order_id")?),
            ),
            ("status", Value::Text(text(payload, "status")?)),
            ("ts", Value::Int(ts)),
        ]),
    );
    tables.put(
        "positions",
        vec![intent_id.clone()],
        row(&[
            ("intent_id", intent_id.clone()),
            ("strategy", strategy),
            ("symbol", symbol),
            ("qty", Value::Int(0)),
            ("cost", Value::Int(0)),
            ("status", Value::from("open")),
            ("exit_price", Value::Null),
            ("realized_pnl", Value::Null),
            ("updated_ts", Value::Int(ts)),
            ("exit_order_id", Value::Null),
        ]),
    );
    fills(tables, ts, &intent_id, &order_id, payload)?;
    add(daily(tables, ts.div_euclid(DAY_MS)), "trade_count", 1);
    Ok(())
}

fn fills_synced(tables: &mut Tables, ts: i64, payload: &Json) -> Result<(), String> {
    let intent_id = Value::Text(text(payload, "intent_id")?);
    let order_id = Value::Text(text(payload, "order_id")?);
    fills(tables, ts, &intent_id, &order_id, payload)?;
    tables
        .row("orders", &[order_id])?
        .insert("status", Value::Text(text(payload, "status")?));
    Ok(())
}

/// `intent.rejected` and `intent.released`: the reservation is freed.
fn unplaced(tables: &mut Tables, ts: i64, payload: &Json, status: &str) -> Result<(), String> {
    let intent_id = Value::Text(text(payload, "intent_id")?);
    release(tables, &intent_id)?;
    let intent = tables.row("intents", &[intent_id])?;
    intent.insert("status", Value::from(status));
    intent.insert("updated_ts", Value::Int(ts));
    Ok(())
}

fn position_closed(tables: &mut Tables, ts: i64, payload: &Json) -> Result<(), String> {
    let intent_id = Value::Text(text(payload, "intent_id")?);
    let pnl = int(payload, "pnl")?;
    let position = tables.row("positions", std::slice::from_ref(&intent_id))?;
    position.insert("status", Value::from("closed"));
    position.insert("exit_price", Value::Int(int(payload, "exit_price")?));
    position.insert("realized_pnl", Value::Int(pnl));
    position.insert("updated_ts", Value::Int(ts));
    let exit_order_id = payload
        .get("exit_order_id")
        .and_then(Json::as_str)
        .map_or(Value::Null, Value::from);
    position.insert("exit_order_id", exit_order_id);
    let answer = serde_json::json!({ "realized_pnl": pnl }).to_string();
    command(tables, ts, payload, "close_position", &answer);
    let notional = notional(tables, &intent_id)?;
    let counters = tables.row("position_counters", &[Value::Int(1)])?;
    add(counters, "open_count", -1);
    add(counters, "exposure", -notional);
    add(daily(tables, ts.div_euclid(DAY_MS)), "pnl", pnl);
    Ok(())
}

/// `breaker.tripped` and `breaker.reset`: the breaker moves and the audit grows.
fn breaker_moved(
    tables: &mut Tables,
    ts: i64,
    payload: &Json,
    to_state: &str,
) -> Result<(), String> {
    let breaker = tables.row("circuit_breaker", &[Value::Int(1)])?;
    let from_state = breaker["state"].clone();
    breaker.insert("state", Value::from(to_state));
    breaker.insert("updated_ts", Value::Int(ts));
    if to_state == "OPEN" {
        breaker.insert("reason", Value::Text(text(payload, "reason")?));
        add(breaker, "failure_count", 1);
    } else {
        breaker.insert("reason", Value::Null);
    }
    let kind = if to_state == "OPEN" {
        "trip_breaker"
    } else {
        "reset_breaker"
    };
    command(tables, ts, payload, kind, "null");
    let seq = tables.tables.get("breaker_audit").map_or(0, BTreeMap::len) as i64 + 1;
    tables.put(
        "breaker_audit",
        vec![Value::Int(seq)],
        row(&[
            ("seq", Value::Int(seq)),
            ("ts", Value::Int(ts)),
            ("from_state", from_state),
            ("to_state", Value::from(to_state)),
            ("reason", Value::Text(text(payload, "reason")?)),
            ("operator", Value::Text(text(payload, "operator")?)),
        ]),
    );
    Ok(())
}

fn checkpoint_written(tables: &mut Tables, ts: i64, payload: &Json) -> Result<(), String> {
    command(tables, ts, payload, "checkpoint", "null");
    let name = Value::Text(text(payload, "name")?);
    tables.put(
        "checkpoints",
        vec![name.clone()],
        row(&[
            ("name", name),
            ("value", Value::Text(text(payload, "value")?)),
            ("ts", Value::Int(ts)),
        ]),
    );
    Ok(())
}

/// An operator command applied with an id is recorded with its answer.
fn command(tables: &mut Tables, ts: i64, payload: &Json, kind: &str, answer: &str) {
    let Some(command_id) = payload.get("command_id").and_then(Json::as_str) else {
        return;
    };
    let command_id = Value::from(command_id);
    tables.put(
        "operator_commands",
        vec![command_id.clone()],
        row(&[
            ("command_id", command_id),
            ("kind", Value::from(kind)),
            ("answer", Value::from(answer)),
            ("ts", Value::Int(ts)),
        ]),
    );
}

fn reserved(tables: &mut Tables, ts: i64, run_id: &Value, payload: &Json) -> Result<(), String> {
    let side = Side::parse(&text(payload, "side")?).ok_or("side is neither buy nor sell")?;
    let signal = Signal {
        strategy: text(payload, "strategy")?,
        symbol: text(payload, "symbol")?,
        window_id: text(payload, "window_id")?,
        side,
        size: int(payload, "size")?,
        price: int(payload, "price")?,
        bar_t: int(payload, "bar_t")?,
        params: text(payload, "params")?,
    };
    let intent_id = Value::Text(text(payload, "intent_id")?);
    if field(payload, "resubmitted")?.as_bool() == Some(true) {
        let intent = tables.row("intents", std::slice::from_ref(&intent_id))?;
        intent.insert("status", Value::from("executing"));
        intent.insert("updated_ts", Value::Int(ts));
    } else {
        tables.put(
            "intents",
            vec![intent_id.clone()],
            row(&[
                ("intent_id", intent_id.clone()),
                ("run_id", run_id.clone()),
                ("strategy", Value::from(&signal.strategy)),
                ("window_id", Value::from(&signal.window_id)),
                ("symbol", Value::from(&signal.symbol)),
                ("side", Value::from(side.as_str())),
                ("size", Value::Int(signal.size)),
                ("price", Value::Int(signal.price)),
                ("bar_t", Value::Int(signal.bar_t)),
                ("status", Value::from("executing")),
                ("created_ts", Value::Int(ts)),
                ("updated_ts", Value::Int(ts)),
            ]),
        );
    }
    let entry_key = vec![
        Value::from(&signal.window_id),
        Value::from(&signal.strategy),
    ];
    tables.put(
        "window_entries",
        entry_key,
        row(&[
            ("window_id", Value::from(&signal.window_id)),
            ("strategy_id", Value::from(&signal.strategy)),
            ("intent_id", intent_id),
            ("ts", Value::Int(ts)),
        ]),
    );
    let counters = tables.row("position_counters", &[Value::Int(1)])?;
    add(counters, "open_count", 1);
    add(counters, "exposure", signal.size * signal.price);
    let key = vec![
        Value::from(&signal.strategy),
        Value::from(&signal.symbol),
        Value::from(&signal.params),
    ];
    tables.put(
        "last_signals",
        key,
        row(&[
            ("strategy", Value::from(&signal.strategy)),
            ("symbol", Value::from(&signal.symbol)),
            ("params", Value::from(&signal.params)),
            ("signal", Value::Text(signal.canonical())),
            ("bar_t", Value::Int(signal.bar_t)),
        ]),
    );
    Ok(())
}

fn fills(
    tables: &mut Tables,
    ts: i64,
    intent_id: &Value,
    order_id: &Value,
    payload: &Json,
) -> Result<(), String> {
    let side = tables.row("intents", std::slice::from_ref(intent_id))?["side"].clone();
    let sign = if side.as_text() == Some("sell") {
        -1
    } else {
        1
    };
    let fills = field(payload, "fills")?
        .as_array()
        .ok_or("fills is not a list")?;
    for fill in fills {
        let (qty, price) = (int(fill, "qty")?, int(fill, "price")?);
        let fill_id = Value::Text(text(fill, "trade_id")?);
        tables.put(
            "fills",
            vec![fill_id.clone()],
            row(&[
                ("fill_id", fill_id),
                ("order_id", order_id.clone()),
                ("qty", Value::Int(qty)),
                ("price", Value::Int(price)),
                ("ts", Value::Int(ts)),
            ]),
        );
        let position = tables.row("positions", std::slice::from_ref(intent_id))?;
        add(position, "qty", sign * qty);
        add(position, "cost", sign * qty * price);
        position.insert("updated_ts", Value::Int(ts));
    }
    Ok(())
}

fn notional(tables: &mut Tables, intent_id: &Value) -> Result<i64, String> {
    let intent = tables.row("intents", std::slice::from_ref(intent_id))?;
    Ok(intent["size"].as_int().unwrap_or_default() * intent["price"].as_int().unwrap_or_default())
}

fn release(tables: &mut Tables, intent_id: &Value) -> Result<(), String> {
    let notional = notional(tables, intent_id)?;
    tables.remove_where("window_entries", "intent_id", intent_id);
    let counters = tables.row("position_counters", &[Value::Int(1)])?;
    add(counters, "open_count", -1);
    add(counters, "exposure", -notional);
    Ok(())
}

fn daily(tables: &mut Tables, day: i64) -> &mut Row {
    tables
        .tables
        .entry("daily_limits")
        .or_default()
        .entry(vec![Value::Int(day)])
        .or_insert_with(|| {
            row(&[
                ("day", Value::Int(day)),
                ("pnl", Value::Int(0)),
                ("trade_count", Value::Int(0)),
            ])
        })
}
