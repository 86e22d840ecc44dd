//! The reference trading book: the persistence patterns of SPEC §2 on SQLite and
//! PostgreSQL. It is what bookproof's gates verify out of the box, and the model a user
//! copies. It implements the contract of the `protocol` crate: [`serve::serve`] answers
//! every request, in this process or behind the `book` binary.
//!
//! Architecture invariants: the book never reads the wall clock (time comes from a
//! [`Clock`]), never uses floats for money, never keeps a source of truth in memory, and
//! knows nothing about the harness that tests it.

mod book;
pub mod breaker;
pub mod clock;
mod commands;
pub mod config;
pub mod crash;
pub mod error;
pub mod events;
pub mod intent;
pub mod limits;
pub mod migrate;
pub mod mutant;
mod placement;
mod positions;
pub mod process;
mod rows;
pub mod schema;
pub mod serve;
mod state;
pub mod store;
pub mod sync_point;
pub mod verify;

pub use crate::book::{Book, BookOptions, Limits, Mode, RunSpec};
pub use crate::clock::{Clock, ManualClock};
pub use crate::crash::{CrashPlan, Crashed, Firing};
pub use crate::error::BookError;
pub use crate::mutant::Mutant;
pub use crate::store::{Backend, Store, StoreError, Value};
pub use crate::sync_point::SyncPoints;
pub use latch::{Halt, Latch};
