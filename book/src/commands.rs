//! Operator commands (close, trip, reset, checkpoint) arrive at least once: a driver that
//! cannot tell whether one took effect sends it again with the same id. The book records
//! each applied id with its answer in the same transaction as the command's work, and a
//! repeat applies nothing and gets the first answer back. A command without an id is
//! applied every time it arrives.

use crate::store::{StoreError, Transaction, Value};

/// The answer the command with this id got, if it was applied.
pub(crate) fn applied(
    transaction: &mut (dyn Transaction + '_),
    command_id: Option<&str>,
) -> Result<Option<String>, StoreError> {
    let Some(command_id) = command_id else {
        return Ok(None);
    };
    let row = transaction.query_optional(
        "SELECT answer FROM operator_commands WHERE command_id = $1",
        &[Value::from(command_id)],
    )?;
    Ok(row
        .and_then(|row| row.into_iter().next())
        .and_then(|answer| answer.as_text().map(str::to_owned)))
}

/// Records that the command with this id was applied, with its answer.
pub(crate) fn record(
    transaction: &mut (dyn Transaction + '_),
    command_id: Option<&str>,
    kind: &str,
    answer: &str,
    now: i64,
) -> Result<(), StoreError> {
    let Some(command_id) = command_id else {
        return Ok(());
    };
    transaction.execute(
        "INSERT INTO operator_commands (command_id, kind, answer, ts) VALUES ($1, $2, $3, $4)",
        &[
            Value::from(command_id),
            Value::from(kind),
            Value::from(answer),
            Value::Int(now),
        ],
    )?;
    Ok(())
}

/// `payload` with the command's id added, when it has one.
pub(crate) fn with_id(
    mut payload: serde_json::Value,
    command_id: Option<&str>,
) -> serde_json::Value {
    if let (Some(command_id), Some(object)) = (command_id, payload.as_object_mut()) {
        object.insert("command_id".to_owned(), command_id.into());
    }
    payload
}
