//! # Gate: persist
//!
//! Given a fresh database on each backend,
//! when the book writes every table, is closed and reopened (also when every piece of its
//! state is non-trivial: the breaker tripped, failures counted, a position open, pnl
//! realised, mid-day), receives the same signal again, and meets a schema that is newer
//! than it or that drifted,
//! then every table holds rows and every value reads back as written (the extremes of i64
//! and text that trips quoting included), reopening changes nothing, the same signal is one
//! intent and one order however often it comes, and a database the book does not
//! understand is refused with a clear error and left untouched; so is a run reopened with
//! another seed, dataset, config or mode (every intent id would change), while a new run
//! id starts a new run in the same database.
//!
//! Mutants: an intent id that mixes in a per-open counter, and a create that is not
//! idempotent (each caught by `same_intent`); a reopen that takes any identity for the run
//! (caught by `run_identity`).

use book::migrate;
use book::store::{Isolation, Value};
use harness::protocol::{IntentStatus, Outcome, Problem, ProblemKind, Side, Signal, TripReason};
use harness::{ensure, Case, Check, Failure, Phase, Subject};

harness::gate_tests! {
    gate: "persist";
    checks: [
        every_table_is_written,
        values_read_back_as_written,
        integer_extremes_round_trip,
        state_survives_close_and_reopen,
        a_busy_book_survives_reopening,
        same_signal_twice_is_one_intent,
        same_signal_after_reopen_is_one_intent,
        fresh_database_gets_every_migration,
        migrations_rerun_is_a_no_op,
                newer_schema_is_refused,
        checksum_drift_is_refused,
        a_run_reopens_only_as_itself,
        every_migration_steps_down,
    ];
    mutants: [
        intent_id_with_open_counter_is_caught =>
            (IntentIdWithOpenCounter, same_signal_after_reopen_is_one_intent, "same_intent"),
                non_idempotent_create_is_caught =>
            (NonIdempotentCreate, same_signal_twice_is_one_intent, "same_intent"),
        reopens_as_any_run_is_caught =>
            (ReopensAsAnyRun, a_run_reopens_only_as_itself, "run_identity"),
    ];
    differential: [every_table_written];
}

const ROUND_TRIP: &str = "round_trip";
const REOPEN: &str = "reopen_changes_nothing";
const SAME_INTENT: &str = "same_intent";
const MIGRATIONS: &str = "migrations";

/// Text that trips naive quoting and encoding.
const AWKWARD_TEXT: &str = "naïve 'single' \"double\" back\\slash\nnew line ✓ $1 ?1";

fn signal(window_id: &str, bar_t: i64) -> Signal {
    Signal {
        strategy: "momentum".to_owned(),
        symbol: "BTC-USD".to_owned(),
        window_id: window_id.to_owned(),
        side: Side::Buy,
        size: 3,
        price: 4_200_000,
        bar_t,
        params: "fast=5,slow=20".to_owned(),
    }
}

fn placed_intent(outcome: Outcome) -> Result<String, Failure> {
    match outcome {
        Outcome::Placed { intent_id, .. } => Ok(intent_id),
        other => Err(Failure::new(
            ROUND_TRIP,
            format!("a fresh signal must be placed, got {other:?}"),
        )),
    }
}

/// Drives the book through every table: two placements (one closed at a profit), a
/// breaker trip and reset, a day roll, a checkpoint; operator commands carry ids.
fn write_every_table(case: &Case) -> Result<Vec<String>, Failure> {
    let mut book = case.open()?;
    let mut placed = Vec::new();
    for (window_id, bar_t) in [("w-0001", 60_000), ("w-0002", 120_000)] {
        case.clock.advance(1_000);
        placed.push(placed_intent(book.submit(&signal(window_id, bar_t))?)?);
    }
    case.clock.advance(1_000);
    book.close_position(&placed[0], 4_250_000, Some("close-1"))?;
    book.trip_breaker(TripReason::ManualTrip, "alice", Some("trip-1"))?;
    book.reset_breaker("alice", "drill over", Some("reset-1"))?;
    case.clock.advance(book::clock::DAY_MS);
    book.roll_day()?;
    book.checkpoint("last_bar", AWKWARD_TEXT, Some("checkpoint-1"))?;
    Ok(placed)
}

/// The operations of the differential check: every backend must dump them
/// byte-identically.
fn every_table_written(case: &Case) -> Check {
    write_every_table(case)?;
    Ok(())
}

/// Every table holds rows, and the first intent reads back column by column as the
/// signal that made it.
fn every_table_is_written(case: &Case) -> Check {
    let placed = write_every_table(case)?;
    let dump = case.dump()?;
    for table in &dump.tables {
        ensure!(
            ROUND_TRIP,
            !table.rows.is_empty(),
            "table {} is empty after writing every table",
            table.name
        );
    }
    let intents = dump.table("intents");
    let first = intents
        .rows
        .iter()
        .find(|row| intents.get(row, "intent_id").as_text() == Some(placed[0].as_str()))
        .ok_or_else(|| Failure::new(ROUND_TRIP, format!("intent {} was not stored", placed[0])))?;
    let expected = signal("w-0001", 60_000);
    for (column, value) in [
        ("strategy", Value::from(&expected.strategy)),
        ("symbol", Value::from(&expected.symbol)),
        ("window_id", Value::from(&expected.window_id)),
        ("side", Value::from("buy")),
        ("size", Value::Int(expected.size)),
        ("price", Value::Int(expected.price)),
        ("bar_t", Value::Int(expected.bar_t)),
        ("status", Value::from("completed")),
    ] {
        ensure!(
            ROUND_TRIP,
            intents.get(first, column) == &value,
            "intents.{column} reads back {:?}, wrote {value:?}",
            intents.get(first, column)
        );
    }
    case.check_invariants(Phase::Running)
}

/// Computed money, text that trips quoting, and the audit's operators read back exactly.
fn values_read_back_as_written(case: &Case) -> Check {
    write_every_table(case)?;
    let dump = case.dump()?;
    let positions = dump.table("positions");
    let closed = positions
        .rows
        .iter()
        .find(|row| positions.get(row, "status").as_text() == Some("closed"))
        .ok_or_else(|| Failure::new(ROUND_TRIP, "no closed position"))?;
    // 3 units bought at 4_200_000 and closed at 4_250_000.
    ensure!(
        ROUND_TRIP,
        positions.get(closed, "realized_pnl") == &Value::Int(150_000),
        "realized pnl reads back {:?}",
        positions.get(closed, "realized_pnl")
    );
    let checkpoints = dump.table("checkpoints");
    let last_bar = checkpoints
        .rows
        .iter()
        .find(|row| checkpoints.get(row, "name") == &Value::from("last_bar"))
        .map(|row| checkpoints.get(row, "value").clone());
    ensure!(
        ROUND_TRIP,
        last_bar == Some(Value::from(AWKWARD_TEXT)),
        "checkpoint text reads back {last_bar:?}"
    );
    let audit = dump.table("breaker_audit");
    let operators: Vec<_> = audit
        .rows
        .iter()
        .map(|row| audit.get(row, "operator").clone())
        .collect();
    ensure!(
        ROUND_TRIP,
        operators == vec![Value::from("alice"), Value::from("alice")],
        "breaker audit operators read back {operators:?}"
    );
    Ok(())
}

/// The extremes of the integer range survive every backend, read back on a new
/// connection.
fn integer_extremes_round_trip(case: &Case) -> Check {
    drop(case.open()?);
    let extremes = [(i64::MIN, i64::MIN), (-1, -1), (i64::MAX, i64::MAX)];
    let mut store = case.connect()?;
    let mut transaction = store.transaction(Isolation::Write)?;
    for (day, pnl) in extremes {
        transaction.execute(
            "INSERT INTO daily_limits (day, pnl, trade_count) VALUES ($1, $2, 0)",
            &[Value::Int(day), Value::Int(pnl)],
        )?;
    }
    transaction.commit()?;
    drop(store);
    let limits = case.dump()?.table("daily_limits").clone();
    for (day, pnl) in extremes {
        let row = limits
            .rows
            .iter()
            .find(|row| limits.get(row, "day") == &Value::Int(day));
        let read = row.map(|row| limits.get(row, "pnl").clone());
        ensure!(
            ROUND_TRIP,
            read == Some(Value::Int(pnl)),
            "daily_limits.pnl wrote {pnl}, read {read:?}"
        );
    }
    Ok(())
}

/// Opens and closes the book again and requires the dump unchanged, byte for byte.
fn reopening_changes_nothing(case: &Case) -> Check {
    let before = case.dump()?;
    drop(case.open()?);
    let after = case.dump()?;
    if let Some(difference) = before.first_difference(&after) {
        return Err(Failure::new(
            REOPEN,
            format!("the dump changed across close and reopen: {difference}"),
        ));
    }
    ensure!(
        REOPEN,
        before.digest() == after.digest(),
        "digests differ although the dumps are equal"
    );
    Ok(())
}

fn state_survives_close_and_reopen(case: &Case) -> Check {
    write_every_table(case)?;
    reopening_changes_nothing(case)?;
    if let Some(path) = case.database.sqlite_path() {
        let integrity: String = rusqlite::Connection::open(path)
            .and_then(|connection| {
                connection.query_row("PRAGMA integrity_check", [], |row| row.get(0))
            })
            .map_err(Failure::harness)?;
        ensure!(
            REOPEN,
            integrity == "ok",
            "PRAGMA integrity_check says {integrity}"
        );
        check_with_sqlite3_shell(path)?;
    }
    case.check_invariants(Phase::Running)
}

/// Every piece of state non-trivial at once: the breaker tripped with failures counted, a
/// position open (counters held), pnl realised today, mid-day; reopening changes nothing,
/// and the reopened book still refuses to place while the breaker is open.
fn a_busy_book_survives_reopening(case: &Case) -> Check {
    let mut book = case.open()?;
    case.clock.advance(book::clock::DAY_MS / 2 + 1_234);
    let losing = placed_intent(book.submit(&signal("w-0001", 60_000))?)?;
    placed_intent(book.submit(&signal("w-0002", 120_000))?)?;
    book.close_position(&losing, 4_100_000, Some("close-1"))?;
    book.trip_breaker(TripReason::ManualTrip, "alice", Some("trip-1"))?;
    book.trip_breaker(TripReason::PositionTrackingFailed, "book", Some("trip-2"))?;
    let state = book.state()?;
    drop(book);
    let breaker = state
        .breaker
        .clone()
        .unwrap_or(harness::protocol::BreakerState {
            open: false,
            reason: None,
            failure_count: 0,
        });
    ensure!(
        REOPEN,
        breaker.open && breaker.failure_count == 2,
        "the setup did not trip the breaker twice: {breaker:?}"
    );
    ensure!(
        REOPEN,
        state.counters.open_count == 1,
        "the setup did not leave one position open: {:?}",
        state.counters
    );
    ensure!(
        REOPEN,
        state.daily.iter().any(|daily| daily.pnl != 0),
        "the setup realised no pnl: {:?}",
        state.daily
    );
    reopening_changes_nothing(case)?;
    let mut book = case.open()?;
    ensure!(
        REOPEN,
        book.state()? == state,
        "the reopened book reports another state"
    );
    let refused = book.submit(&signal("w-0003", 180_000));
    ensure!(
        REOPEN,
        matches!(
            &refused,
            Err(Problem {
                kind: ProblemKind::BreakerOpen,
                ..
            })
        ),
        "the reopened book placed while its breaker was open: {refused:?}"
    );
    case.check_invariants(Phase::Running)
}

/// The stock `sqlite3` shell must open the book's file: it is an ordinary SQLite database.
fn check_with_sqlite3_shell(path: &std::path::Path) -> Check {
    let output = match std::process::Command::new("sqlite3")
        .arg(path)
        .arg("PRAGMA integrity_check; SELECT COUNT(*) FROM intents;")
        .output()
    {
        Ok(output) => output,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            println!("note: no sqlite3 shell on PATH; checked the file through rusqlite only");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        REOPEN,
        output.status.success(),
        "sqlite3 failed on the book's file: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        REOPEN,
        stdout == "ok\n2\n",
        "sqlite3 read the book's file as {stdout:?}, expected integrity ok and 2 intents"
    );
    Ok(())
}

/// Submits `signal` a second time and requires the first intent back with nothing sent.
fn submit_again(case: &Case, book: &mut dyn Subject, signal: &Signal, first: &str) -> Check {
    let again = book.submit(signal);
    let same = matches!(&again, Ok(Outcome::Existing { intent_id, status: IntentStatus::Completed }) if intent_id == first);
    ensure!(
        SAME_INTENT,
        same,
        "submitting the same signal again gave {again:?}: not the same intent {first}"
    );
    let placements = case.venue.placements();
    ensure!(
        SAME_INTENT,
        placements.len() == 1,
        "the venue received {} placements for one signal: a second order ({placements:?})",
        placements.len()
    );
    let orders = case.dump()?.table("orders").rows.len();
    ensure!(
        SAME_INTENT,
        orders == 1,
        "the book records {orders} orders for one signal: a second order"
    );
    Ok(())
}

fn same_signal_twice_is_one_intent(case: &Case) -> Check {
    let mut book = case.open()?;
    let signal = signal("w-0001", 60_000);
    let outcome = book.submit(&signal)?;
    let first = placed_intent(outcome.clone())?;
    let placements = case.venue.placements();
    ensure!(
        SAME_INTENT,
        matches!(&outcome, Outcome::Placed { client_order_id, .. } if placements == [client_order_id.clone()]),
        "the book reported {outcome:?} but the venue received {placements:?}"
    );
    case.clock.advance(1_000);
    submit_again(case, book.as_mut(), &signal, &first)?;
    case.check_invariants(Phase::Running)
}

fn same_signal_after_reopen_is_one_intent(case: &Case) -> Check {
    let signal = signal("w-0001", 60_000);
    let first = placed_intent(case.open()?.submit(&signal)?)?;
    for _restart in 0..3 {
        case.clock.advance(1_000);
        let mut book = case.open()?;
        submit_again(case, book.as_mut(), &signal, &first)?;
    }
    case.check_invariants(Phase::Running)
}

fn fresh_database_gets_every_migration(case: &Case) -> Check {
    drop(case.open()?);
    let applied = migrate::applied(case.connect()?.as_mut())?;
    let known = migrate::migrations(case.backend());
    ensure!(
        MIGRATIONS,
        applied.len() == known.len(),
        "{} migrations applied, {} known",
        applied.len(),
        known.len()
    );
    for (row, migration) in applied.iter().zip(known) {
        ensure!(
            MIGRATIONS,
            row.version == migration.version && row.name == migration.name,
            "applied {row:?}, expected version {} ({})",
            migration.version,
            migration.name
        );
        ensure!(
            MIGRATIONS,
            row.checksum == migration.checksum(),
            "migration {} recorded checksum {}, embeds {}",
            row.version,
            row.checksum,
            migration.checksum()
        );
    }
    Ok(())
}

fn migrations_rerun_is_a_no_op(case: &Case) -> Check {
    write_every_table(case)?;
    let before = case.dump()?;
    let report = migrate::migrate(case.connect()?.as_mut())?;
    ensure!(
        MIGRATIONS,
        report.applied_versions.is_empty(),
        "a re-run applied {:?}",
        report.applied_versions
    );
    let after = case.dump()?;
    ensure!(
        MIGRATIONS,
        before == after,
        "a migration re-run changed the book: {:?}",
        before.first_difference(&after)
    );
    Ok(())
}

/// Refusing must not write: the dump after the refused open equals the one before it.
fn expect_refused(case: &Case, wanted: ProblemKind, words: &str) -> Check {
    let before = case.dump()?;
    match case.open() {
        Err(problem) if problem.kind == wanted => {
            ensure!(
                MIGRATIONS,
                problem.message.contains(words),
                "the refusal does not say {words:?}: {problem}"
            );
        }
        Err(other) => {
            return Err(Failure::new(
                MIGRATIONS,
                format!("refused with the wrong problem: {other:?}"),
            ))
        }
        Ok(_) => {
            return Err(Failure::new(
                MIGRATIONS,
                "the book opened a database it must refuse",
            ))
        }
    }
    let after = case.dump()?;
    ensure!(
        MIGRATIONS,
        before == after,
        "the refused open changed the database: {:?}",
        before.first_difference(&after)
    );
    Ok(())
}

fn newer_schema_is_refused(case: &Case) -> Check {
    write_every_table(case)?;
    let mut store = case.connect()?;
    let mut transaction = store.transaction(Isolation::Write)?;
    transaction.execute(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, 'from_the_future', 'unknown')",
        &[Value::Int(migrate::latest_version(case.backend()) + 1)],
    )?;
    transaction.commit()?;
    drop(store);
    expect_refused(
        case,
        ProblemKind::SchemaAhead,
        "newer than this build supports",
    )
}

/// The same run id with another identity is refused, the database unchanged; a new run id
/// starts a new run beside it.
fn a_run_reopens_only_as_itself(case: &Case) -> Check {
    write_every_table(case)?;
    let before = case.dump()?;
    let changes: [(&str, fn(&mut book::RunSpec)); 4] = [
        ("seed", |run| run.seed ^= 1),
        ("dataset", |run| run.dataset_sha.push_str("-other")),
        ("config", |run| run.config_sha.push_str("-other")),
        ("mode", |run| {
            run.mode = match run.mode {
                book::Mode::Live => book::Mode::Paper,
                book::Mode::Paper => book::Mode::Live,
            }
        }),
    ];
    for (field, change) in changes {
        let mut options = case.options();
        change(&mut options.run);
        let opened = case.open_with(options).map(drop);
        ensure!(
            "run_identity",
            matches!(&opened, Err(problem) if problem.kind == ProblemKind::WrongRun && problem.message.contains(&format!("started with {field} "))),
            "reopened with another {field}: {opened:?}"
        );
    }
    let after = case.dump()?;
    ensure!(
        "run_identity",
        before == after,
        "a refused reopen changed the database: {:?}",
        before.first_difference(&after)
    );
    let mut options = case.options();
    options.run.run_id.push_str("-next");
    options.run.seed ^= 1;
    let next = case.open_with(options).map(drop);
    ensure!(
        "run_identity",
        next.is_ok(),
        "a new run id on the same database: {next:?}"
    );
    Ok(())
}

fn checksum_drift_is_refused(case: &Case) -> Check {
    write_every_table(case)?;
    let mut store = case.connect()?;
    let mut transaction = store.transaction(Isolation::Write)?;
    let changed = transaction.execute(
        "UPDATE schema_migrations SET checksum = 'edited-after-apply' WHERE version = 1",
        &[],
    )?;
    ensure!(MIGRATIONS, changed == 1, "no migration 1 to tamper with");
    transaction.commit()?;
    drop(store);
    expect_refused(
        case,
        ProblemKind::ChecksumDrift,
        "migration 1 (core) was applied with checksum",
    )
}

fn every_migration_steps_down(case: &Case) -> Check {
    write_every_table(case)?;
    let mut store = case.connect()?;
    let latest = migrate::latest_version(case.backend());
    for target in (0..latest).rev() {
        let reverted = migrate::migrate_down(store.as_mut(), target)?;
        ensure!(
            MIGRATIONS,
            reverted == vec![target + 1],
            "stepping down to {target} reverted {reverted:?}"
        );
        let applied = migrate::applied(store.as_mut())?;
        ensure!(
            MIGRATIONS,
            applied.last().map_or(0, |row| row.version) == target,
            "after stepping down to {target}: {applied:?}"
        );
    }
    // With every down step run, the book's tables are gone.
    let mut transaction = store.transaction(Isolation::Write)?;
    let gone = transaction.query("SELECT COUNT(*) FROM intents", &[]);
    ensure!(
        MIGRATIONS,
        gone.is_err(),
        "table intents still exists after every down step"
    );
    drop(transaction);
    drop(store);
    // And the way back up gives a working, empty book.
    let mut book = case.open()?;
    placed_intent(book.submit(&signal("w-0001", 60_000))?)?;
    case.check_invariants(Phase::Running)
}
