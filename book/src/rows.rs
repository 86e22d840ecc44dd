//! Typed rows the book reads in more than one place. A leaf: it imports nothing of the
//! book, so every module can use it.

use protocol::Side;

/// An open position, as exit evaluation and verification need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OpenPosition {
    pub intent_id: String,
    pub symbol: String,
    pub side: Side,
    /// The intent's (entry) price.
    pub entry: i64,
    /// Signed quantity filled.
    pub qty: i64,
    /// What may still fill (its order is open at the venue), unsigned.
    pub unfilled: i64,
}
