//! Seeded scenarios: the book's limits and a bounded sequence of steps over a few
//! strategies, symbols and market windows. Written as proptest strategies so that a
//! failing scenario shrinks to a minimal one; a seed picks one scenario deterministically.
//!
//! Time moves: ticks advance the clock, and a signal's market window and bar follow the
//! clock, so windows a strategy entered pass and new ones open. The limits are small enough
//! that default scenarios reach them (max open, max exposure, the daily loss).

use book::Limits;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use protocol::{Mark, Side, Signal};

use crate::case::Failure;
use crate::seed::Seed;
use crate::settings::Settings;
use crate::venue::{Fault, LookupError};

/// The most steps a default scenario has (a seed picks 1 to this many, so that a failing
/// scenario can shrink by dropping steps).
pub const STEPS_DEFAULT: usize = 40;
/// Upper bound on shrink iterations (each reruns the property on fresh databases).
pub const SHRINK_ITERATIONS_MAX: usize = 256;

const STRATEGIES: [&str; 2] = ["momentum", "meanrev"];
const SYMBOLS: [(&str, i64); 2] = [("BTC-USD", 4_200_000), ("ETH-USD", 310_000)];
const BAR_MS: i64 = 60_000;
/// A market window: a strategy enters it at most once.
pub const WINDOW_MS: i64 = 3 * BAR_MS;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub limits: Limits,
    pub steps: Vec<Step>,
}

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
    /// The venue misbehaves (see [`Fault`]).
    Fault(Fault),
    /// The venue fills the rest of partly filled orders; the book syncs its fills.
    SyncFills,
    /// Close the `pick`-th open position (modulo how many are open), `offset` millionths
    /// from its entry price.
    Close {
        pick: usize,
        offset: i64,
    },
    RollDay,
    Trip,
    Reset,
    Checkpoint,
    /// The market moves each symbol `moves[i]` millionths from its base price, and the
    /// book evaluates its stop-losses and take-profits at those marks (verifying the
    /// venue's positions first).
    Exits {
        moves: [i64; 2],
    },
}

/// The marks a [`Step::Exits`] gives the book.
pub fn marks(moves: [i64; 2]) -> Vec<Mark> {
    SYMBOLS
        .iter()
        .zip(moves)
        .map(|((symbol, base), moved)| Mark {
            symbol: (*symbol).to_owned(),
            price: base + base * moved / 1_000_000,
        })
        .collect()
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
            Step::Fault(fault) => write!(formatter, "venue: {fault}"),
            Step::SyncFills => formatter.write_str("venue fills the rest; sync fills"),
            Step::Close { pick, offset } => {
                write!(formatter, "close open position #{pick} at entry{offset:+}")
            }
            Step::RollDay => formatter.write_str("roll the day"),
            Step::Trip => formatter.write_str("operator trips the breaker"),
            Step::Reset => formatter.write_str("operator resets the breaker"),
            Step::Checkpoint => formatter.write_str("checkpoint"),
            Step::Exits { moves } => {
                let marks: Vec<String> = marks(*moves)
                    .iter()
                    .map(|mark| format!("{} {}", mark.symbol, mark.price))
                    .collect();
                write!(formatter, "marks {}; evaluate exits", marks.join(", "))
            }
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let limits = self.limits;
        writeln!(
            formatter,
                        "limits: max open {}, max exposure {}, max daily loss {}, stop-loss {}, take-profit {} (millionths)",
            limits.max_open, limits.max_exposure, limits.max_daily_loss, limits.stop_loss, limits.take_profit
        )?;
        for (index, step) in self.steps.iter().enumerate() {
            writeln!(formatter, "  {}. {step}", index + 1)?;
        }
        Ok(())
    }
}

/// A signal before it is placed in time: which window ahead of the current one, which bar
/// of it.
#[derive(Debug, Clone)]
struct Draft {
    strategy: usize,
    symbol: usize,
    windows_ahead: i64,
    bar: i64,
    side: Side,
    size: i64,
    offset: i64,
}

#[derive(Debug, Clone)]
enum RawStep {
    Signal(Draft),
    Other(Step),
}

fn draft_strategy() -> impl Strategy<Value = Draft> {
    (
        0..STRATEGIES.len(),
        0..SYMBOLS.len(),
        0_i64..=1,
        0_i64..3,
        prop_oneof![Just(Side::Buy), Just(Side::Sell)],
        1_i64..=5,
        -50_000_i64..=50_000,
    )
        .prop_map(
            |(strategy, symbol, windows_ahead, bar, side, size, offset)| Draft {
                strategy,
                symbol,
                windows_ahead,
                bar,
                side,
                size,
                offset,
            },
        )
}

fn fault_strategy() -> impl Strategy<Value = Fault> {
    let lookup = || {
        prop_oneof![
            Just(LookupError::Timeout),
            Just(LookupError::RateLimited),
            Just(LookupError::Unavailable),
            Just(LookupError::Internal)
        ]
    };
    prop_oneof![
        2 => Just(Fault::Reject),
        1 => Just(Fault::RateLimited { status: 429, retry_after_ms: 2_000 }),
        1 => Just(Fault::RateLimited { status: 503, retry_after_ms: 5_000 }),
        1 => Just(Fault::Internal),
        2 => Just(Fault::TimeoutAfterAccept),
        1 => Just(Fault::InternalAfterAccept),
        2 => Just(Fault::AppearsLate),
        1 => Just(Fault::ReplayFill),
        1 => Just(Fault::PartialFill),
                3 => (lookup(), 1_u8..=2).prop_map(|(error, calls)| Fault::LookupsFail { error, calls }),
        2 => Just(Fault::Expire),
        1 => Just(Fault::FillsLate),
        1 => Just(Fault::FillsScrambled),
        1 => Just(Fault::ExitRefused),
        1 => Just(Fault::ExitTimeout),
                3 => (lookup(), prop_oneof![Just(0_i64), Just(20_000), Just(60_000)])
            .prop_map(|(error, for_ms)| Fault::PositionsFail { error, for_ms }),
        1 => Just(Fault::ForeignPosition),
        1 => Just(Fault::Liquidation),
    ]
}

fn raw_step_strategy() -> impl Strategy<Value = RawStep> {
    prop_oneof![
        8 => draft_strategy().prop_map(RawStep::Signal),
        3 => (10_i64..=300).prop_map(|seconds| RawStep::Other(Step::Tick { advance_ms: seconds * 1_000 })),
        2 => (1_usize..=3).prop_map(|back| RawStep::Other(Step::Repeat { back })),
        5 => fault_strategy().prop_map(|fault| RawStep::Other(Step::Fault(fault))),
        2 => Just(RawStep::Other(Step::SyncFills)),
        3 => (0_usize..4, -20_000_i64..=20_000).prop_map(|(pick, offset)| RawStep::Other(Step::Close { pick, offset })),
        1 => Just(RawStep::Other(Step::RollDay)),
        1 => Just(RawStep::Other(Step::Trip)),
        1 => Just(RawStep::Other(Step::Reset)),
                1 => Just(RawStep::Other(Step::Checkpoint)),
        3 => (-60_000_i64..=60_000, -60_000_i64..=60_000)
            .prop_map(|(btc, eth)| RawStep::Other(Step::Exits { moves: [btc, eth] })),
    ]
}

fn limits_strategy() -> impl Strategy<Value = Limits> {
    (
        2_i64..=4,
        prop_oneof![Just(12_000_000_i64), Just(25_000_000), Just(60_000_000)],
        prop_oneof![Just(150_000_i64), Just(400_000), Just(1_000_000)],
        prop_oneof![Just(10_000_i64), Just(20_000), Just(50_000)],
        prop_oneof![Just(15_000_i64), Just(30_000), Just(80_000)],
    )
        .prop_map(
            |(max_open, max_exposure, max_daily_loss, stop_loss, take_profit)| Limits {
                max_open,
                max_exposure,
                max_daily_loss,
                stop_loss,
                take_profit,
            },
        )
}

/// Places signals in time: the window a signal is for follows the clock (ticks and day
/// rolls move it), so the windows a strategy entered pass and new ones open.
fn in_time(raw: Vec<RawStep>) -> Vec<Step> {
    let mut elapsed_ms = 0;
    raw.into_iter()
        .map(|step| match step {
            RawStep::Signal(draft) => {
                let window = elapsed_ms / WINDOW_MS + draft.windows_ahead;
                let (symbol, base) = SYMBOLS[draft.symbol];
                Step::Signal(Signal {
                    strategy: STRATEGIES[draft.strategy].to_owned(),
                    symbol: symbol.to_owned(),
                    window_id: format!("w-{window}"),
                    side: draft.side,
                    size: draft.size,
                    price: base + draft.offset * base / 1_000_000,
                    bar_t: window * WINDOW_MS + draft.bar * BAR_MS,
                    params: "v1".to_owned(),
                })
            }
            RawStep::Other(step) => {
                match &step {
                    Step::Tick { advance_ms } => elapsed_ms += advance_ms,
                    Step::RollDay => elapsed_ms += book::clock::DAY_MS,
                    _ => {}
                }
                step
            }
        })
        .collect()
}

pub fn scenario_strategy(steps_max: usize) -> impl Strategy<Value = Scenario> {
    (
        limits_strategy(),
        proptest::collection::vec(raw_step_strategy(), 1..=steps_max.max(1)),
    )
        .prop_map(|(limits, raw)| Scenario {
            limits,
            steps: in_time(raw),
        })
}

/// A signal for hand-written scenarios: `momentum` on BTC-USD at 4_200_000, bar 60_000.
pub fn signal(window_id: &str, side: Side, size: i64) -> Signal {
    Signal {
        strategy: "momentum".to_owned(),
        symbol: "BTC-USD".to_owned(),
        window_id: window_id.to_owned(),
        side,
        size,
        price: 4_200_000,
        bar_t: 60_000,
        params: "v1".to_owned(),
    }
}

/// Every kind of request once, with the venue misbehaving on the way (a partial fill, a
/// timeout after accepting): what the process crash checks and the store fault sweep run.
pub fn tour() -> Scenario {
    Scenario {
        limits: Limits::default(),
        steps: vec![
            Step::Fault(Fault::PartialFill),
            Step::Signal(signal("w-1", Side::Buy, 4)),
            Step::Fault(Fault::TimeoutAfterAccept),
            Step::Signal(signal("w-2", Side::Sell, 2)),
            Step::Repeat { back: 2 },
            Step::Close {
                pick: 0,
                offset: 8_000,
            },
            Step::Close {
                pick: 0,
                offset: -3_000,
            },
            Step::SyncFills,
            Step::Trip,
            Step::Signal(signal("w-3", Side::Buy, 1)),
            Step::Reset,
            Step::RollDay,
            Step::Checkpoint,
            Step::Signal(signal("w-4", Side::Buy, 1)),
            // BTC falls 3 %: the stop-loss closes w-4.
            Step::Exits {
                moves: [-30_000, 0],
            },
            Step::Fault(Fault::PositionsFail {
                error: LookupError::RateLimited,
                for_ms: 0,
            }),
            // Rate limited: the verification of a moment ago stands in.
            Step::Exits { moves: [0, 0] },
        ],
    }
}

/// `--steps` (`BOOKPROOF_STEPS`) if given, else `default`.
pub fn steps_max(default: usize) -> usize {
    Settings::get().steps.unwrap_or(default)
}

fn runner_for(seed: Seed) -> TestRunner {
    TestRunner::new_with_rng(Config::default(), seed.proptest_rng("scenario"))
}

/// The scenario a seed stands for.
pub fn generate(seed: Seed, steps_max: usize) -> Scenario {
    generate_tree(seed, steps_max).current()
}

fn generate_tree(seed: Seed, steps_max: usize) -> impl ValueTree<Value = Scenario> {
    match scenario_strategy(steps_max).new_tree(&mut runner_for(seed)) {
        Ok(tree) => tree,
        // A vec of fixed length over total strategies cannot be rejected.
        Err(reason) => unreachable!("scenario generation rejected: {reason}"),
    }
}

/// A failure, shrunk: the minimal scenario and what the property said about it.
#[derive(Debug, Clone)]
pub struct Shrunk {
    pub scenario: Scenario,
    pub failure: Failure,
    pub original_len: usize,
    pub iterations: usize,
}

/// Shrinks the seed's scenario while `property` keeps failing, then reruns the minimal
/// case to confirm it fails the same way (the same checks). `None` if the scenario passes.
/// `property` must use fresh databases on each call.
pub fn shrink(
    seed: Seed,
    steps_max: usize,
    property: &mut dyn FnMut(&Scenario) -> Result<(), Failure>,
) -> Option<Result<Shrunk, Failure>> {
    let mut tree = generate_tree(seed, steps_max);
    let original = tree.current();
    let mut failure = property(&original).err()?;
    let mut iterations = 0;
    while iterations < SHRINK_ITERATIONS_MAX && tree.simplify() {
        iterations += 1;
        match property(&tree.current()) {
            Err(smaller) if smaller.checks == failure.checks => failure = smaller,
            _ => {
                if !tree.complicate() {
                    break;
                }
            }
        }
    }
    let minimal = tree.current();
    Some(match property(&minimal) {
        Err(again) if again.checks == failure.checks => Ok(Shrunk {
            original_len: original.steps.len(),
            scenario: minimal,
            failure: again,
            iterations,
        }),
        Err(other) => Err(other.context("the shrunk scenario fails differently")),
        Ok(()) => Err(failure
            .context("the shrunk scenario passes on a rerun (the failure is not deterministic)")),
    })
}
