//! The reference book (or one of its mutants) in this process, behind the contract: every
//! request goes through `book::serve`, exactly as the `book` binary serves its lines.

use book::{Book, BookOptions};
use protocol::{Problem, Request};

use super::Subject;
use crate::database::Database;
use crate::faults::{FaultyStore, StoreFaultPlan};
use crate::venue::SimVenue;
use crate::SimClock;

#[derive(Debug)]
pub struct ReferenceSubject {
    book: Book,
}

/// Opens the book on a new connection; with `faults`, on a [`FaultyStore`] around it.
pub fn open(
    database: &Database,
    venue: &SimVenue,
    clock: &SimClock,
    options: BookOptions,
    faults: Option<StoreFaultPlan>,
) -> Result<Box<dyn Subject>, Problem> {
    let store = database
        .connect()
        .map_err(|error| book::serve::problem(error.into()))?;
    let store: Box<dyn book::Store> = match faults {
        Some(plan) => Box::new(FaultyStore::new(store, plan)),
        None => store,
    };
    let book = Book::open(
        store,
        Box::new(venue.clone()),
        Box::new(clock.clone()),
        options,
    )
    .map_err(book::serve::problem)?;
    Ok(Box::new(ReferenceSubject { book }))
}

impl Subject for ReferenceSubject {
    // The case's clock is shared with the book, so it already reads the request's time.
    fn request(&mut self, request: Request) -> Result<serde_json::Value, Problem> {
        book::serve::serve(&mut self.book, request)
    }
}
