//! The logical schema as data: every table and the key that orders its rows. A canonical
//! dump walks this list, so both backends render the same text for the same state.

/// A table of the book and the columns of its primary key, in order.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    pub name: &'static str,
    pub key: &'static [&'static str],
    /// Columns left out of canonical dumps, each with the reason. Empty for every table
    /// but `schema_migrations`.
    pub excluded: &'static [(&'static str, &'static str)],
}

pub const TABLES: &[TableSpec] = &[
    TableSpec {
        name: "schema_migrations",
        key: &["version"],
        excluded: &[(
            "checksum",
            "a checksum of backend-specific DDL: differs between SQLite and PostgreSQL by design",
        )],
    },
    TableSpec {
        name: "runs",
        key: &["run_id"],
        excluded: &[],
    },
    TableSpec {
        name: "events",
        key: &["run_id", "seq"],
        excluded: &[],
    },
    TableSpec {
        name: "intents",
        key: &["intent_id"],
        excluded: &[],
    },
    TableSpec {
        name: "orders",
        key: &["order_id"],
        excluded: &[],
    },
    TableSpec {
        name: "fills",
        key: &["fill_id"],
        excluded: &[],
    },
    TableSpec {
        name: "positions",
        key: &["intent_id"],
        excluded: &[],
    },
    TableSpec {
        name: "window_entries",
        key: &["window_id", "strategy_id"],
        excluded: &[],
    },
    TableSpec {
        name: "position_counters",
        key: &["id"],
        excluded: &[],
    },
    TableSpec {
        name: "circuit_breaker",
        key: &["id"],
        excluded: &[],
    },
    TableSpec {
        name: "breaker_audit",
        key: &["seq"],
        excluded: &[],
    },
    TableSpec {
        name: "daily_limits",
        key: &["day"],
        excluded: &[],
    },
    TableSpec {
        name: "last_signals",
        key: &["strategy", "symbol", "params"],
        excluded: &[],
    },
    TableSpec {
        name: "checkpoints",
        key: &["name"],
        excluded: &[],
    },
    TableSpec {
        name: "operator_commands",
        key: &["command_id"],
        excluded: &[],
    },
];
