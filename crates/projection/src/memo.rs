//! What the engine remembers between batches: which instances go through batches, which
//! were found fresh, and how many rows the catch-up wrote since the last `ANALYZE`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// A set of instance ids shared by the engine's workers.
#[derive(Debug, Default)]
pub(crate) struct InstanceSet(Mutex<HashSet<String>>);

impl InstanceSet {
    // No code panics while holding the lock, so a poisoned set is still a valid one.
    pub(crate) fn contains(&self, instance_id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(instance_id)
    }

    /// Forgets every instance (the tables were reset: nothing learned before holds).
    pub(crate) fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    pub(crate) fn insert(&self, instance_id: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(instance_id.to_owned());
    }
}

/// Instances that go through batches from now on (they have a cursor, rows, or their bulk
/// catch-up fell back), so later calls skip the check.
pub(crate) type Batched = InstanceSet;

/// Rows the catch-up wrote, and how many there were when the tables were last analysed
/// (at first, the rows the statistics counted when the process started: a process that
/// starts on large tables does not analyse them after its first 5,000 rows, 10,000, ...).
/// Index choice does not depend on the statistics (tenancy_postgres::pool); the
/// selectivity estimates do (e.g. how many domains an instance has), so they are refreshed
/// whenever the writes have doubled the rows since the last `ANALYZE`, instead of waiting
/// for autovacuum's next round.
#[derive(Debug, Default)]
pub(crate) struct Statistics {
    written: AtomicU64,
    analyzed_at: AtomicU64,
    seeded: AtomicBool,
}

/// Below this, the statistics of analysed-empty tables serve well enough.
const ANALYZE_FROM_ROWS: u64 = 5_000;

impl Statistics {
    /// Whether the rows present at the start are still to be counted ([`Statistics::seed`]).
    pub(crate) fn needs_seed(&self) -> bool {
        !self.seeded.load(Ordering::Relaxed)
    }

    /// Counts the `rows` the tables held, as analysed, before this process wrote any
    /// (once; later calls change nothing).
    pub(crate) fn seed(&self, rows: u64) {
        if !self.seeded.swap(true, Ordering::Relaxed) {
            self.written.fetch_add(rows, Ordering::Relaxed);
            self.analyzed_at.fetch_max(rows, Ordering::Relaxed);
        }
    }

    /// Counts `rows` written; true when this caller should refresh the statistics now.
    pub(crate) fn wrote(&self, rows: u64) -> bool {
        let written = self.written.fetch_add(rows, Ordering::Relaxed) + rows;
        let at = self.analyzed_at.load(Ordering::Relaxed);
        written >= ANALYZE_FROM_ROWS.max(2 * at)
            && self
                .analyzed_at
                .compare_exchange(at, written, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// True when rows were written since the last refresh (and claims it).
    pub(crate) fn stale(&self) -> bool {
        let written = self.written.load(Ordering::Relaxed);
        let at = self.analyzed_at.load(Ordering::Relaxed);
        written > at
            && self
                .analyzed_at
                .compare_exchange(at, written, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::Statistics;

    #[test]
    fn statistics_are_refreshed_when_the_rows_have_doubled_since_the_last_count() {
        let fresh = Statistics::default();
        fresh.seed(0);
        assert!(!fresh.wrote(4_999));
        assert!(fresh.wrote(1));
        assert!(!fresh.wrote(4_999));
        assert!(fresh.wrote(1));

        // A process that starts on 100,000 analysed rows refreshes once they are 200,000.
        let large = Statistics::default();
        large.seed(100_000);
        large.seed(1);
        assert!(!large.wrote(5_000));
        assert!(!large.wrote(94_999));
        assert!(large.wrote(1));
        assert!(!large.stale());
        assert!(!large.wrote(1));
        assert!(large.stale());
    }
}
