//! The append-only event log (SPEC §2.12): every state change appends one event in the
//! same transaction, with a per-run sequence number drawn from `runs.last_seq` so that the
//! sequence is contiguous even when writers race (the counter row serialises them).

use crate::store::{StoreError, Transaction, Value};

/// Event categories. Recovery writes only `recovery` events, so a crash test can compare
/// event logs "equal except for recovery".
pub mod category {
    pub const RUN: &str = "run";
    pub const INTENT: &str = "intent";
    pub const ORDER: &str = "order";
    pub const POSITION: &str = "position";
    pub const BREAKER: &str = "breaker";
    pub const LIMITS: &str = "limits";
    pub const CHECKPOINT: &str = "checkpoint";
    pub const RECOVERY: &str = "recovery";
}

/// Appends one event and returns its seq. `payload` is serialised as canonical JSON
/// (serde_json objects are sorted maps, so keys come out sorted).
pub fn append(
    transaction: &mut (dyn Transaction + '_),
    run_id: &str,
    ts: i64,
    category: &str,
    kind: &str,
    payload: serde_json::Value,
) -> Result<i64, StoreError> {
    append_text(transaction, run_id, ts, category, kind, payload.to_string())
}

/// [`append`] with the payload already rendered. Only mutants render payloads themselves.
pub fn append_text(
    transaction: &mut (dyn Transaction + '_),
    run_id: &str,
    ts: i64,
    category: &str,
    kind: &str,
    payload: String,
) -> Result<i64, StoreError> {
    let seq = transaction.query_int(
        "UPDATE runs SET last_seq = last_seq + 1 WHERE run_id = $1 RETURNING last_seq",
        &[Value::from(run_id)],
    )?;
    transaction.execute(
        "INSERT INTO events (run_id, seq, ts, category, type, payload) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            Value::from(run_id),
            Value::Int(seq),
            Value::Int(ts),
            Value::from(category),
            Value::from(kind),
            Value::Text(payload),
        ],
    )?;
    Ok(seq)
}
