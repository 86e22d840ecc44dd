//! # Gate: crash
//!
//! Given seeded scenarios (swept over `--seeds N`) or one of the incidents below, and the
//! simulated venue, whose state survives the book,
//! when the book is crashed at every crash site the uninterrupted run passes (before and
//! after every commit, right after each venue call), with time passing while it is down
//! for some sites (across a day boundary for some), restarted on the same database,
//! recovered (crashing a second time inside the recovery, at its first sites), and every
//! crashed step delivered again (operator commands at least once, with their command ids),
//! then at every restart, every recovery and every later step the book agrees with the
//! venue and with the independent model (one of the states a correct book can be in), every
//! invariant holds, the venue is never asked to place an order it holds and has shown, and,
//! where the venue's answers cannot have changed, the final book equals the uninterrupted
//! run's (tables byte-identical but `runs.last_seq`; events equal once recovery's are set
//! aside).
//!
//! The process checks do the same to a real `book` process: aborted at each crash point,
//! and SIGKILLed right after each venue reply without any cooperation from the book. And
//! on PostgreSQL the database server itself is SIGKILLed under the running book at its
//! commits and restarted (fsync on): the book fails cleanly, reconnects and recovers
//! (`--crash-mode server`; `--crash-mode` runs one mode's cases only).
//!
//! Mutants, each caught by the named check: recovery that re-places without asking the
//! venue (in process and in a `book` process), a daily trade counter kept in memory, a
//! confirm split into two transactions, a checkpoint written before the work it covers, a
//! close that is not idempotent, a venue error read as "not found" in recovery, a partial
//! fill recorded as filled, a recovery that rejects without asking, a duplicate rejection
//! treated as a failure, and a close that stops fill syncing.

use harness::crash::{self, CrashCase, CrashMode, Uninterrupted};
use harness::protocol::Side;
use harness::runner::{self, Run};
use harness::scenario::{self, signal, Scenario, Step};
use harness::sweep::Part;
use harness::venue::{Fault, LookupError};
use std::sync::Arc;

use harness::database::postgres::{PostgresDatabase, Provider, Server};
use harness::database::Database;
use harness::faults::{FaultCase, FaultSite, StoreFault, StoreFaultPlan, StoreOp};
use harness::{check, ensure, Case, Check, Failure, Seed, Settings};

harness::gate_tests! {
    gate: "crash";
    checks: [
                every_crash_site_of_seeded_scenarios_part_1_of_2,
        every_crash_site_of_seeded_scenarios_part_2_of_2,
        crash_after_the_venue_accepted_before_the_confirm,
        timeout_then_retry_with_the_same_client_order_id,
        venue_reject_then_crash,
        warm_restart_with_an_open_position,
        fills_replayed_by_the_venue_around_a_restart,
        breaker_still_open_after_restart,
        daily_loss_limit_still_in_force_after_restart,
        a_look_up_fails_during_recovery,
        an_order_that_appears_late,
        a_close_delivered_again_after_a_crash,
        a_partly_filled_order_closed_then_synced,
        a_day_boundary_crossed_while_down,
        book_process_aborted_at_every_crash_site,
                book_process_killed_after_every_venue_reply,
        the_database_server_crashes_under_the_book,
    ];
    mutants: [
        blind_replace_on_recovery_is_caught =>
            (BlindReplaceOnRecovery, timeout_then_retry_with_the_same_client_order_id, "one_venue_order_per_client_order_id"),
        daily_counter_in_memory_is_caught =>
            (DailyCounterInMemory, warm_restart_with_an_open_position, "daily_trades_match_orders"),
        confirm_split_in_two_is_caught =>
            (ConfirmSplitInTwo, crash_after_the_venue_accepted_before_the_confirm, "order_only_for_completed_intent"),
        checkpoint_before_work_is_caught =>
            (CheckpointBeforeWork, breaker_still_open_after_restart, "model_state"),
        blind_replace_in_a_book_process_is_caught =>
            (BlindReplaceOnRecovery, book_process_aborted_at_every_crash_site, "one_venue_order_per_client_order_id"),
        close_stops_fill_sync_in_a_book_process_is_caught =>
            (CloseStopsFillSync, book_process_killed_after_every_venue_reply, "model_state"),
        non_idempotent_close_is_caught =>
            (NonIdempotentClose, a_close_delivered_again_after_a_crash, "model_state"),
        venue_error_read_as_not_found_is_caught =>
            (VenueErrorReadAsNotFound, a_look_up_fails_during_recovery, "venue_orders_belong_to_completed_intents"),
        partial_fill_recorded_as_filled_is_caught =>
            (PartialFillRecordedAsFilled, a_partly_filled_order_closed_then_synced, "order_status_matches_fills"),
        recovery_rejects_without_asking_is_caught =>
            (RecoveryRejectsWithoutAsking, timeout_then_retry_with_the_same_client_order_id, "venue_orders_belong_to_completed_intents"),
        duplicate_rejection_treated_as_failure_is_caught =>
            (DuplicateRejectionTreatedAsFailure, an_order_that_appears_late, "venue_orders_belong_to_completed_intents"),
        close_stops_fill_sync_is_caught =>
            (CloseStopsFillSync, a_partly_filled_order_closed_then_synced, "model_state"),
    ];
}

/// Crash scenarios are shorter than the determinism gate's: every site is a full rerun.
const STEPS_DEFAULT: usize = 24;
/// Seeds the seeded sweep runs unless `--seeds` says otherwise.
const SEEDS_DEFAULT: u64 = 2;

/// Crashes `scenario` at every site of `mode` (or the selected ones), each followed by
/// second crashes inside its recovery, and holds every run against every oracle.
fn check_sites(case: &Case, seed: Seed, scenario: &Scenario, mode: CrashMode) -> Check {
    crash_every_site(case, seed, scenario, mode).map(drop)
}

/// Not applicable when `--crash-mode` names another mode than `mode`.
fn in_mode(mode: CrashMode) -> Check {
    match Settings::get().crash_mode {
        Some(chosen) if chosen != mode => Err(Failure::not_applicable(format!(
            "--crash-mode {}: this case crashes in mode {}",
            chosen.name(),
            mode.name()
        ))),
        _ => Ok(()),
    }
}

/// [`check_sites`], returning (first crashes, every crashed run).
fn crash_every_site(
    case: &Case,
    seed: Seed,
    scenario: &Scenario,
    mode: CrashMode,
) -> Result<(usize, usize), Failure> {
    in_mode(mode)?;
    let mut template = case.fresh(seed)?;
    template.subject = mode.subject();
    let uninterrupted = crash::uninterrupted(&template, seed, scenario)?;
    let sites = crash::selected(mode.sites(&uninterrupted))?;
    ensure!(
        check::HARNESS,
        !sites.is_empty(),
        "the scenario passes no crash site"
    );
    let (first, mut crashed) = (sites.len(), 0);
    for site in sites {
        crashed += crash_and_compare(
            case,
            &template,
            scenario,
            &uninterrupted,
            CrashCase::at(seed, site),
        )?;
    }
    println!(
        "{crashed} crashed runs ({}), each recovered and held against every oracle",
        mode.name()
    );
    Ok((first, crashed))
}

/// One first crash and the second crashes of its recovery. Returns the runs made.
fn crash_and_compare(
    case: &Case,
    template: &Case,
    scenario: &Scenario,
    uninterrupted: &Uninterrupted,
    crash: CrashCase,
) -> Result<usize, Failure> {
    let seed = template.seed;
    let run = crashed_run(case, template, scenario, &crash)?;
    if crash::comparable_with_uninterrupted(scenario, &crash) {
        if let Some(difference) = crash::difference(&uninterrupted.run.dump, &run.dump) {
            let repro = case.repro().with_seed(seed).with_crash_at(&crash.site);
            return Err(Failure::new(
                check::CRASH_EQUALS_UNINTERRUPTED,
                format!("crash at {crash}: the recovered book differs from the uninterrupted run: {difference}\ntrace:\n{}\nreproduce: {repro}", run.trace.join("\n")),
            ));
        }
    }
    let seconds = match &Settings::get().crash_in_recovery {
        Some(second) => {
            crash::reached(second, &run.recovery_sites)
                .map_err(|failure| failure.context("in the recovery"))?;
            vec![second.clone()]
        }
        None if Settings::get().crash_at.is_some() => Vec::new(),
        None => crash::thinned(run.recovery_sites.clone(), crash::RECOVERY_SITES_MAX),
    };
    for second in &seconds {
        let double = CrashCase {
            in_recovery: Some(second.clone()),
            ..crash.clone()
        };
        crashed_run(case, template, scenario, &double)?;
    }
    Ok(1 + seconds.len())
}

fn crashed_run(
    case: &Case,
    template: &Case,
    scenario: &Scenario,
    crash: &CrashCase,
) -> Result<Run, Failure> {
    let repro = case
        .repro()
        .with_seed(template.seed)
        .with_crash_at(&crash.site)
        .with_crash_in_recovery(crash.in_recovery.as_ref());
    let run = crash::crashed_at(template, template.seed, scenario, crash).map_err(|failure| {
        failure
            .context(format!("crash at {crash}"))
            .append(format!("reproduce: {repro}"))
    })?;
    if Settings::get().crash_at.is_some() {
        // A repro: show what happened around the crash.
        println!("crash at {crash}, trace:\n{}", run.trace.join("\n"));
    }
    Ok(run)
}

fn check_every_site(case: &Case, steps: Vec<Step>) -> Check {
    let scenario = Scenario {
        limits: book::Limits::default(),
        steps,
    };
    check_sites(case, case.seed, &scenario, CrashMode::Unwind)
}

harness::sweep_parts!(every_crash_site_of_seeded_scenarios:
    every_crash_site_of_seeded_scenarios_part_1_of_2 = 1,
    every_crash_site_of_seeded_scenarios_part_2_of_2 = 2;
    of 2);

/// `--seeds N` seeded scenarios (from the case's seed on), in two parts of consecutive
/// seeds, each scenario crashed at every site.
fn every_crash_site_of_seeded_scenarios(case: &Case, part: Part) -> Check {
    let (seeds, progress) = part.start(case, SEEDS_DEFAULT, "crash sweep")?;
    let count = seeds.len() as u64;
    let (mut sites, mut runs) = (0, 0);
    for seed in seeds {
        let scenario = scenario::generate(seed, scenario::steps_max(STEPS_DEFAULT));
        let (first, crashed) = crash_every_site(case, seed, &scenario, CrashMode::Unwind)
            .map_err(|failure| failure.context(format!("seed {seed}")))?;
        sites += first;
        runs += crashed;
        progress.inc(1);
    }
    progress.finish();
    println!("crash sweep part {part}: {count} seeds, {sites} (seed, crash site) cases, {runs} crashed runs counting the second crashes in recovery");
    Ok(())
}

/// The classic duplicate-order bug: the venue filled the order, the process died before
/// recording it; on restart the book must find the order, not place another.
fn crash_after_the_venue_accepted_before_the_confirm(case: &Case) -> Check {
    check_every_site(case, vec![Step::Signal(signal("w-1", Side::Buy, 2))])
}

/// The venue accepted, the call timed out, the strategy retries the same signal.
fn timeout_then_retry_with_the_same_client_order_id(case: &Case) -> Check {
    check_every_site(
        case,
        vec![
            Step::Fault(Fault::TimeoutAfterAccept),
            Step::Signal(signal("w-1", Side::Buy, 2)),
            Step::Repeat { back: 1 },
        ],
    )
}

/// A rejection is final, also when the book crashes before recording it.
fn venue_reject_then_crash(case: &Case) -> Check {
    check_every_site(
        case,
        vec![
            Step::Fault(Fault::Reject),
            Step::Signal(signal("w-1", Side::Sell, 1)),
            Step::Repeat { back: 1 },
        ],
    )
}

/// A restart with a position open: no synthetic opposite fill, no second entry, and the
/// next signal placed once.
fn warm_restart_with_an_open_position(case: &Case) -> Check {
    check_every_site(
        case,
        vec![
            Step::Signal(signal("w-1", Side::Buy, 3)),
            Step::Tick { advance_ms: 60_000 },
            Step::Signal(signal("w-2", Side::Sell, 1)),
            Step::Repeat { back: 2 },
        ],
    )
}

/// The venue reports a trade twice; fills are deduplicated by trade id across restarts.
fn fills_replayed_by_the_venue_around_a_restart(case: &Case) -> Check {
    check_every_site(
        case,
        vec![
            Step::Fault(Fault::ReplayFill),
            Step::Signal(signal("w-1", Side::Buy, 4)),
            Step::SyncFills,
            Step::SyncFills,
        ],
    )
}

/// A tripped breaker, its failure count and the day's limits survive a restart.
fn breaker_still_open_after_restart(case: &Case) -> Check {
    check_every_site(
        case,
        vec![
            Step::Signal(signal("w-1", Side::Buy, 1)),
            Step::Close {
                pick: 0,
                offset: -10_000,
            },
            Step::Trip,
            Step::Signal(signal("w-2", Side::Buy, 1)),
            Step::RollDay,
            Step::Signal(signal("w-3", Side::Buy, 1)),
            Step::Reset,
            Step::Signal(signal("w-4", Side::Buy, 1)),
        ],
    )
}

/// Six losing trades breach the daily loss limit (each loses 2% of 5 units at 4_200_000,
/// 420_000, against a limit of 1_000_000); the next signal is refused, also after any
/// crash and restart, until the day rolls.
fn daily_loss_limit_still_in_force_after_restart(case: &Case) -> Check {
    let mut steps = Vec::new();
    for window in ["w-1", "w-2", "w-3", "w-4", "w-5", "w-6"] {
        steps.push(Step::Signal(signal(window, Side::Buy, 5)));
        steps.push(Step::Close {
            pick: 0,
            offset: -20_000,
        });
    }
    steps.push(Step::Signal(signal("w-7", Side::Buy, 1)));
    steps.push(Step::RollDay);
    steps.push(Step::Signal(signal("w-8", Side::Buy, 1)));
    let scenario = Scenario {
        limits: book::Limits::default(),
        steps,
    };
    let reference = crash::uninterrupted(case, case.seed, &scenario)?;
    let trace = reference.run.trace.join("\n");
    ensure!(
        check::HARNESS,
        trace.contains("refused: daily loss limit reached"),
        "the scenario never reaches the daily loss limit, so it proves nothing:\n{trace}"
    );
    check_sites(case, case.seed, &scenario, CrashMode::Unwind)
}

/// The venue accepts, times out, then fails the look-ups recovery depends on: recovery
/// must leave the intent executing and ask again, never read the failure as "not found".
fn a_look_up_fails_during_recovery(case: &Case) -> Check {
    check_every_site(
        case,
        vec![
            Step::Fault(Fault::LookupsFail {
                error: LookupError::Internal,
                calls: 2,
            }),
            Step::Fault(Fault::TimeoutAfterAccept),
            Step::Signal(signal("w-1", Side::Buy, 2)),
            Step::Signal(signal("w-2", Side::Buy, 1)),
        ],
    )
}

/// The venue accepts, times out, and hides the order from the next look-ups: recovery
/// releases the intent, the same signal comes again, the venue rejects it as a duplicate,
/// and the book must confirm the order the venue holds.
fn an_order_that_appears_late(case: &Case) -> Check {
    check_every_site(
        case,
        vec![
            Step::Fault(Fault::AppearsLate),
            Step::Signal(signal("w-1", Side::Buy, 2)),
            Step::Tick { advance_ms: 30_000 },
            Step::Repeat { back: 1 },
            Step::SyncFills,
        ],
    )
}

/// Two open positions; closing one is delivered again after every crash site of the
/// close (at least once, with its command id): it must not realise pnl or free counters
/// twice.
fn a_close_delivered_again_after_a_crash(case: &Case) -> Check {
    check_every_site(
        case,
        vec![
            Step::Signal(signal("w-1", Side::Buy, 2)),
            Step::Signal(signal("w-2", Side::Buy, 2)),
            Step::Close {
                pick: 0,
                offset: 10_000,
            },
            Step::Signal(signal("w-3", Side::Buy, 1)),
        ],
    )
}

/// A partly filled order's position is closed: the rest is cancelled at the venue first,
/// so the fills the market makes afterwards are not the book's, and the sync agrees.
fn a_partly_filled_order_closed_then_synced(case: &Case) -> Check {
    check_every_site(
        case,
        vec![
            Step::Fault(Fault::PartialFill),
            Step::Signal(signal("w-1", Side::Buy, 4)),
            Step::Close {
                pick: 0,
                offset: 5_000,
            },
            Step::SyncFills,
            Step::Reset,
        ],
    )
}

/// Every crash site with a day passing while the book is down: trades recorded after the
/// restart count on the new day, the loss limit and the breaker as before.
fn a_day_boundary_crossed_while_down(case: &Case) -> Check {
    let scenario = Scenario {
        limits: book::Limits::default(),
        steps: vec![
            Step::Signal(signal("w-1", Side::Buy, 2)),
            Step::Close {
                pick: 0,
                offset: -10_000,
            },
            Step::Signal(signal("w-2", Side::Buy, 1)),
            Step::RollDay,
            Step::Signal(signal("w-3", Side::Buy, 1)),
        ],
    };
    in_mode(CrashMode::Unwind)?;
    let template = case.fresh(case.seed)?;
    let uninterrupted = crash::uninterrupted(&template, case.seed, &scenario)?;
    let sites = crash::selected(uninterrupted.sites.clone())?;
    for site in sites {
        let crash = CrashCase {
            site,
            in_recovery: None,
            downtime_ms: book::clock::DAY_MS,
        };
        crash_and_compare(case, &template, &scenario, &uninterrupted, crash)?;
    }
    Ok(())
}

/// The same gate against a real process: the `book` binary aborts at each crash point
/// (no destructor, no rollback, no flush runs) and is restarted on the same files.
fn book_process_aborted_at_every_crash_site(case: &Case) -> Check {
    check_sites(case, case.seed, &scenario::tour(), CrashMode::Abort)
}

/// SIGKILL the `book` process right after each venue reply, wherever the book is.
fn book_process_killed_after_every_venue_reply(case: &Case) -> Check {
    check_sites(case, case.seed, &scenario::tour(), CrashMode::Sigkill)
}

/// Server crashes a default run makes (commits of the tour, evenly spread), unless
/// `--crash-sites N` says otherwise.
const SERVER_CRASHES_DEFAULT: usize = 12;

/// The database server itself crashes under the book: at each chosen commit of the tour
/// (a store operation, as `--fault-at server_crash@commit#N` names it) the harness
/// SIGKILLs the PostgreSQL server (the postmaster and its backends, or the container) and
/// restarts it on the same data with fsync on; the commit meets a dead connection. The
/// book must fail cleanly (an outcome it cannot know is `outcome_unknown` and halts),
/// reconnect, restart and recover; every oracle holds after every step, no order is lost
/// or placed twice, and the tour's operator reset lets it place again. PostgreSQL only, on
/// a server of the case's own (a durable local cluster, or a container when the run's
/// server is one); an embedded database has no server (the process crashes cover it).
fn the_database_server_crashes_under_the_book(case: &Case) -> Check {
    in_mode(CrashMode::Server)?;
    if case.backend() != harness::Backend::Postgres {
        return Err(Failure::not_applicable(format!(
            "{} is embedded: it has no server to crash (the process crash modes cover it)",
            case.backend()
        )));
    }
    let provider = match Settings::get().pg_provider {
        Some(Provider::Docker) => Provider::Docker,
        _ => Provider::Local,
    };
    let server = Arc::new(Server::start_own(provider).map_err(Failure::harness)?);
    let crasher = server
        .crasher()
        .ok_or_else(|| Failure::harness("no crasher"))?;
    let tour = scenario::tour();
    let cases = server_crash_sites(case, &server, &tour)?;
    for fault in &cases {
        let database =
            PostgresDatabase::create_on(Arc::clone(&server)).map_err(Failure::harness)?;
        let fresh = case.fresh_on(case.seed, Database::from_provider(Box::new(database)))?;
        let plan = StoreFaultPlan::armed(fault.clone(), Some(crasher.clone()));
        let crashes = runner::Crashes {
            store_faults: Some(plan.clone()),
            ..runner::Crashes::default()
        };
        let repro = case.repro().with_fault_at(fault);
        runner::run_with(&fresh, &tour, &crashes).map_err(|failure| {
            failure
                .context(format!("server crash at {fault} ({})", server.source))
                .append(format!("reproduce: {repro}"))
        })?;
        ensure!(
            check::UNKNOWN_SITE,
            plan.fired().is_some(),
            "server crash {fault} never fired: the tour never reaches its site"
        );
    }
    println!(
        "{} server crashes ({}), each survived, restarted, recovered and held against every oracle",
        cases.len(),
        server.source
    );
    Ok(())
}

/// The commits of the reference book's uninterrupted tour on `server`, thinned evenly (or
/// `--fault-at`'s one).
fn server_crash_sites(
    case: &Case,
    server: &Arc<Server>,
    tour: &Scenario,
) -> Result<Vec<FaultCase>, Failure> {
    if let Some(fault) = &Settings::get().fault_at {
        return Ok(vec![fault.clone()]);
    }
    let database = PostgresDatabase::create_on(Arc::clone(server)).map_err(Failure::harness)?;
    let reference = case.fresh_on(case.seed, Database::from_provider(Box::new(database)))?;
    let recording = StoreFaultPlan::recording();
    let crashes = runner::Crashes {
        store_faults: Some(recording.clone()),
        ..runner::Crashes::default()
    };
    runner::run_with(&reference, tour, &crashes)?;
    let commits: Vec<FaultCase> = recording
        .passed()
        .into_iter()
        .filter(|site| {
            matches!(
                site,
                FaultSite::Op {
                    op: StoreOp::Commit,
                    ..
                }
            )
        })
        .map(|site| FaultCase {
            fault: StoreFault::ServerCrash,
            site,
        })
        .collect();
    let limit = Settings::get()
        .crash_sites
        .unwrap_or(SERVER_CRASHES_DEFAULT);
    Ok(crash::thinned(commits, limit))
}
