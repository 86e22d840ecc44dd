//! The state a book's threads share in one process, and nothing else: the halt latch that
//! stops every new placement once the breaker trips or an outcome becomes unknown, and the
//! count of placements in flight (SPEC §2.6, §2.7, across threads).
//!
//! The property: **once [`Latch::halt`] returns, no placement is in flight and none can
//! start** until [`Latch::resume`]. A placement is the span between [`Latch::enter`] and
//! the drop of the [`Pass`] it returns; the book holds a pass exactly around its venue
//! call.
//!
//! Everything is behind one mutex and a condition variable, through [`sync`], which is
//! `loom::sync` under `cfg(loom)` and `std::sync` otherwise: `latch/tests/loom.rs` checks
//! the property over every interleaving within a preemption bound. (Not lock-free on
//! purpose: a store-then-load handshake on two atomics is exactly what loom cannot model
//! faithfully, and a placement is a network call, so a mutex costs nothing that shows.)

pub mod sync {
    //! `loom::sync` under `cfg(loom)`, `std::sync` otherwise.
    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicBool, Ordering};
    #[cfg(loom)]
    pub use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    #[cfg(not(loom))]
    pub use std::sync::atomic::{AtomicBool, Ordering};
    #[cfg(not(loom))]
    pub use std::sync::{Arc, Condvar, Mutex, MutexGuard};
}

use sync::{Arc, AtomicBool, Condvar, Mutex, MutexGuard, Ordering};

/// Why placements stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// The breaker tripped (its reason): it is OPEN in the database too.
    BreakerTripped(String),
    /// The venue may have accepted an order the book could not record: only an operator
    /// reset lets the book place again.
    OutcomeUnknown(String),
}

/// A deliberately broken latch, for the mutant the loom models must catch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// `enter` reads a relaxed "halted" flag as a fast path, then counts itself in flight
    /// without looking at the latch again: a halt that lands between the two returns while
    /// the placement is about to start.
    CheckedBeforeCount,
}

/// Shared by every book handle of one process (clones share the same state).
#[derive(Debug, Clone, Default)]
pub struct Latch {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    /// Signalled when the last placement in flight ends.
    idle: Condvar,
    /// A copy of "halted" for readers that only look (`Latch::is_halted`).
    halted: AtomicBool,
    flaw: Option<Flaw>,
}

#[derive(Debug, Default)]
struct State {
    halt: Option<Halt>,
    in_flight: usize,
}

/// One placement in flight; ends when dropped.
#[derive(Debug)]
#[must_use = "a placement is in flight only while its pass is held"]
pub struct Pass {
    inner: Arc<Inner>,
}

impl Latch {
    pub fn new() -> Latch {
        Latch::default()
    }

    /// A latch with `flaw` (mutants only).
    pub fn with_flaw(flaw: Flaw) -> Latch {
        Latch {
            inner: Arc::new(Inner {
                flaw: Some(flaw),
                ..Inner::default()
            }),
        }
    }

    /// Starts a placement, unless placements are halted.
    pub fn enter(&self) -> Result<Pass, Halt> {
        if self.inner.flaw == Some(Flaw::CheckedBeforeCount) {
            if self.inner.halted.load(Ordering::Relaxed) {
                return Err(self.halt_reason());
            }
            self.inner.lock().in_flight += 1;
            return Ok(self.pass());
        }
        let mut state = self.inner.lock();
        if let Some(halt) = &state.halt {
            return Err(halt.clone());
        }
        state.in_flight += 1;
        Ok(self.pass())
    }

    /// Stops new placements (the first reason stays) and returns once every placement in
    /// flight has ended.
    pub fn halt(&self, halt: Halt) {
        self.inner.halted.store(true, Ordering::Relaxed);
        let mut state = self.inner.lock();
        state.halt.get_or_insert(halt);
        while state.in_flight > 0 {
            state = self
                .inner
                .idle
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Lets placements start again (an operator reset the breaker).
    pub fn resume(&self) {
        let mut state = self.inner.lock();
        state.halt = None;
        self.inner.halted.store(false, Ordering::Relaxed);
    }

    /// Why placements are halted, if they are.
    pub fn halted(&self) -> Option<Halt> {
        self.inner.lock().halt.clone()
    }

    /// Placements in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.lock().in_flight
    }

    fn pass(&self) -> Pass {
        Pass {
            inner: Arc::clone(&self.inner),
        }
    }

    fn halt_reason(&self) -> Halt {
        self.halted()
            .unwrap_or_else(|| Halt::BreakerTripped("halted".to_owned()))
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        state.in_flight -= 1;
        if state.in_flight == 0 {
            self.inner.idle.notify_all();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_halt_refuses_new_placements_until_resumed() {
        let latch = Latch::new();
        let pass = latch.enter().expect("open");
        assert_eq!(latch.in_flight(), 1);
        drop(pass);
        latch.halt(Halt::OutcomeUnknown("recording failed".to_owned()));
        latch.halt(Halt::BreakerTripped("ManualTrip".to_owned()));
        assert_eq!(
            latch.enter().map(drop),
            Err(Halt::OutcomeUnknown("recording failed".to_owned())),
            "the first reason stays"
        );
        latch.resume();
        assert!(latch.enter().is_ok());
        assert_eq!(latch.in_flight(), 0);
    }

    #[test]
    fn a_halt_waits_for_the_placements_in_flight() {
        let latch = Latch::new();
        let pass = latch.enter().expect("open");
        let halting = latch.clone();
        let halter = std::thread::spawn(move || {
            halting.halt(Halt::BreakerTripped("ManualTrip".to_owned()));
            halting.in_flight()
        });
        // The halt cannot return while the pass is held; once it is dropped, it must.
        drop(pass);
        assert_eq!(halter.join().expect("halter"), 0);
        assert!(latch.enter().is_err());
    }
}
