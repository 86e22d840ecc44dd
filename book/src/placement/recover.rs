//! Recovery (SPEC §2.3): every `executing` intent is settled with the venue. The venue has
//! the order -> confirm it from the venue's record; the venue refused it -> `rejected`;
//! the venue never saw it -> release the reservation and return the intent to `pending`.
//! Never re-places.

use protocol::{OrderRequest, RecoveryReport, Side, VenueError, VenueOrder};

use super::confirm::Unplaced;
use crate::book::Book;
use crate::error::BookError;
use crate::events::category;
use crate::mutant;
use crate::store::{Isolation, Value};

impl Book {
    pub fn recover(&mut self) -> Result<RecoveryReport, BookError> {
        let executing = self.read_texts(
            "SELECT intent_id FROM intents WHERE status = 'executing' ORDER BY intent_id",
        )?;
        let mut report = RecoveryReport::default();
        for intent_id in executing {
            if mutant::rejects_without_asking(self.options.mutant) {
                self.settle_unplaced(&intent_id, Unplaced::Rejected("not asked"))?;
                report.released.push(intent_id);
                continue;
            }
            let found = match self.replace_blindly(&intent_id) {
                Some(replaced) => replaced,
                None => self.venue.find_order(&intent_id),
            };
            let found = match found {
                Err(_) if mutant::reads_lookup_error_as_not_found(self.options.mutant) => Ok(None),
                other => other,
            };
            // A look-up that failed settles nothing: the intent stays `executing` and the
            // next recovery asks again.
            let found = found.map_err(|source| BookError::VenueUncertain {
                intent_id: intent_id.clone(),
                source,
            })?;
            match found {
                Some(VenueOrder {
                    rejection: Some(reason),
                    ..
                }) => {
                    self.settle_unplaced(&intent_id, Unplaced::Rejected(&reason))?;
                    report.released.push(intent_id);
                }
                Some(order) => {
                    self.confirm_or_halt(&intent_id, &order, category::RECOVERY)?;
                    report.confirmed.push(intent_id);
                }
                None => {
                    self.settle_unplaced(&intent_id, Unplaced::NotAccepted(category::RECOVERY))?;
                    report.released.push(intent_id);
                }
            }
        }
        // Everything from before the open is settled now.
        self.unresolved = 0;
        Ok(report)
    }
}

impl Book {
    /// [`mutant::Mutant::BlindReplaceOnRecovery`]: places the intent again instead of
    /// asking the venue. `None` (always, without that mutant): ask.
    fn replace_blindly(
        &mut self,
        intent_id: &str,
    ) -> Option<Result<Option<VenueOrder>, VenueError>> {
        if !mutant::replaces_blindly(self.options.mutant) {
            return None;
        }
        let row = self
            .transact(Isolation::Read, "read", |transaction| {
                Ok(transaction.query_optional(
                    "SELECT symbol, side, size, price FROM intents WHERE intent_id = $1",
                    &[Value::from(intent_id)],
                )?)
            })
            .ok()
            .flatten();
        let Some([Value::Text(symbol), Value::Text(side), Value::Int(size), Value::Int(price)]) =
            row.as_deref()
        else {
            return Some(Ok(None));
        };
        let request = OrderRequest {
            client_order_id: intent_id.to_owned(),
            symbol: symbol.clone(),
            side: Side::parse(side).unwrap_or(Side::Buy),
            size: *size,
            price: *price,
            reduce_only: false,
        };
        Some(self.venue.place(&request).map(Some))
    }
}
