//! Sweeps in parts. A sweep of `--seeds N` seeds is declared as several tests
//! ([`sweep_parts!`](crate::sweep_parts)), each running one contiguous range of the seeds:
//! nextest runs the parts side by side on one machine, and `--partition K/N` spreads them
//! over machines by name like any other case, so a long sweep is not one case that one
//! shard must run alone. The parts of one sweep together run every seed exactly once.

use std::ops::Range;

use crate::case::{Case, Failure};
use crate::seed::Seed;
use crate::settings::Settings;

/// Part `index` (from 1) of `count` of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub index: u64,
    pub count: u64,
}

impl Part {
    /// The offsets from the case's seed of this part's seeds, of `total`: contiguous, as
    /// even as integers allow, and the parts of one `count` cover `0..total` once.
    pub fn offsets(self, total: u64) -> Range<u64> {
        let bound = |index: u64| {
            // Exact in u128 for every u64 total.
            (u128::from(total) * u128::from(index) / u128::from(self.count)) as u64
        };
        bound(self.index - 1)..bound(self.index)
    }

    /// This part's seeds of the sweep of `--seeds` (else `default`) seeds from the case's
    /// seed on. A part left without seeds (fewer seeds than parts) does not apply, and is
    /// reported as skipped, never as a pass.
    pub fn seeds(self, case: &Case, default: u64) -> Result<Vec<Seed>, Failure> {
        let total = Settings::get().seeds.unwrap_or(default);
        let offsets = self.offsets(total);
        if offsets.is_empty() {
            return Err(Failure::not_applicable(format!(
                "part {self} of a sweep of {total} seeds has no seeds; the other parts run them all"
            )));
        }
        Ok(offsets
            .map(|offset| Seed(case.seed.0.wrapping_add(offset)))
            .collect())
    }
}

impl Part {
    /// [`Part::seeds`], and a progress bar over them named `what` (`crash sweep`).
    pub fn start(
        self,
        case: &Case,
        default: u64,
        what: &str,
    ) -> Result<(Vec<Seed>, indicatif::ProgressBar), Failure> {
        let seeds = self.seeds(case, default)?;
        let progress = crate::runner::progress(
            seeds.len() as u64,
            &format!("{what} part {self} on {}", case.backend()),
        );
        Ok((seeds, progress))
    }
}

impl std::fmt::Display for Part {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} of {}", self.index, self.count)
    }
}

/// Declares the parts of a sweep as checks: `sweep_parts!(sweep: name_part_1_of_2 = 1,
/// name_part_2_of_2 = 2; of 2)` defines `fn name_part_K_of_2(case: &Case) -> Check`,
/// each calling `sweep(case, Part { index: K, count: 2 })`. List them in `gate_tests!`.
#[macro_export]
macro_rules! sweep_parts {
    ($sweep:ident: $($part:ident = $index:literal),+ ; of $count:literal) => {
        $(
            fn $part(case: &$crate::Case) -> $crate::Check {
                $sweep(case, $crate::sweep::Part { index: $index, count: $count })
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_of_a_sweep_run_every_seed_once_in_order() {
        for count in 1..=5_u64 {
            for total in [0, 1, 2, 3, 4, 16, 17, 1_000, u64::MAX] {
                let ranges: Vec<Range<u64>> = (1..=count)
                    .map(|index| Part { index, count }.offsets(total))
                    .collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[ranges.len() - 1].end, total);
                for pair in ranges.windows(2) {
                    assert_eq!(pair[0].end, pair[1].start, "{count} parts of {total}");
                }
                let sizes: Vec<u64> = ranges.iter().map(|range| range.end - range.start).collect();
                let (least, most) = (sizes.iter().min(), sizes.iter().max());
                assert!(
                    most.zip(least)
                        .is_some_and(|(most, least)| most - least <= 1),
                    "{count} parts of {total}: {sizes:?}"
                );
            }
        }
    }
}
