//! What the engine reports, and how a rebuild asks it to replay.

use rust_decimal::Decimal;

/// What one batch (or a catch-up of an instance) did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Events applied to the tables.
    pub applied: u64,
    /// v3-written events and events skipped after too many failures.
    pub skipped: u64,
    /// Failures recorded by this run.
    pub failed: u64,
    /// Events held back because an instance that is behind must move first (a custom
    /// domain it still holds, released by an event of its own before this one).
    pub deferred: u64,
    /// Another process holds this instance.
    pub busy: bool,
    /// Nothing left to read (up to the target).
    pub caught_up: bool,
}

impl Outcome {
    pub(crate) fn add(&mut self, other: Outcome) {
        self.applied += other.applied;
        self.skipped += other.skipped;
        self.failed += other.failed;
        self.deferred += other.deferred;
        self.busy |= other.busy;
        self.caught_up = other.caught_up;
    }
}

/// Replays v3-written events too (after a rebuild reset the tables), up to this position.
#[derive(Debug, Clone, Copy)]
pub struct ReplayV3(pub Decimal);
