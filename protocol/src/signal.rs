//! Signals: a strategy's decision to trade, as it arrives at a book.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

    /// The side that closes a position of this side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
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

/// A strategy's decision to trade. `size` is in base units, `price` in minor currency
/// units per base unit; both fixed-point integers.
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

impl Signal {
    /// size * price, the exposure this signal reserves; `None` if it overflows.
    pub fn notional(&self) -> Option<i64> {
        self.size.checked_mul(self.price)
    }

    /// The signal's content without its strategy and bar, as canonical JSON (keys sorted):
    /// the "canonical signal" of SPEC §2.1.
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
