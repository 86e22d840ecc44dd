//! Signals and deterministic intent ids (SPEC §2.1). The signal itself is the contract's
//! [`protocol::Signal`]; what a valid signal is and how its id is derived are the book's.

use sha2::{Digest, Sha256};

pub use protocol::{Side, Signal};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid signal: {0}")]
pub struct InvalidSignal(pub String);

/// Refuses a signal the book cannot store: names outside a safe alphabet, a size or price
/// that is not positive, a notional that overflows.
pub fn validate(signal: &Signal) -> Result<(), InvalidSignal> {
    let name_ok = |name: &str| {
        !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || "_-.".contains(character))
    };
    for (field, value) in [
        ("strategy", &signal.strategy),
        ("symbol", &signal.symbol),
        ("window_id", &signal.window_id),
    ] {
        if !name_ok(value) {
            return Err(InvalidSignal(format!(
                "{field} {value:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'"
            )));
        }
    }
    if signal.size <= 0 {
        return Err(InvalidSignal(format!(
            "size {} must be positive",
            signal.size
        )));
    }
    if signal.price <= 0 {
        return Err(InvalidSignal(format!(
            "price {} must be positive",
            signal.price
        )));
    }
    if signal.notional().is_none() {
        return Err(InvalidSignal(format!(
            "size {} times price {} overflows 64 bits",
            signal.size, signal.price
        )));
    }
    Ok(())
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

    #[test]
    fn invalid_signals_are_refused_with_the_field_named() {
        let mut bad = signal();
        bad.window_id = "w 1".into();
        assert!(validate(&bad).is_err_and(|error| error.0.contains("window_id")));
        let mut bad = signal();
        bad.size = 0;
        assert!(validate(&bad).is_err_and(|error| error.0.contains("size")));
        let mut bad = signal();
        bad.price = i64::MAX;
        assert!(validate(&bad).is_err_and(|error| error.0.contains("overflows")));
        assert_eq!(validate(&signal()), Ok(()));
    }
}
