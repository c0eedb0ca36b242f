//! Deterministic clock and ids for tests.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tenancy_core::command::CommandContext;
use tenancy_core::ports::{Clock, IdGenerator};
use time::{Duration, OffsetDateTime};

/// A clock that advances one millisecond on every read, from a fixed start.
#[derive(Debug)]
pub struct SteppingClock {
    now: Mutex<OffsetDateTime>,
}

impl SteppingClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }
}

impl Default for SteppingClock {
    fn default() -> Self {
        Self::new(time::macros::datetime!(2026-01-01 00:00:00 UTC))
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> OffsetDateTime {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += Duration::milliseconds(1);
        *now
    }
}

/// Ids `1`, `2`, `3`, ... (with an optional prefix).
#[derive(Debug, Default)]
pub struct SequentialIds {
    prefix: String,
    next: AtomicU64,
}

impl SequentialIds {
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            next: AtomicU64::new(0),
        }
    }
}

impl IdGenerator for SequentialIds {
    fn next_id(&self) -> tenancy_core::Result<String> {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(format!("{}{n}", self.prefix))
    }
}

/// A command context with a stepping clock and sequential ids.
pub fn context() -> CommandContext {
    CommandContext {
        clock: Arc::new(SteppingClock::default()),
        ids: Arc::new(SequentialIds::default()),
        tokens: Arc::new(tenancy_core::challenge::OsTokens),
        creator: "test".into(),
    }
}
