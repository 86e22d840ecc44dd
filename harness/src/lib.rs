//! bookproof's framework: everything a gate needs that is not the book itself.
//!
//! Start at [`gate`] (how a gate's check runs on each backend) and [`case`] (what a check
//! receives), then [`subject`] (the book behind the contract), [`runner`] (scenarios step
//! by step) and [`dump`] / [`invariants`] (what is checked). [`settings`] is the one place
//! the environment is read.

pub mod case;
pub mod coverage;
pub mod crash;
pub mod database;
pub mod dump;
pub mod faults;
pub mod gate;
pub mod invariants;
pub mod model;
pub mod race;
pub mod rebuild;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod secret;
pub mod seed;
pub mod settings;
pub mod state;
pub mod subject;
pub mod sweep;
pub mod venue;

pub use book;
pub use book::store::Backend;
pub use protocol;

pub use crate::case::{check, Case, Check, Failure};
pub use crate::dump::Dump;
pub use crate::gate::{run_check, run_differential, run_mutant};
pub use crate::invariants::Phase;
pub use crate::seed::Seed;
pub use crate::settings::Settings;
pub use crate::subject::{Subject, SubjectKind};

/// The logical clock cases give the book: shared, advanced by the scenario.
pub type SimClock = book::ManualClock;

/// Declares a gate's tests: each check and each mutant test once per backend
/// (`book::with_backends!` lists them), as `sqlite::NAME`, `postgres::NAME`, ..., and each
/// differential (the same operations on a backend and on the embedded one, identical
/// dumps) as `BACKEND::differential::NAME` for every backend but the embedded one, so that
/// a filter picks a backend by its prefix (`^sqlite::`).
///
/// ```ignore
/// harness::gate_tests! {
///     gate: "persist";
///     checks: [every_table_round_trips, idempotent_across_reopen];
///     mutants: [
///         intent_id_counter_is_caught => (IntentIdWithOpenCounter, idempotent_across_reopen, "second order"),
///     ];
///     differential: [every_table_written];
/// }
/// ```
#[macro_export]
macro_rules! gate_tests {
    // A gate that involves no database (`config`): its checks once, as `sqlite::NAME`
    // (the embedded backend's module).
    (
        gate: $gate:literal;
        database: none;
        checks: $checks:tt;
        mutants: $mutants:tt;
    ) => {
        $crate::book::with_backends!($crate::__gate_tests_embedded! {
            gate: $gate; checks: $checks; mutants: $mutants;
        });
    };
    (
        gate: $gate:literal;
        checks: $checks:tt;
        mutants: $mutants:tt;
        $(differential: $differential:tt;)?
    ) => {
        $crate::book::with_backends!($crate::__gate_tests! {
            gate: $gate; checks: $checks; mutants: $mutants; differential: [$($differential)?];
        });
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __gate_tests {
    (
        backends: [$embedded_module:ident $embedded:ident $(, $module:ident $variant:ident)*];
        gate: $gate:literal; checks: $checks:tt; mutants: $mutants:tt; differential: $differential:tt;
    ) => {
        $crate::__gate_backend!($embedded_module $embedded $gate $checks $mutants []);
        $( $crate::__gate_backend!($module $variant $gate $checks $mutants $differential); )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __gate_tests_embedded {
    (
        backends: [$embedded_module:ident $embedded:ident $(, $module:ident $variant:ident)*];
        gate: $gate:literal; checks: $checks:tt; mutants: $mutants:tt;
    ) => {
        $crate::__gate_backend!($embedded_module $embedded $gate $checks $mutants []);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __gate_backend {
    (
        $module:ident $backend:ident $gate:literal
        [$($check:ident),* $(,)?]
        [$($mutant_test:ident => ($mutant:ident, $target:ident, $caught_by:literal)),* $(,)?]
        [$([$($differential:ident),* $(,)?])?]
    ) => {
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
            mod differential {
                $($(
                    #[test]
                    fn $differential() {
                        $crate::run_differential($gate, $crate::Backend::$backend, stringify!($differential), super::super::$differential);
                    }
                )*)?
            }
        }
    };
}
