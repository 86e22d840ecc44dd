//! How a gate's tests run (what `gate_tests!` expands to): a case per backend, its record
//! for the report, and on failure the seed and the one command that reruns it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use book::store::Backend;
use book::Mutant;

use crate::case::{check, Case, Check, Failure};
use crate::database::Database;
use crate::report::{self, CaseRecord, Kind, Outcome};
use crate::settings::Settings;

/// Runs one check against the reference book (or the mutant the settings name).
pub fn run_check(gate: &'static str, backend: Backend, test: &str, check: fn(&Case) -> Check) {
    run(gate, backend, test, None, Kind::Check, |case| check(case));
}

/// Runs one check against `mutant` and passes only if the check named `caught_by` is among
/// the checks that failed, so a mutant "caught" by an unrelated error (a database that is
/// down, say) does not count.
pub fn run_mutant(
    gate: &'static str,
    backend: Backend,
    test: &str,
    mutant: Mutant,
    target: (&str, fn(&Case) -> Check),
    caught_by: &str,
) {
    run(
        gate,
        backend,
        test,
        Some(mutant),
        Kind::Mutant,
        |case| match (target.1)(case) {
            Ok(()) => Err(Failure::new(
                check::HARNESS,
                format!(
                    "mutant {} survived: {} passed against a deliberately broken book",
                    mutant.name(),
                    target.0
                ),
            )),
            Err(failure) if failure.failed(check::NOT_APPLICABLE) => Err(failure),
            Err(failure) if failure.failed(caught_by) => {
                println!("mutant {} caught by {caught_by}: {failure}", mutant.name());
                println!("watch it fail: {}", case.repro().with_test(target.0));
                Ok(())
            }
            Err(failure) => Err(Failure::new(
                check::HARNESS,
                format!(
                    "mutant {} failed other checks than {caught_by}: {failure}",
                    mutant.name()
                ),
            )),
        },
    );
}

/// Runs `operations` on `backend` and on the embedded backend with the same seed and
/// requires byte-identical canonical dumps: the differential oracle. Reported under
/// `backend`, the one it needs beyond the embedded one.
pub fn run_differential(
    gate: &'static str,
    backend: Backend,
    test: &str,
    operations: fn(&Case) -> Check,
) {
    run(gate, backend, test, None, Kind::Check, |other| {
        let embedded = Backend::embedded();
        let database = Database::create(embedded).map_err(Failure::harness)?;
        let reference = Case::new(gate, test, other.seed, database);
        operations(&reference)?;
        operations(other)?;
        let (reference_dump, other_dump) = (reference.dump()?, other.dump()?);
        if let Some(difference) = reference_dump.first_difference(&other_dump) {
            return Err(Failure::new(
                "backends_agree",
                format!("{embedded} (left) and {backend} (right) dumps differ: {difference}"),
            ));
        }
        crate::ensure!(
            "backends_agree",
            reference_dump.render() == other_dump.render(),
            "dump texts differ although their rows are equal"
        );
        println!(
            "{embedded} and {backend} dumps are identical: sha256 {}",
            reference_dump.digest()
        );
        Ok(())
    });
}

fn run(
    gate: &'static str,
    backend: Backend,
    test: &str,
    mutant: Option<Mutant>,
    kind: Kind,
    body: impl FnOnce(&Case) -> Check,
) {
    let settings = Settings::get();
    // `cargo xtask repro --mutant NAME` runs an ordinary check against a mutant, to watch
    // it fail.
    let mutant = mutant.or(settings.mutant);
    let started = Instant::now();
    let repro = settings
        .repro(gate, backend, test, settings.seed)
        .with_mutant(mutant);
    let mut record = CaseRecord {
        gate: gate.to_owned(),
        backend: backend.name().to_owned(),
        test: test.to_owned(),
        kind,
        outcome: Outcome::Pass,
        detail: None,
        checks: Vec::new(),
        seed: settings.seed.to_string(),
        millis: 0,
        repro: repro.to_string(),
        coverage: Default::default(),
    };
    report::take_coverage();
    println!("{}", first_line(gate, backend, test, mutant, settings));
    let database = match Database::create(backend) {
        Ok(database) => database,
        Err(unavailable) => return skip_or_fail(record, &unavailable.reason, settings),
    };
    let mut case = Case::new(gate, test, settings.seed, database);
    case.mutant = mutant;
    case.subject = settings.subject;
    let result = catch_unwind(AssertUnwindSafe(|| body(&case))).unwrap_or_else(|panic| {
        Err(Failure::harness(format!(
            "panicked: {}",
            panic_message(&panic)
        )))
    });
    record.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    record.coverage = report::take_coverage().counts;
    // Drop the database (and a cluster only this case used) before reporting.
    drop(case);
    if let Err(failure) = &result {
        if failure.checks == [check::NOT_APPLICABLE] {
            record.outcome = Outcome::Skip;
            record.detail = Some(failure.message.clone());
            report::write(&record);
            println!(
                "bookproof: not applicable on {backend}: {}",
                failure.message
            );
            return;
        }
    }
    if let Err(failure) = result {
        let message = failure.to_string();
        record.outcome = Outcome::Fail;
        record.detail = Some(message.clone());
        record.checks = failure
            .checks
            .iter()
            .map(|check| (*check).to_owned())
            .collect();
        report::write(&record);
        panic!(
            "\n{gate} gate failed on {backend}: {test}\n{message}\n\nseed: {}\nreproduce: {repro}\n",
            settings.seed
        );
    }
    report::write(&record);
}

/// The case's settings, on the first line of its output.
fn first_line(
    gate: &str,
    backend: Backend,
    test: &str,
    mutant: Option<Mutant>,
    settings: &Settings,
) -> String {
    let or = |value: Option<String>, default: &str| value.unwrap_or_else(|| default.to_owned());
    format!(
        "bookproof: gate {gate}, case {test}, backend {backend}, seed {}, steps {}, crash site {}, mutant {}, subject {}",
        settings.seed,
        or(settings.steps.map(|steps| steps.to_string()), "default"),
        or(settings.crash_at.as_ref().map(ToString::to_string), "every"),
        mutant.map_or("none", Mutant::name),
        settings.subject.name()
    )
}

fn skip_or_fail(mut record: CaseRecord, reason: &str, settings: &Settings) {
    record.detail = Some(reason.to_owned());
    if settings.require_postgres {
        record.outcome = Outcome::Fail;
        report::write(&record);
        panic!(
            "{} is required ({}=1) but unavailable: {reason}",
            record.backend,
            crate::settings::REQUIRE_POSTGRES
        );
    }
    record.outcome = Outcome::Skip;
    report::write(&record);
    println!("bookproof: skipped on {}: {reason}", record.backend);
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
        .unwrap_or_else(|| "(no message)".to_owned())
}
