//! Sync points: named places in the book where a test parks threads until it releases
//! them, to force an exact interleaving (both threads past their checks before either
//! writes, say). Like crash points they are inert unless armed, and a book without
//! [`SyncPoints`] in its options passes them without a lock.
//!
//! The points: [`BEFORE_RESERVE`] (a validated signal, before the reserve transaction) and
//! [`BEFORE_VENUE`] (reserved, before the venue call).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// A validated signal, before its reserve transaction begins.
pub const BEFORE_RESERVE: &str = "submit.before_reserve";
/// Reserved, before the venue call.
pub const BEFORE_VENUE: &str = "submit.before_venue";

/// Shared by the test and every book handle it parks (clones share the same points).
#[derive(Debug, Clone, Default)]
pub struct SyncPoints {
    inner: Arc<(Mutex<Points>, Condvar)>,
}

#[derive(Debug, Default)]
struct Points {
    armed: BTreeMap<&'static str, Point>,
}

#[derive(Debug, Default)]
struct Point {
    /// Threads that reached it, parked or released.
    arrived: usize,
    /// Every thread may go on.
    released: bool,
    /// Parked threads that may go on, one each ([`SyncPoints::release_one`]).
    permits: usize,
}

impl SyncPoints {
    pub fn new() -> SyncPoints {
        SyncPoints::default()
    }

    /// Threads that reach `name` from now on park there until [`SyncPoints::release`].
    pub fn arm(&self, name: &'static str) {
        self.lock().armed.insert(name, Point::default());
    }

    /// Waits until `count` threads have reached `name`. `within` only bounds a test that
    /// would otherwise hang (a thread that never comes): it is an error, never a
    /// synchronisation.
    pub fn wait_for(&self, name: &str, count: usize, within: Duration) -> Result<(), String> {
        let arrived = |points: &Points| points.armed.get(name).map_or(0, |point| point.arrived);
        let (points, _) = self
            .inner
            .1
            .wait_timeout_while(self.lock(), within, |points| arrived(points) < count)
            .unwrap_or_else(PoisonError::into_inner);
        let arrived = arrived(&points);
        if arrived >= count {
            return Ok(());
        }
        Err(format!(
            "only {arrived} of {count} threads reached sync point {name} within {} s",
            within.as_secs()
        ))
    }

    /// Lets one thread parked at `name` (whichever) go on.
    pub fn release_one(&self, name: &str) {
        if let Some(point) = self.lock().armed.get_mut(name) {
            point.permits += 1;
        }
        self.inner.1.notify_all();
    }

    /// Lets every thread parked at `name` go on, and every later one pass.
    pub fn release(&self, name: &str) {
        if let Some(point) = self.lock().armed.get_mut(name) {
            point.released = true;
        }
        self.inner.1.notify_all();
    }

    /// Threads that have reached `name`.
    pub fn arrived(&self, name: &str) -> usize {
        self.lock().armed.get(name).map_or(0, |point| point.arrived)
    }

    /// The book side: parks here while `name` is armed and not released.
    pub(crate) fn pass(&self, name: &'static str) {
        let mut points = self.lock();
        let Some(point) = points.armed.get_mut(name) else {
            return;
        };
        point.arrived += 1;
        self.inner.1.notify_all();
        loop {
            let Some(point) = points.armed.get_mut(name) else {
                return;
            };
            if point.released {
                return;
            }
            if point.permits > 0 {
                point.permits -= 1;
                return;
            }
            points = self
                .inner
                .1
                .wait(points)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Points> {
        self.inner.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Passes `name` if the book has sync points.
pub(crate) fn pass(points: Option<&SyncPoints>, name: &'static str) {
    if let Some(points) = points {
        points.pass(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_park_at_an_armed_point_until_released() {
        let points = SyncPoints::new();
        points.arm(BEFORE_RESERVE);
        let parked: Vec<_> = (0..2)
            .map(|_| {
                let points = points.clone();
                std::thread::spawn(move || pass(Some(&points), BEFORE_RESERVE))
            })
            .collect();
        points
            .wait_for(BEFORE_RESERVE, 2, Duration::from_secs(30))
            .expect("both arrive");
        points.release(BEFORE_RESERVE);
        for thread in parked {
            thread.join().expect("released");
        }
        // One at a time.
        points.arm(BEFORE_VENUE);
        let one = {
            let points = points.clone();
            std::thread::spawn(move || pass(Some(&points), BEFORE_VENUE))
        };
        points
            .wait_for(BEFORE_VENUE, 1, Duration::from_secs(30))
            .expect("arrives");
        points.release_one(BEFORE_VENUE);
        one.join().expect("released one");
        points.release(BEFORE_VENUE);
        // Unarmed points and released ones do not park.
        pass(Some(&points), BEFORE_VENUE);
        pass(Some(&points), BEFORE_RESERVE);
        assert_eq!(points.arrived(BEFORE_RESERVE), 3);
    }

    #[test]
    fn waiting_for_threads_that_never_come_is_an_error() {
        let points = SyncPoints::new();
        points.arm(BEFORE_VENUE);
        let waited = points.wait_for(BEFORE_VENUE, 1, Duration::from_millis(10));
        assert!(waited.is_err_and(|error| error.contains("only 0 of 1")));
    }
}
