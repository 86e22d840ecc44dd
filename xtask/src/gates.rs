//! The gate registry: names, test targets, and what each proves.

pub struct Gate {
    pub name: &'static str,
    pub summary: &'static str,

    /// False for gates that involve no database (`config`): they run once, on the
    /// embedded backend, whatever `--backend` says.
    pub database: bool,
    /// The gate also runs loom models (`race`): built under `--cfg loom` and reported as
    /// their own row.
    pub models: bool,
}

pub const GATES: &[Gate] = &[
    Gate {
        name: "persist",
        summary: "every table round-trips; close/reopen is byte-identical; idempotent intents; migrations refuse newer and drifted schemas",
        database: true,
        models: false,
    },
    Gate {
        name: "config",
        summary: "config is a pure, validated function of the environment; secrets never print",
        database: false,
        models: false,
    },
    Gate {
        name: "determinism",
        summary: "same seed, identical book; pinned seeds match their snapshots; SQLite equals PostgreSQL",
        database: true,
        models: false,
    },
    Gate {
        name: "race",
                summary: "100 concurrent entries into one window: one wins, one order; limits hold under contention; nothing placed after a trip returns; forced interleavings; loom models of the latch",
        database: true,
        models: true,
    },
    Gate {
        name: "failure-cascade",
                summary: "venue ok + recording failed -> Unknown, breaker open, nothing more placed, none before recovery; breaker fails closed; every store fault",
        database: true,
        models: false,
    },
    Gate {
        name: "crash",
        summary: "a crash at every crash site (in process), then restart and recovery: no loss, no duplicate order, the uninterrupted book",
        database: true,
        models: false,
    },
    Gate {
        name: "verify-before-act",
                summary: "blindness trips the breaker, orphans only log, rate-limit cache rules and Retry-After, a 500 is never \"no positions\", paper skips the venue; a stop-loss closes at the venue",
        database: true,
        models: false,
    },
];

/// The test target of a gate (`failure-cascade` -> `failure_cascade`).
pub fn target(name: &str) -> String {
    name.replace('-', "_")
}

/// Resolves names to gates, or says exactly what is wrong.
pub fn resolve(names: &[String]) -> Result<Vec<&'static Gate>, String> {
    if names.is_empty() {
        return Ok(GATES.iter().collect());
    }
    let known: Vec<&str> = GATES.iter().map(|gate| gate.name).collect();
    let mut chosen = Vec::new();
    for name in names {
        match GATES.iter().find(|gate| gate.name == name) {
            Some(gate) => chosen.push(gate),
            None => {
                return Err(format!(
                    "unknown gate `{name}`; known gates: {}",
                    known.join(", ")
                ))
            }
        }
    }
    Ok(chosen)
}
