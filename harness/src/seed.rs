//! One `u64` seed drives a run. It prints as `0x` + 16 hex digits and parses back from the
//! same (the `0x` is optional). Each subsystem draws from its own ChaCha stream keyed by
//! sha256(seed, subsystem name) (the venue's fills from `stream("venue")`, the scenario's
//! proptest generator from `proptest_rng("scenario")`), so changing how one subsystem draws
//! does not shift the others.

use std::fmt;
use std::str::FromStr;

use proptest::test_runner::{RngAlgorithm, TestRng};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seed(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad seed {input:?}: expected up to 16 hex digits, optionally prefixed with 0x (for example 0x00000000deadbeef)")]
pub struct BadSeed {
    pub input: String,
}

impl Seed {
    /// A ChaCha stream for one subsystem (`"venue"`, `"crash"`, ...).
    pub fn stream(self, name: &str) -> ChaCha8Rng {
        ChaCha8Rng::from_seed(self.key(name))
    }

    /// A ChaCha generator for the proptest strategies of one subsystem (`"scenario"`).
    pub fn proptest_rng(self, name: &str) -> TestRng {
        TestRng::from_seed(RngAlgorithm::ChaCha, &self.key(name))
    }

    /// sha256(seed, name): the key of one subsystem's stream.
    fn key(self, name: &str) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.0.to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.finalize().into()
    }
}

impl fmt::Display for Seed {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{:#018x}", self.0)
    }
}

impl FromStr for Seed {
    type Err = BadSeed;

    fn from_str(input: &str) -> Result<Seed, BadSeed> {
        let bad = || BadSeed {
            input: input.to_owned(),
        };
        let trimmed = input.trim();
        let digits = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
            .unwrap_or(trimmed);
        if digits.is_empty() || digits.len() > 16 || !digits.chars().all(|c| c.is_ascii_hexdigit())
        {
            return Err(bad());
        }
        u64::from_str_radix(digits, 16).map(Seed).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::rand_core::RngCore;

    use super::*;

    #[test]
    fn seeds_round_trip_through_hex() {
        let seed = Seed(0xdead_beef);
        assert_eq!(seed.to_string(), "0x00000000deadbeef");
        assert_eq!("0x00000000deadbeef".parse::<Seed>(), Ok(seed));
        assert_eq!("DEADBEEF".parse::<Seed>(), Ok(seed));
        for bad in ["", "0x", "xyz", "0x1ffffffffffffffff", "-1", "0x 1"] {
            assert!(bad.parse::<Seed>().is_err(), "{bad:?} must not parse");
        }
    }

    #[test]
    fn streams_are_deterministic_and_independent() {
        let seed = Seed(42);
        assert_eq!(
            seed.stream("venue").next_u64(),
            seed.stream("venue").next_u64()
        );
        assert_ne!(
            seed.stream("venue").next_u64(),
            seed.stream("scenario").next_u64()
        );
        assert_ne!(
            seed.stream("venue").next_u64(),
            Seed(43).stream("venue").next_u64()
        );
    }
}
