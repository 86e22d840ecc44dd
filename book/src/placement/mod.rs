//! Write-ahead placement and recovery (SPEC §2.2–2.4).
//!
//! [`Book::submit`] reserves (one transaction: intent `executing`, window entry, counters;
//! `reserve.rs`), acts (the venue call, outside any transaction), then confirms (one
//! transaction: order, fills, position, intent `completed`; `confirm.rs`) or settles an
//! order the venue did not take. After a crash, [`Book::recover`] (`recover.rs`) asks the
//! venue about every `executing` intent by client order id and confirms or releases it.
//! Nothing is ever re-placed without asking. `fills.rs` records fills the venue reports
//! later.

mod confirm;
pub(crate) mod fills;
mod recover;
mod reserve;

use protocol::{CrashPoint, OrderRequest, Outcome, VenueError, VenueOrder};

use crate::book::Book;
use crate::crash;
use crate::error::BookError;
use crate::events::category;
use crate::intent::{self, Signal};
use crate::mutant;
use crate::sync_point;

use self::confirm::Unplaced;
use self::reserve::Reservation;

impl Book {
    /// Places `signal` at most once, whatever happened before (SPEC §2.2, §2.3).
    pub fn submit(&mut self, signal: &Signal) -> Result<Outcome, BookError> {
        intent::validate(signal)?;
        self.ensure_not_halted()?;
        self.ensure_resolved()?;
        self.checked_first(signal)?;
        sync_point::pass(
            self.options.sync_points.as_ref(),
            sync_point::BEFORE_RESERVE,
        );
        let intent_id = match self.reserve(signal)? {
            Reservation::Existing { intent_id, status } => {
                return Ok(Outcome::Existing { intent_id, status })
            }
            Reservation::Reserved { intent_id } => intent_id,
        };
        let request = OrderRequest {
            client_order_id: intent_id.clone(),
            symbol: signal.symbol.clone(),
            side: signal.side,
            size: signal.size,
            price: signal.price,
            reduce_only: false,
        };
        sync_point::pass(self.options.sync_points.as_ref(), sync_point::BEFORE_VENUE);
        let pass = match self.enter_placement() {
            Ok(pass) => pass,
            // Halted since the reservation (a trip, an unknown outcome on another thread):
            // nothing goes to the venue; the reservation is released.
            Err(halted) => {
                self.settle_unplaced(&intent_id, Unplaced::Halted)?;
                return Err(halted);
            }
        };
        let placed = self.venue.place(&request);
        drop(pass);
        // Between the venue call and the confirm: the order may exist at the venue while
        // the book only knows an executing intent.
        crash::pass(self.options.crash_plan.as_ref(), CrashPoint::AfterVenueCall)?;
        self.settle_placement(intent_id, placed)
    }

    /// Records what the venue answered to a placement.
    fn settle_placement(
        &mut self,
        intent_id: String,
        placed: Result<VenueOrder, VenueError>,
    ) -> Result<Outcome, BookError> {
        match placed {
            Ok(order) => {
                self.confirm_or_halt(&intent_id, &order, category::ORDER)?;
                Ok(Outcome::Placed {
                    client_order_id: order.client_order_id,
                    order_id: order.venue_order_id,
                    intent_id,
                })
            }
            Err(VenueError::Rejected { reason }) => {
                self.settle_unplaced(&intent_id, Unplaced::Rejected(&reason))?;
                Ok(Outcome::Rejected {
                    client_order_id: intent_id.clone(),
                    intent_id,
                    reason,
                })
            }
            Err(source @ VenueError::RateLimited { .. }) => {
                self.settle_unplaced(&intent_id, Unplaced::NotAccepted(category::INTENT))?;
                Err(BookError::VenueUnavailable { intent_id, source })
            }
            Err(VenueError::Duplicate { client_order_id })
                if mutant::duplicate_is_final(self.options.mutant) =>
            {
                let reason = format!("duplicate client order id {client_order_id}");
                self.settle_unplaced(&intent_id, Unplaced::Rejected(&reason))?;
                Ok(Outcome::Rejected {
                    client_order_id,
                    intent_id,
                    reason,
                })
            }
            Err(source @ VenueError::Duplicate { .. }) => self.confirm_existing(intent_id, source),
            Err(source @ (VenueError::Timeout | VenueError::Internal { .. })) => {
                Err(BookError::VenueUncertain { intent_id, source })
            }
        }
    }

    /// The venue already holds this client order id (the book placed it before and never
    /// learned it): what it holds is the placement. Asked for and confirmed; a venue that
    /// will not show it leaves the intent `executing` for recovery.
    fn confirm_existing(
        &mut self,
        intent_id: String,
        duplicate: VenueError,
    ) -> Result<Outcome, BookError> {
        match self.venue.find_order(&intent_id) {
            Ok(Some(order)) => self.settle_placement(
                intent_id,
                match order.rejection {
                    Some(reason) => Err(VenueError::Rejected { reason }),
                    None => Ok(order),
                },
            ),
            Ok(None) => Err(BookError::VenueUncertain {
                intent_id,
                source: duplicate,
            }),
            Err(source) => Err(BookError::VenueUncertain { intent_id, source }),
        }
    }
}
