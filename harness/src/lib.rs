//! bookproof's framework: everything a gate needs that is not the book itself.
//!
//! Start at [`case`] (how a gate's check runs on a backend), then [`dump`] and
//! [`invariants`] (what is checked), then [`provider`] and [`pg`] (where databases come
//! from).

pub mod case;
pub mod crash;
pub mod dump;
pub mod invariants;
pub mod pg;
pub mod process;
pub mod provider;
pub mod rebuild;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod seed;
pub mod subject;
pub mod venue;

pub use book;
pub use book::store::Backend;

pub use crate::case::{run_check, run_differential, run_mutant, Case, Check, Failure};
pub use crate::dump::Dump;
pub use crate::invariants::Phase;
pub use crate::seed::Seed;
pub use crate::subject::Subject;

/// The logical clock cases give the book: shared, advanced by the scenario.
pub type SimClock = book::ManualClock;

/// Declares a gate's tests: each check and each mutant test once per backend, as
/// `sqlite::NAME` and `postgres::NAME`, and each differential (same operations on both
/// backends, identical dumps) as `postgres_vs_sqlite::NAME`, so that filters pick a
/// backend by prefix (`^sqlite::`, `^postgres`).
///
/// ```ignore
/// harness::gate_tests! {
///     gate: "persist";
///     checks: [every_table_round_trips, idempotent_across_reopen];
///     mutants: [
///         intent_id_counter_is_caught => (IntentIdWithOpenCounter, idempotent_across_reopen, "second order"),
///     ];
/// }
/// ```
#[macro_export]
macro_rules! gate_tests {
    (
        gate: $gate:literal;
        checks: [$($check:ident),* $(,)?];
        mutants: [$($mutant_test:ident => ($mutant:ident, $target:ident, $caught_by:literal)),* $(,)?];
        $(differential: [$($differential:ident),* $(,)?];)?
    ) => {
        $crate::gate_tests!(@backend sqlite, Sqlite, $gate, [$($check),*], [$($mutant_test => ($mutant, $target, $caught_by)),*]);
        $crate::gate_tests!(@backend postgres, Postgres, $gate, [$($check),*], [$($mutant_test => ($mutant, $target, $caught_by)),*]);
        mod postgres_vs_sqlite {
            $($(
                #[test]
                fn $differential() {
                    $crate::run_differential($gate, stringify!($differential), super::$differential);
                }
            )*)?
        }
    };
    (@backend $module:ident, $backend:ident, $gate:literal, [$($check:ident),*], [$($mutant_test:ident => ($mutant:ident, $target:ident, $caught_by:literal)),*]) => {
        mod $module {
            $(
                #[test]
                fn $check() {
                    $crate::run_check($gate, $crate::Backend::$backend, stringify!($check), super::$check);
                }
            )*
            $(
                #[test]
                fn $mutant_test() {
                    $crate::run_mutant(
                        $gate,
                        $crate::Backend::$backend,
                        stringify!($mutant_test),
                        $crate::book::Mutant::$mutant,
                        (stringify!($target), super::$target),
                        $caught_by,
                    );
                }
            )*
        }
    };
}
