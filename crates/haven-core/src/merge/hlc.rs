//! Hybrid logical clocks: wall-clock time that never runs backwards and
//! orders every event a replica makes, so that concurrent writes from
//! different devices can be ordered the same way everywhere.

use serde::{Deserialize, Serialize};

/// A hybrid logical clock stamp: milliseconds since the Unix epoch and a
/// counter for events within one millisecond. Ordered by both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Hlc {
    /// Wall-clock milliseconds (never less than any stamp seen before).
    pub millis: u64,
    /// Events within the same millisecond.
    pub counter: u32,
}

impl Hlc {
    /// This stamp, or `now + max_skew` (same counter) if it lies further in the future:
    /// the server bounds stamps so that a device with a clock set ahead
    /// cannot win every conflict for ever.
    pub fn bounded(self, now_millis: u64, max_skew_millis: u64) -> Hlc {
        let limit = now_millis.saturating_add(max_skew_millis);
        if self.millis > limit {
            Hlc { millis: limit, counter: self.counter }
        } else {
            self
        }
    }
}

/// One replica's clock.
///
/// ```
/// use haven_core::merge::{Hlc, HlcClock};
/// let mut clock = HlcClock::default();
/// let a = clock.now(1_000);
/// let b = clock.now(999); // the wall clock went back: the stamp does not
/// assert!(b > a);
/// clock.observe(Hlc { millis: 5_000, counter: 3 });
/// assert!(clock.now(1_001) > Hlc { millis: 5_000, counter: 3 });
/// ```
#[derive(Debug, Clone, Default)]
pub struct HlcClock {
    last: Hlc,
}

impl HlcClock {
    /// A clock that continues after `last` (as persisted).
    pub fn starting_after(last: Hlc) -> Self {
        HlcClock { last }
    }

    /// A new stamp, later than every stamp this clock made or observed.
    pub fn now(&mut self, wall_millis: u64) -> Hlc {
        self.last = if wall_millis > self.last.millis {
            Hlc { millis: wall_millis, counter: 0 }
        } else {
            Hlc { millis: self.last.millis, counter: self.last.counter.saturating_add(1) }
        };
        self.last
    }

    /// Takes note of a stamp from elsewhere, so that later local stamps
    /// order after it.
    pub fn observe(&mut self, remote: Hlc) {
        self.last = self.last.max(remote);
    }

    /// The last stamp made or observed (to persist).
    pub fn last(&self) -> Hlc {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_bounded() {
        let mut c = HlcClock::default();
        let stamps: Vec<Hlc> = [5, 5, 4, 6, 6].iter().map(|w| c.now(*w)).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
        let future = Hlc { millis: 10_000, counter: 9 };
        assert_eq!(future.bounded(1_000, 500), Hlc { millis: 1_500, counter: 9 });
        assert_eq!(future.bounded(10_000, 0), future);
    }
}
