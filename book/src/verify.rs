//! Verify before act (SPEC §2.8): before stop-loss and take-profit evaluate, the venue's
//! positions are compared with the book's.
//!
//! - The venue holds positions the book lacks: the breaker trips (StopLossBlind or
//!   TakeProfitBlind) and nothing is evaluated: never an empty list evaluated silently.
//! - The book holds more than the venue: an orphan, reported as a warning; no halt.
//! - The venue answers 429 or 503: a verification under 30 s old (logical time) is used
//!   with a warning; an older one trips the breaker (VerificationRateLimited). A
//!   Retry-After is honoured: the venue is not asked again before it has passed.
//! - Any other failure (a 500, a timeout) is an error, never "no positions".
//! - Paper mode skips the venue with a warning; the book's own checks still run.
//!
//! Stop-loss and take-profit read the open positions from the database, never from memory.
//! Exits are placements: nothing is evaluated while the breaker is OPEN, while the book is
//! halted, or before a recovery the book needs; an operator can still close by hand.

use std::collections::{BTreeMap, BTreeSet};

use protocol::{
    Exit, ExitReason, ExitReport, Mark, Side, TripReason, VenueError, VenuePosition, Verification,
};

use crate::book::{Book, Mode};
use crate::breaker;
use crate::error::BookError;
use crate::mutant;
use crate::positions::Closer;
use crate::rows::OpenPosition as Held;
use crate::store::{Isolation, Value};

/// How a verification went: (how, orphan symbols, warnings).
type Verified = (Verification, Vec<String>, Vec<String>);

/// A verification younger than this stands in for one the venue cannot give now.
pub const VERIFICATION_FRESH_MS: i64 = 30_000;
/// The checkpoint holding when the venue's positions were last verified.
pub const VERIFIED_AT: &str = "verified_at";
/// The checkpoint holding until when the venue asked not to be asked (Retry-After).
pub const RETRY_AFTER: &str = "venue_retry_after";

impl Book {
    /// Verifies, then closes every open position whose mark crossed its stop-loss (if
    /// `stop_loss`) or take-profit (if `take_profit`).
    pub fn evaluate_exits(
        &mut self,
        marks: &[Mark],
        stop_loss: bool,
        take_profit: bool,
    ) -> Result<ExitReport, BookError> {
        // Exits are placements: not while halted, not before recovery, not while OPEN.
        self.ensure_not_halted()?;
        self.ensure_resolved()?;
        let mutant = self.options.mutant;
        self.transact(Isolation::Read, "read", |transaction| {
            breaker::ensure_closed(transaction, mutant)
        })?;
        let blind = if stop_loss {
            TripReason::StopLossBlind
        } else {
            TripReason::TakeProfitBlind
        };
        let (verification, orphans, warnings) = self.verify(blind)?;
        let marks: BTreeMap<&str, i64> = marks
            .iter()
            .map(|mark| (mark.symbol.as_str(), mark.price))
            .collect();
        let mut exits = Vec::new();
        for held in self.held_for_exits()? {
            let Some(mark) = marks.get(held.symbol.as_str()).copied() else {
                continue;
            };
            let Some(reason) = self.due(&held, mark, stop_loss, take_profit) else {
                continue;
            };
            let command_id = format!("exit:{}", held.intent_id);
            let closed = self.close_by(&held.intent_id, mark, Some(&command_id), Closer::Exits);
            let (realized_pnl, refused) = match closed {
                Ok(pnl) => (Some(pnl), None),
                Err(
                    refusal @ (BookError::VenueUnavailable { .. }
                    | BookError::VenueUncertain { .. }),
                ) => (None, Some(refusal.to_string())),
                Err(other) => return Err(other),
            };
            exits.push(Exit {
                intent_id: held.intent_id,
                reason,
                realized_pnl,
                refused,
            });
        }
        Ok(ExitReport {
            verification,
            orphans,
            warnings,
            exits,
        })
    }

    fn due(
        &self,
        held: &Held,
        mark: i64,
        stop_loss: bool,
        take_profit: bool,
    ) -> Option<ExitReason> {
        let limits = self.options.limits;
        // Against the position: down for a long, up for a short.
        let against = held.side.signed(held.entry - mark);
        if stop_loss && against * 1_000_000 >= held.entry * limits.stop_loss {
            return Some(ExitReason::StopLoss);
        }
        if take_profit && -against * 1_000_000 >= held.entry * limits.take_profit {
            return Some(ExitReason::TakeProfit);
        }
        None
    }

    /// The open positions, from the database (or, under a mutant, from memory).
    fn held_for_exits(&mut self) -> Result<Vec<Held>, BookError> {
        if let Some(cached) = self.mutant_state.cached_positions() {
            return Ok(cached.to_vec());
        }
        self.open_positions()
    }

    pub(crate) fn open_positions(&mut self) -> Result<Vec<Held>, BookError> {
        self.transact(Isolation::Read, "read", |transaction| {
            let rows = transaction.query(
                "SELECT p.intent_id, p.symbol, i.side, i.price, p.qty, \
                 CASE WHEN o.status = 'open' THEN i.size - ABS(p.qty) ELSE 0 END \
                 FROM positions p JOIN intents i ON i.intent_id = p.intent_id \
                 LEFT JOIN orders o ON o.intent_id = p.intent_id \
                 WHERE p.status = 'open' ORDER BY p.intent_id",
                &[],
            )?;
            Ok(rows.rows.iter().filter_map(|row| held(row)).collect())
        })
    }

    /// What the book may hold of each symbol: its open positions, what their open orders
    /// may still fill, and what its executing intents may have placed.
    fn exposure(&mut self) -> Result<BTreeMap<String, Exposure>, BookError> {
        let mut exposure: BTreeMap<String, Exposure> = BTreeMap::new();
        for held in self.open_positions()? {
            let symbol = exposure.entry(held.symbol).or_default();
            symbol.known += held.qty;
            symbol.may(held.side.signed(held.unfilled));
        }
        let executing = self.transact(Isolation::Read, "read", |transaction| {
            Ok(transaction.query(
                "SELECT symbol, side, size FROM intents WHERE status = 'executing'",
                &[],
            )?)
        })?;
        for row in &executing.rows {
            if let [Value::Text(symbol), Value::Text(side), Value::Int(size)] = row.as_slice() {
                let side = Side::parse(side).unwrap_or(Side::Buy);
                exposure
                    .entry(symbol.clone())
                    .or_default()
                    .may(side.signed(*size));
            }
        }
        Ok(exposure)
    }

    /// Compares the venue's positions with the book's; see the module documentation.
    fn verify(&mut self, blind: TripReason) -> Result<Verified, BookError> {
        if self.options.run.mode == Mode::Paper {
            return Ok((
                Verification::Skipped,
                Vec::new(),
                vec!["paper mode: the venue's positions were not verified".to_owned()],
            ));
        }
        let now = self.now_ms();
        let verified_at = self.checkpoint_ms(VERIFIED_AT)?;
        let retry_until = self.checkpoint_ms(RETRY_AFTER)?;
        let asked = match retry_until {
            // Honour Retry-After: do not ask before it passed.
            Some(until) if now < until => Err(VenueError::RateLimited {
                status: 429,
                retry_after_ms: None,
            }),
            _ => mutant::verified_positions(self.options.mutant, self.venue.positions()),
        };
        match asked {
            Ok(venue) => self.judge(venue, blind, verified_at),
            Err(VenueError::RateLimited { retry_after_ms, .. }) => {
                // Written when it changes: a verification sent again after a crash at the
                // same moment writes nothing new.
                let until = retry_after_ms.map(|wait| now + wait);
                if until.is_some() && until != retry_until {
                    let until = until.unwrap_or_default().to_string();
                    self.checkpoint(RETRY_AFTER, &until, None)?;
                }
                match verified_at.map(|at| now - at) {
                    Some(age_ms) if age_ms < VERIFICATION_FRESH_MS => Ok((
                        Verification::Cached { age_ms },
                        Vec::new(),
                        vec![format!(
                            "the venue is rate limiting: using the verification of {age_ms} ms ago"
                        )],
                    )),
                    _ => {
                        self.trip_breaker(TripReason::VerificationRateLimited, "verifier", None)?;
                        Err(BookError::VerificationRateLimited)
                    }
                }
            }
            Err(source) => Err(BookError::VerificationFailed { source }),
        }
    }

    /// The venue answered with its positions: blindness trips, orphans warn, and the
    /// verification's time is written (when it changes).
    fn judge(
        &mut self,
        venue: Vec<VenuePosition>,
        blind: TripReason,
        verified_at: Option<i64>,
    ) -> Result<Verified, BookError> {
        let venue: BTreeMap<String, i64> = venue
            .into_iter()
            .map(|position| (position.symbol, position.qty))
            .collect();
        let (blinds, orphans) = compare(&venue, &self.exposure()?);
        if !blinds.is_empty() {
            self.trip_breaker(blind, "verifier", None)?;
            return Err(BookError::Blind { symbols: blinds });
        }
        let now = self.now_ms();
        if verified_at != Some(now) {
            self.checkpoint(VERIFIED_AT, &now.to_string(), None)?;
        }
        let warnings = orphans
            .iter()
            .map(|symbol| {
                format!("the book holds more {symbol} than the venue: flagged for investigation")
            })
            .collect();
        Ok((Verification::Verified, orphans, warnings))
    }

    fn checkpoint_ms(&mut self, name: &str) -> Result<Option<i64>, BookError> {
        Ok(self
            .read_checkpoint(name)?
            .and_then(|value| value.parse().ok()))
    }
}

fn held(row: &[Value]) -> Option<Held> {
    match row {
        [Value::Text(intent_id), Value::Text(symbol), Value::Text(side), Value::Int(entry), Value::Int(qty), Value::Int(unfilled)] => {
            Some(Held {
                intent_id: intent_id.clone(),
                symbol: symbol.clone(),
                side: Side::parse(side)?,
                entry: *entry,
                qty: *qty,
                unfilled: *unfilled,
            })
        }
        _ => None,
    }
}

/// What the book may hold of a symbol (signed quantities).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Exposure {
    /// Filled, in its open positions.
    known: i64,
    /// What may still fill, short and long: the book may hold from `known + down` to
    /// `known + up`.
    down: i64,
    up: i64,
}

impl Exposure {
    fn may(&mut self, signed: i64) {
        if signed < 0 {
            self.down += signed;
        } else {
            self.up += signed;
        }
    }
}

/// (blind: symbols where the venue holds more, long or short, than anything the book
/// holds or may hold explains; orphans: symbols where the book holds more than the venue).
fn compare(
    venue: &BTreeMap<String, i64>,
    book: &BTreeMap<String, Exposure>,
) -> (Vec<String>, Vec<String>) {
    let symbols: BTreeSet<&String> = venue.keys().chain(book.keys()).collect();
    let (mut blinds, mut orphans) = (Vec::new(), Vec::new());
    for symbol in symbols {
        let at_venue = venue.get(symbol).copied().unwrap_or(0);
        let held = book.get(symbol).copied().unwrap_or_default();
        let (lowest, highest) = (held.known + held.down, held.known + held.up);
        if at_venue > highest.max(0) || at_venue < lowest.min(0) {
            blinds.push(symbol.clone());
        } else if (held.known > 0 && at_venue < held.known)
            || (held.known < 0 && at_venue > held.known)
        {
            orphans.push(symbol.clone());
        }
    }
    (blinds, orphans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compared(venue: i64, known: i64, down: i64, up: i64) -> (bool, bool) {
        let venue = BTreeMap::from([("X".to_owned(), venue)]);
        let book = BTreeMap::from([("X".to_owned(), Exposure { known, down, up })]);
        let (blinds, orphans) = compare(&venue, &book);
        (!blinds.is_empty(), !orphans.is_empty())
    }

    #[test]
    fn the_venue_beyond_what_the_book_may_hold_is_blindness_and_less_is_an_orphan() {
        // (venue, known, down, up) -> (blind, orphan)
        assert_eq!(compared(2, 2, 0, 0), (false, false));
        assert_eq!(compared(3, 2, 0, 0), (true, false), "more long than held");
        assert_eq!(
            compared(-1, 2, 0, 0),
            (true, false),
            "a short the book lacks"
        );
        assert_eq!(compared(0, 2, 0, 0), (false, true), "the venue closed it");
        assert_eq!(compared(1, 2, 0, 0), (false, true));
        assert_eq!(compared(4, 2, 0, 2), (false, false), "still filling");
        assert_eq!(compared(5, 2, 0, 2), (true, false));
        assert_eq!(compared(-3, -2, -1, 0), (false, false));
        assert_eq!(compared(-4, -2, -1, 0), (true, false));
        assert_eq!(compared(0, -2, 0, 0), (false, true));
        assert_eq!(compared(0, 0, 0, 0), (false, false));
        assert_eq!(
            compared(1, 0, 0, 0),
            (true, false),
            "a position the book never had"
        );
    }
}
