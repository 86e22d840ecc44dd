//! The reference trading book: the persistence patterns of SPEC §2 on SQLite and
//! PostgreSQL. It is what bookproof's gates verify out of the box, and the model a user
//! copies.
//!
//! Architecture invariants: the book never reads the wall clock (time comes from a
//! [`Clock`]), never uses floats for money, never keeps a source of truth in memory, and
//! knows nothing about the harness that tests it.

mod book;
pub mod breaker;
pub mod clock;
pub mod crash;
pub mod error;
pub mod events;
pub mod intent;
pub mod limits;
pub mod migrate;
pub mod mutant;
pub mod protocol;
pub mod schema;
pub mod store;
pub mod venue;
pub mod writeahead;

pub use crate::book::{Book, BookOptions, Limits, Mode, RunSpec};
pub use crate::breaker::{BreakerState, TripReason};
pub use crate::clock::{Clock, ManualClock};
pub use crate::crash::{CrashPlan, CrashSite, Crashed};
pub use crate::error::BookError;
pub use crate::intent::{Side, Signal};
pub use crate::mutant::Mutant;
pub use crate::store::{Backend, Store, StoreError, Value};
pub use crate::venue::{PaperVenue, Venue};
pub use crate::writeahead::{IntentStatus, Outcome, RecoveryReport};
