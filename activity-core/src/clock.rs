//! Where `created_at` comes from: the system clock in production, a fixed one in tests.

use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, OnceLock};

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

/// The time by the clock of the configuration in force here (its innermost
/// [`ActivityConfig::scope`](crate::ActivityConfig::scope), else the one [`init`](crate::init)
/// installed, else the system clock): what a new entry's `created_at` is.
///
/// The configuration keeps the clock here, beside itself, so an entry can be stamped without
/// the entry module depending on the configuration (which depends on entries through its
/// hooks).
pub fn now() -> DateTime<Utc> {
    SCOPED
        .try_with(|clock| clock.now())
        .unwrap_or_else(|_| INSTALLED.get().map_or_else(Utc::now, |clock| clock.now()))
}

tokio::task_local! {
    static SCOPED: Arc<dyn Clock>;
}

static INSTALLED: OnceLock<Arc<dyn Clock>> = OnceLock::new();

/// Run `fut` with `clock` as the current one (with its configuration's scope).
pub(crate) async fn scope<F: Future>(clock: Arc<dyn Clock>, fut: F) -> F::Output {
    SCOPED.scope(clock, fut).await
}

/// Install the process-wide clock (with its configuration's [`init`](crate::init)).
pub(crate) fn install(clock: Arc<dyn Clock>) {
    // Only ever called once, by the `init` that installed the configuration.
    let _ = INSTALLED.set(clock);
}
