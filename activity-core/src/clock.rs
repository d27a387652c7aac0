//! Where `created_at` comes from: the system clock in production, a fixed one in tests.

use std::fmt::Debug;

use chrono::{DateTime, Utc};

/// A source of timestamps for new entries.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that always returns the same instant.
///
/// ```
/// use activity_core::{Clock, FixedClock};
/// let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().to_utc();
/// assert_eq!(FixedClock(t).now(), t);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}
