//! Recovery (SPEC §2.3): every `executing` intent is settled with the venue. The venue has
//! the order -> confirm it from the venue's record; the venue refused it -> `rejected`;
//! the venue never saw it -> release the reservation and return the intent to `pending`.
//! Never re-places.

use protocol::{RecoveryReport, VenueOrder};

use super::confirm::Unplaced;
use crate::book::Book;
use crate::error::BookError;
use crate::events::category;

impl Book {
    pub fn recover(&mut self) -> Result<RecoveryReport, BookError> {
        let executing = self.read_texts(
            "SELECT intent_id FROM intents WHERE status = 'executing' ORDER BY intent_id",
        )?;
        let mut report = RecoveryReport::default();
        for intent_id in executing {
            let found = match self.replace_blindly(&intent_id) {
                Some(replaced) => replaced,
                None => self.venue.find_order(&intent_id),
            };
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
        Ok(report)
    }
}
