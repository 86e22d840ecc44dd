//! Time, from the caller. The book never reads the wall clock: every persisted timestamp
//! is logical milliseconds from a [`Clock`] it was given.

/// Milliseconds in one logical day; `day = now_ms / DAY_MS`.
pub const DAY_MS: i64 = 86_400_000;

pub trait Clock: Send {
    /// Logical milliseconds since the run's epoch. Must never go backwards.
    fn now_ms(&self) -> i64;
}

/// A clock that reads a shared counter the caller advances (a scenario, the `book` binary).
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now_ms: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

impl ManualClock {
    pub fn starting_at(now_ms: i64) -> ManualClock {
        ManualClock {
            now_ms: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(now_ms)),
        }
    }

    /// Moves time forward; moving it back is a caller bug.
    pub fn advance(&self, delta_ms: i64) {
        assert!(delta_ms >= 0, "logical time never goes backwards");
        self.now_ms
            .fetch_add(delta_ms, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn set(&self, now_ms: i64) {
        let previous = self
            .now_ms
            .swap(now_ms, std::sync::atomic::Ordering::SeqCst);
        assert!(now_ms >= previous, "logical time never goes backwards");
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}
