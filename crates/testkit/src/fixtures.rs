//! Deterministic clock, ids and validation tokens for tests, and the command context
//! that uses them. Rows of every table: [`crate::rows`].

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
    /// A clock whose first read is `start` plus one millisecond.
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
    /// Ids `<prefix>1`, `<prefix>2`, ...
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

/// A command context with a stepping clock, sequential ids, validation tokens from the
/// operating system (unique, like in production) and the creator `test`.
pub fn context() -> CommandContext {
    CommandContext {
        clock: Arc::new(SteppingClock::default()),
        ids: Arc::new(SequentialIds::default()),
        tokens: Arc::new(tenancy_core::challenge::OsTokens),
        creator: "test".into(),
    }
}

/// The token [`FixedToken::default`] generates.
pub const TOKEN: &str = "testtokentesttokentesttoken";

/// A validation token generator that always returns the same token, so a test knows
/// what to publish in its DNS TXT record or HTTP file.
#[derive(Debug, Clone)]
pub struct FixedToken(pub String);

impl Default for FixedToken {
    fn default() -> Self {
        Self(TOKEN.into())
    }
}

impl tenancy_core::challenge::TokenGenerator for FixedToken {
    fn token(&self) -> tenancy_core::Result<String> {
        Ok(self.0.clone())
    }
}

/// [`context`] with validation tokens from [`FixedToken::default`].
pub fn context_with_fixed_token() -> CommandContext {
    CommandContext {
        tokens: Arc::new(FixedToken::default()),
        ..context()
    }
}
