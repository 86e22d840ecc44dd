//! The canonical dump: every table of the book, rows sorted by primary key (compared as
//! values, not by any database collation), values rendered the same way on every backend.
//! Its sha256 is the book's digest: same seed, same digest.

use std::fmt::Write as _;

use book::schema::{TableSpec, TABLES};
use book::store::{Isolation, Store, StoreError, Value};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDump {
    pub name: String,
    pub key: Vec<String>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl TableDump {
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|column| column == name)
    }

    /// The value of `column` in `row`; panics only on a misspelt column name (a bug in the
    /// caller, not in the data).
    pub fn get<'row>(&self, row: &'row [Value], column: &str) -> &'row Value {
        let index = self
            .column(column)
            .unwrap_or_else(|| panic!("table {} has no column {column}", self.name));
        &row[index]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    pub tables: Vec<TableDump>,
}

/// Reads every table of the book in one transaction.
pub fn dump(store: &mut dyn Store) -> Result<Dump, StoreError> {
    let mut transaction = store.transaction(Isolation::Read)?;
    let mut tables = Vec::with_capacity(TABLES.len());
    for spec in TABLES {
        tables.push(dump_table(transaction.as_mut(), spec)?);
    }
    // Read-only: nothing to commit, and dropping rolls back.
    drop(transaction);
    Ok(Dump { tables })
}

fn dump_table(
    transaction: &mut (dyn book::store::Transaction + '_),
    spec: &TableSpec,
) -> Result<TableDump, StoreError> {
    let found = transaction.query(&format!("SELECT * FROM {}", spec.name), &[])?;
    let kept: Vec<usize> = (0..found.columns.len())
        .filter(|index| {
            !spec
                .excluded
                .iter()
                .any(|(column, _)| *column == found.columns[*index])
        })
        .collect();
    let columns: Vec<String> = kept
        .iter()
        .map(|index| found.columns[*index].clone())
        .collect();
    let key_indexes = spec
        .key
        .iter()
        .map(|key| {
            columns
                .iter()
                .position(|column| column == key)
                .ok_or_else(|| StoreError::Data {
                    message: format!("table {} has no key column {key}", spec.name),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut rows: Vec<Vec<Value>> = found
        .rows
        .into_iter()
        .map(|row| kept.iter().map(|index| row[*index].clone()).collect())
        .collect();
    rows.sort_by(|left, right| {
        let left_key = key_indexes.iter().map(|index| &left[*index]);
        let right_key = key_indexes.iter().map(|index| &right[*index]);
        left_key.cmp(right_key)
    });
    Ok(TableDump {
        name: spec.name.to_owned(),
        key: spec.key.iter().map(|key| (*key).to_owned()).collect(),
        columns,
        rows,
    })
}

/// One value as the dump shows it: integers as digits, text as a JSON string, NULL.
pub fn render_value(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_owned(),
        Value::Int(integer) => integer.to_string(),
        Value::Text(text) => serde_json::Value::String(text.clone()).to_string(),
    }
}

fn render_row(row: &[Value]) -> String {
    row.iter().map(render_value).collect::<Vec<_>>().join(" | ")
}

impl Dump {
    pub fn table(&self, name: &str) -> &TableDump {
        self.tables
            .iter()
            .find(|table| table.name == name)
            .unwrap_or_else(|| panic!("the dump has no table {name}"))
    }

    /// The canonical text: a header, then per table its key, its columns and its rows.
    pub fn render(&self) -> String {
        let mut text = String::from("# bookproof canonical dump v1\n");
        for table in &self.tables {
            let _ = writeln!(
                text,
                "\n## {} ({} rows, key {})",
                table.name,
                table.rows.len(),
                table.key.join(", ")
            );
            let _ = writeln!(text, "{}", table.columns.join(" | "));
            for row in &table.rows {
                let _ = writeln!(text, "{}", render_row(row));
            }
        }
        text
    }

    /// sha256 of [`Dump::render`], hex.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.render().as_bytes()))
    }

    /// The first difference between two dumps, naming the table and the row, or `None`.
    pub fn first_difference(&self, other: &Dump) -> Option<String> {
        for (left, right) in self.tables.iter().zip(&other.tables) {
            if left.name != right.name {
                return Some(format!(
                    "table order differs: {} vs {}",
                    left.name, right.name
                ));
            }
            if left.columns != right.columns {
                return Some(format!(
                    "table {}: columns differ: [{}] vs [{}]",
                    left.name,
                    left.columns.join(", "),
                    right.columns.join(", ")
                ));
            }
            for index in 0..left.rows.len().max(right.rows.len()) {
                let show = |row: Option<&Vec<Value>>| {
                    row.map_or("(no row)".to_owned(), |row| render_row(row))
                };
                let (left_row, right_row) = (left.rows.get(index), right.rows.get(index));
                if left_row != right_row {
                    return Some(format!(
                        "table {}, row {}:\n  left:  {}\n  right: {}",
                        left.name,
                        index + 1,
                        show(left_row),
                        show(right_row)
                    ));
                }
            }
        }
        if self.tables.len() != other.tables.len() {
            return Some(format!(
                "table count differs: {} vs {}",
                self.tables.len(),
                other.tables.len()
            ));
        }
        None
    }
}
