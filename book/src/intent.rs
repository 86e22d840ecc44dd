//! Signals and deterministic intent ids (SPEC §2.1).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => None,
        }
    }

    /// `qty` with the sign of this side (buy positive, sell negative).
    pub fn signed(self, qty: i64) -> i64 {
        match self {
            Side::Buy => qty,
            Side::Sell => -qty,
        }
    }
}

/// A strategy's decision to trade, as it arrives at the book. `size` is in base units,
/// `price` in minor currency units per base unit; both fixed-point integers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Signal {
    pub strategy: String,
    pub symbol: String,
    pub window_id: String,
    pub side: Side,
    pub size: i64,
    pub price: i64,
    /// The bar (logical ms) that produced the signal.
    pub bar_t: i64,
    /// The strategy's parameters, as the strategy renders them (part of the signal's
    /// identity and of the `last_signals` key).
    pub params: String,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid signal: {0}")]
pub struct InvalidSignal(pub String);

impl Signal {
    pub fn validate(&self) -> Result<(), InvalidSignal> {
        let name_ok = |name: &str| {
            !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|character| character.is_ascii_alphanumeric() || "_-.".contains(character))
        };
        for (field, value) in [
            ("strategy", &self.strategy),
            ("symbol", &self.symbol),
            ("window_id", &self.window_id),
        ] {
            if !name_ok(value) {
                return Err(InvalidSignal(format!(
                    "{field} {value:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'"
                )));
            }
        }
        if self.size <= 0 {
            return Err(InvalidSignal(format!(
                "size {} must be positive",
                self.size
            )));
        }
        if self.price <= 0 {
            return Err(InvalidSignal(format!(
                "price {} must be positive",
                self.price
            )));
        }
        if self.notional().is_none() {
            return Err(InvalidSignal(format!(
                "size {} times price {} overflows 64 bits",
                self.size, self.price
            )));
        }
        Ok(())
    }

    /// size * price, the exposure this signal reserves.
    pub fn notional(&self) -> Option<i64> {
        self.size.checked_mul(self.price)
    }

    /// The signal's content without its strategy and bar: canonical JSON, keys sorted.
    pub fn canonical(&self) -> String {
        serde_json::json!({
            "params": self.params,
            "price": self.price,
            "side": self.side,
            "size": self.size,
            "symbol": self.symbol,
            "window_id": self.window_id,
        })
        .to_string()
    }
}

/// First 16 hex digits of sha256(strategy :: canonical signal :: bar_t :: dataset_sha ::
/// run_seed). The same inputs give the same id on every run and after every restart; it is
/// also the client order id sent to the venue.
pub fn intent_id(signal: &Signal, dataset_sha: &str, run_seed: u64) -> String {
    let material = format!(
        "{}::{}::{}::{}::{:#018x}",
        signal.strategy,
        signal.canonical(),
        signal.bar_t,
        dataset_sha,
        run_seed
    );
    let digest = Sha256::digest(material.as_bytes());
    hex::encode(&digest[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal() -> Signal {
        Signal {
            strategy: "momentum".into(),
            symbol: "BTC-USD".into(),
            window_id: "w-0001".into(),
            side: Side::Buy,
            size: 3,
            price: 42_000_00,
            bar_t: 900_000,
            params: "fast=5,slow=20".into(),
        }
    }

    #[test]
    fn intent_id_is_stable_and_sensitive_to_every_input() {
        let id = intent_id(&signal(), "dataset", 7);
        assert_eq!(id.len(), 16);
        assert_eq!(id, intent_id(&signal(), "dataset", 7));
        assert_ne!(id, intent_id(&signal(), "dataset", 8));
        assert_ne!(id, intent_id(&signal(), "other", 7));
        let mut later = signal();
        later.bar_t += 1;
        assert_ne!(id, intent_id(&later, "dataset", 7));
        let mut bigger = signal();
        bigger.size += 1;
        assert_ne!(id, intent_id(&bigger, "dataset", 7));
    }
}
