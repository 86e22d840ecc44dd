//! Seeded scenarios: bounded sequences of steps over a few strategies, symbols and market
//! windows. Written as proptest strategies so that a failing scenario shrinks to a minimal
//! one; a seed picks one scenario deterministically.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use protocol::{Side, Signal};

use crate::seed::Seed;
use crate::settings::Settings;
use crate::venue::Fault;

/// The most steps a default scenario has (a seed picks 1 to this many, so that a failing
/// scenario can shrink by dropping steps).
pub const STEPS_DEFAULT: usize = 40;
/// Upper bound on shrink iterations (each reruns the property on fresh databases).
pub const SHRINK_ITERATIONS_MAX: usize = 256;

const STRATEGIES: [&str; 2] = ["momentum", "meanrev"];
const SYMBOLS: [(&str, i64); 2] = [("BTC-USD", 4_200_000), ("ETH-USD", 310_000)];
const WINDOWS: usize = 6;
const BAR_MS: i64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Time passes.
    Tick {
        advance_ms: i64,
    },
    /// A strategy emits a signal.
    Signal(Signal),
    /// The signal `back` signals ago arrives again (must not make a second intent).
    Repeat {
        back: usize,
    },
    /// The venue misbehaves on the next placement.
    Fault(Fault),
    /// The venue fills the rest of partly filled orders; the book syncs its fills.
    SyncFills,
    /// Close the `pick`-th open position (modulo how many are open), `offset` from entry.
    Close {
        pick: usize,
        offset: i64,
    },
    RollDay,
    Trip,
    Reset,
    Checkpoint,
}

impl std::fmt::Display for Step {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Tick { advance_ms } => write!(formatter, "tick +{advance_ms} ms"),
            Step::Signal(signal) => write!(
                formatter,
                "signal {} {} {} {} {}@{} bar {}",
                signal.strategy,
                signal.symbol,
                signal.window_id,
                signal.side.as_str(),
                signal.size,
                signal.price,
                signal.bar_t
            ),
            Step::Repeat { back } => write!(formatter, "repeat the signal {back} back"),
            Step::Fault(fault) => write!(formatter, "arm venue fault {fault:?}"),
            Step::SyncFills => formatter.write_str("venue fills the rest; sync fills"),
            Step::Close { pick, offset } => {
                write!(formatter, "close open position #{pick} at entry{offset:+}")
            }
            Step::RollDay => formatter.write_str("roll the day"),
            Step::Trip => formatter.write_str("operator trips the breaker"),
            Step::Reset => formatter.write_str("operator resets the breaker"),
            Step::Checkpoint => formatter.write_str("checkpoint"),
        }
    }
}

fn signal_strategy() -> impl Strategy<Value = Signal> {
    (
        0..STRATEGIES.len(),
        0..SYMBOLS.len(),
        0..WINDOWS,
        prop_oneof![Just(Side::Buy), Just(Side::Sell)],
        1_i64..=5,
        -50_000_i64..=50_000,
        0_i64..20,
    )
        .prop_map(|(strategy, symbol, window, side, size, offset, bar)| {
            let (symbol, base) = SYMBOLS[symbol];
            Signal {
                strategy: STRATEGIES[strategy].to_owned(),
                symbol: symbol.to_owned(),
                window_id: format!("w-{window}"),
                side,
                size,
                price: base + offset * base / 1_000_000,
                bar_t: bar * BAR_MS,
                params: "v1".to_owned(),
            }
        })
}

fn fault_strategy() -> impl Strategy<Value = Fault> {
    prop_oneof![
        Just(Fault::Reject),
        Just(Fault::TimeoutAfterAccept),
        Just(Fault::RateLimited { status: 429 }),
        Just(Fault::RateLimited { status: 503 }),
        Just(Fault::Internal),
        Just(Fault::ReplayFill),
    ]
}

/// One step; signals dominate, as in a real session.
pub fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => signal_strategy().prop_map(Step::Signal),
        3 => (1_i64..=120).prop_map(|seconds| Step::Tick { advance_ms: seconds * 1_000 }),
        2 => (1_usize..=3).prop_map(|back| Step::Repeat { back }),
        2 => fault_strategy().prop_map(Step::Fault),
        2 => Just(Step::SyncFills),
        2 => (0_usize..4, -20_000_i64..=20_000).prop_map(|(pick, offset)| Step::Close { pick, offset }),
        1 => Just(Step::RollDay),
        1 => Just(Step::Trip),
        1 => Just(Step::Reset),
        1 => Just(Step::Checkpoint),
    ]
}

pub fn scenario_strategy(steps_max: usize) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(step_strategy(), 1..=steps_max.max(1))
}

/// `--steps` (`BOOKPROOF_STEPS`) if given, else `default`.
pub fn steps_max(default: usize) -> usize {
    Settings::get().steps.unwrap_or(default)
}

fn runner_for(seed: Seed) -> TestRunner {
    TestRunner::new_with_rng(Config::default(), seed.proptest_rng("scenario"))
}

/// The scenario a seed stands for.
pub fn generate(seed: Seed, steps: usize) -> Vec<Step> {
    generate_tree(seed, steps).current()
}

fn generate_tree(seed: Seed, steps: usize) -> impl ValueTree<Value = Vec<Step>> {
    match scenario_strategy(steps).new_tree(&mut runner_for(seed)) {
        Ok(tree) => tree,
        // A vec of fixed length over total strategies cannot be rejected.
        Err(reason) => unreachable!("scenario generation rejected: {reason}"),
    }
}

/// A failure, shrunk: the minimal steps and what the property said about them.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub steps: Vec<Step>,
    pub failure: String,
    pub original_len: usize,
    pub iterations: usize,
}

/// Shrinks the seed's scenario while `property` keeps failing, then reruns the minimal
/// case to confirm it fails the same way (the same first line). `None` if the scenario
/// passes. `property` must use fresh databases on each call.
pub fn shrink(
    seed: Seed,
    steps: usize,
    property: &mut dyn FnMut(&[Step]) -> Result<(), String>,
) -> Option<Result<Shrunk, String>> {
    let mut tree = generate_tree(seed, steps);
    let original = tree.current();
    let mut failure = property(&original).err()?;
    let mut iterations = 0;
    while iterations < SHRINK_ITERATIONS_MAX && tree.simplify() {
        iterations += 1;
        match property(&tree.current()) {
            Err(smaller) => failure = smaller,
            Ok(()) => {
                if !tree.complicate() {
                    break;
                }
            }
        }
    }
    let minimal = tree.current();
    let first_line = |text: &str| text.lines().next().unwrap_or_default().to_owned();
    Some(match property(&minimal) {
        Err(again) if first_line(&again) == first_line(&failure) => Ok(Shrunk {
            original_len: original.len(),
            steps: minimal,
            failure: again,
            iterations,
        }),
        Err(other) => Err(format!("the shrunk scenario fails differently: {other}")),
        Ok(()) => Err(
            "the shrunk scenario passes on a rerun (the failure is not deterministic)".to_owned(),
        ),
    })
}
