//! The system under test, as the gates see it: the operations a scenario needs and nothing
//! book-specific. The reference book implements it; mutants are the reference book with a
//! [`book::Mutant`] selected; a book written elsewhere can implement it too.

use book::{
    Book, BookError, BookOptions, BreakerState, Clock, Outcome, RecoveryReport, Signal, Store,
    TripReason, Venue,
};

pub trait Subject {
    fn submit(&mut self, signal: &Signal) -> Result<Outcome, BookError>;
    fn close_position(&mut self, intent_id: &str, exit_price: i64) -> Result<i64, BookError>;
    fn trip_breaker(&mut self, reason: TripReason, operator: &str) -> Result<(), BookError>;
    fn reset_breaker(&mut self, operator: &str, reason: &str) -> Result<(), BookError>;
    fn breaker(&mut self) -> Result<BreakerState, BookError>;
    fn roll_day(&mut self) -> Result<(), BookError>;
    fn checkpoint(&mut self, name: &str, value: &str) -> Result<(), BookError>;
    fn recover(&mut self) -> Result<RecoveryReport, BookError>;
    /// Records fills the venue has and the subject has not seen; returns how many.
    fn sync_fills(&mut self) -> Result<usize, BookError>;
    /// The id the subject gives a signal's intent (and sends as client order id).
    fn intent_id(&self, signal: &Signal) -> String;
}

impl Subject for Book {
    fn submit(&mut self, signal: &Signal) -> Result<Outcome, BookError> {
        Book::submit(self, signal)
    }

    fn close_position(&mut self, intent_id: &str, exit_price: i64) -> Result<i64, BookError> {
        Book::close_position(self, intent_id, exit_price)
    }

    fn trip_breaker(&mut self, reason: TripReason, operator: &str) -> Result<(), BookError> {
        Book::trip_breaker(self, reason, operator)
    }

    fn reset_breaker(&mut self, operator: &str, reason: &str) -> Result<(), BookError> {
        Book::reset_breaker(self, operator, reason)
    }

    fn breaker(&mut self) -> Result<BreakerState, BookError> {
        Book::breaker(self)
    }

    fn roll_day(&mut self) -> Result<(), BookError> {
        Book::roll_day(self)
    }

    fn checkpoint(&mut self, name: &str, value: &str) -> Result<(), BookError> {
        Book::checkpoint(self, name, value)
    }

    fn recover(&mut self) -> Result<RecoveryReport, BookError> {
        Book::recover(self)
    }

    fn sync_fills(&mut self) -> Result<usize, BookError> {
        Book::sync_fills(self)
    }

    fn intent_id(&self, signal: &Signal) -> String {
        Book::intent_id(self, signal)
    }
}

/// Opens the reference book (with the mutant in `options`, if any) as a [`Subject`].
pub fn open_reference(
    store: Box<dyn Store>,
    venue: Box<dyn Venue>,
    clock: Box<dyn Clock>,
    options: BookOptions,
) -> Result<Box<dyn Subject>, BookError> {
    Ok(Box::new(Book::open(store, venue, clock, options)?))
}
