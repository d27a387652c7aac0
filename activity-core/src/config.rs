//! Every setting of the activity log in one value, [`ActivityConfig`].
//!
//! Hooks run inside SeaORM's `ActiveModelBehavior`, which has no place to carry configuration,
//! so the configuration is ambient: installed once at start-up with [`init`] (a second install
//! is an error, as with `tracing`'s global default), and overridable for one task and the
//! futures it awaits with [`ActivityConfig::scope`] (tests run side by side in one process, each
//! with its own clock or policy). Nothing else that decides what is written is process-wide.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use crate::clock::{Clock, SystemClock};
use crate::entry::ActivityEntry;
use crate::hooks::{ActivityHooks, NoHooks};
use crate::policy::ReadPolicy;

/// A scope-specific describer ([`describe`](crate::describe())); return `None` to fall back
/// to the generic sentence.
pub type Describer = fn(&ActivityEntry) -> Option<String>;

/// Default largest log INSERT sent to a network server, in bytes on the wire;
/// [`ActivityConfig::with_wire_budget`] changes it.
///
/// 64 KiB: one INSERT per transaction up to ~150 small entries, so a transaction of 100
/// updates sends exactly one extra statement. It was 12 KiB while sqlx 0.9.0 left Nagle's
/// algorithm on (a message larger than the socket's send buffer then stalled ~40 ms on the
/// server's delayed ACK: one 100-entry INSERT took 66 ms, four 25-entry INSERTs 15 ms). sqlx
/// 0.9.1 sets `TCP_NODELAY` again; with it, 100 entries in one INSERT cost what four did
/// (PostgreSQL, `Txn(100)`: 1.374× against 1.371× unlogged, 103 statements instead of 106).
pub const WIRE_BUDGET: usize = 64 * 1024;

/// The default of [`ActivityConfig::with_value_cap`]: 64 KiB.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// What happens when an entry cannot be written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The change does not commit and the caller gets an error naming the activity log. (On an
    /// autocommit connection the change has already committed when its entry is written; the
    /// error then says so.)
    #[default]
    FailClosed,
    /// The change commits without its entries; a `tracing` warning is emitted and the failure
    /// is counted. Wherever a transaction is open the log INSERT runs in a savepoint, so its
    /// failure never aborts the caller's transaction.
    FailOpen,
}

/// Whether reads must name a tenant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tenancy {
    /// Multi-tenant: every query names a team or organization, or opts into `unscoped()`.
    #[default]
    Required,
    /// Single-tenant: a query without a tenant reads the whole log.
    Single,
}

/// Every setting of the activity log. Build it, then [`init`] it once at start-up.
///
/// ```
/// use std::sync::Arc;
/// use activity_core::{ActivityConfig, FailurePolicy, FixedClock, Tenancy};
/// let t = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().to_utc();
/// let config = ActivityConfig::new()
///     .with_failure_policy(FailurePolicy::FailOpen)
///     .with_clock(Arc::new(FixedClock(t)))
///     .with_tenancy(Tenancy::Single)
///     .with_erasure_key(b"a secret of at least 32 bytes, kept out of the log");
/// assert_eq!(config.failure_policy(), FailurePolicy::FailOpen);
/// assert_eq!(config.clock().now(), t);
/// // The key never shows in logs or panics.
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct ActivityConfig {
    failure_policy: FailurePolicy,
    clock: Arc<dyn Clock>,
    hooks: Arc<dyn ActivityHooks>,
    wire_budget: usize,
    value_cap: usize,
    erasure_key: Option<Arc<[u8]>>,
    tenancy: Tenancy,
    describers: HashMap<String, Describer>,
    user_scopes: Vec<String>,
    outbox: bool,
    retention: Option<std::time::Duration>,
    cursor_key: Option<Arc<[u8]>>,
    read_policy: Arc<ReadPolicy>,
    compact_detail: bool,
    /// Which settings this value sets (one bit per `with_*`): a scoped configuration takes
    /// every other one from the configuration in force.
    set: u16,
}

const FAILURE_POLICY: u16 = 1;
const CLOCK: u16 = 1 << 1;
const HOOKS: u16 = 1 << 2;
const WIRE: u16 = 1 << 3;
const ERASURE_KEY: u16 = 1 << 4;
const TENANCY: u16 = 1 << 5;
const USER_SCOPES: u16 = 1 << 6;
const OUTBOX: u16 = 1 << 7;
const RETENTION: u16 = 1 << 8;
const CURSOR_KEY: u16 = 1 << 9;
const READ_POLICY: u16 = 1 << 10;
const VALUE_CAP: u16 = 1 << 11;
const COMPACT_DETAIL: u16 = 1 << 12;

impl Default for ActivityConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ActivityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActivityConfig")
            .field("failure_policy", &self.failure_policy)
            .field("clock", &self.clock)
            .field("hooks", &self.hooks)
            .field("wire_budget", &self.wire_budget)
            .field("value_cap", &self.value_cap)
            .field(
                "erasure_key",
                &self.erasure_key.as_ref().map(|_| "<redacted>"),
            )
            .field("tenancy", &self.tenancy)
            .field("describers", &self.describers.keys().collect::<Vec<_>>())
            .field("user_scopes", &self.user_scopes)
            .field("outbox", &self.outbox)
            .field("retention", &self.retention)
            .field(
                "cursor_key",
                &self.cursor_key.as_ref().map(|_| "<redacted>"),
            )
            .field("read_policy", &self.read_policy)
            .field("compact_detail", &self.compact_detail)
            .finish()
    }
}

impl ActivityConfig {
    /// The defaults: fail-closed, the system clock, no append hooks, [`WIRE_BUDGET`], no
    /// erasure key, [`Tenancy::Required`].
    pub fn new() -> Self {
        Self {
            failure_policy: FailurePolicy::default(),
            clock: Arc::new(SystemClock),
            hooks: Arc::new(NoHooks),
            wire_budget: WIRE_BUDGET,
            value_cap: MAX_VALUE_BYTES,
            erasure_key: None,
            tenancy: Tenancy::default(),
            describers: HashMap::new(),
            user_scopes: Vec::new(),
            outbox: false,
            retention: None,
            cursor_key: None,
            read_policy: Arc::new(ReadPolicy::new()),
            compact_detail: true,
            set: 0,
        }
    }

    /// This configuration over `base`: the settings this one sets, and `base`'s for the rest
    /// (describers: `base`'s, then this one's).
    fn over(mut self, base: &ActivityConfig) -> ActivityConfig {
        let unset = |bit: u16| self.set & bit == 0;
        if unset(FAILURE_POLICY) {
            self.failure_policy = base.failure_policy;
        }
        if unset(CLOCK) {
            self.clock = Arc::clone(&base.clock);
        }
        if unset(HOOKS) {
            self.hooks = Arc::clone(&base.hooks);
        }
        if unset(WIRE) {
            self.wire_budget = base.wire_budget;
        }
        if unset(VALUE_CAP) {
            self.value_cap = base.value_cap;
        }
        if unset(ERASURE_KEY) {
            self.erasure_key = base.erasure_key.clone();
        }
        if unset(TENANCY) {
            self.tenancy = base.tenancy;
        }
        if unset(USER_SCOPES) {
            self.user_scopes = base.user_scopes.clone();
        }
        if unset(OUTBOX) {
            self.outbox = base.outbox;
        }
        if unset(RETENTION) {
            self.retention = base.retention;
        }
        if unset(CURSOR_KEY) {
            self.cursor_key = base.cursor_key.clone();
        }
        if unset(READ_POLICY) {
            self.read_policy = Arc::clone(&base.read_policy);
        }
        if unset(COMPACT_DETAIL) {
            self.compact_detail = base.compact_detail;
        }
        let mut describers = base.describers.clone();
        describers.extend(self.describers.drain());
        self.describers = describers;
        self.set |= base.set;
        self
    }

    /// What happens when an entry cannot be written (default fail-closed).
    pub fn with_failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self.set |= FAILURE_POLICY;
        self
    }

    /// The clock that stamps `created_at`, for hook entries and manual ones alike.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self.set |= CLOCK;
        self
    }

    /// The `before_append` / `after_append` hooks.
    pub fn with_hooks(mut self, hooks: Arc<dyn ActivityHooks>) -> Self {
        self.hooks = hooks;
        self.set |= HOOKS;
        self
    }

    /// The largest log INSERT sent to PostgreSQL or MySQL, in bytes on the wire; a flush with
    /// more entries sends several INSERTs. Default [`WIRE_BUDGET`].
    ///
    /// Measured over PostgreSQL's Unix socket, 1,000 per-row bulk entries: 12 KiB, 30 INSERTs,
    /// 32.9 ms; 64 KiB, 8 INSERTs, 30.4 ms; larger statements got no faster. On MySQL keep it
    /// well under the server's `max_allowed_packet`. SQLite has no wire and ignores it. At least
    /// one entry goes in every statement, whatever the budget.
    pub fn with_wire_budget(mut self, bytes: usize) -> Self {
        self.wire_budget = bytes;
        self.set |= WIRE;
        self
    }

    /// The largest value the log stores whole, in bytes of its JSON (default
    /// [`MAX_VALUE_BYTES`]). A larger value — a change's before or after, or the whole
    /// `context` — is stored as `{"truncated": true, "bytes": <its size>, "sha256": "<hex>"}`,
    /// after masking: one 700 KB text field must not make an entry the stream refuses (NATS
    /// takes 1 MiB per message by default), nor blow up the table. The digest lets an auditor
    /// check a value they hold against the one that was written.
    pub fn with_value_cap(mut self, bytes: usize) -> Self {
        self.value_cap = bytes;
        self.set |= VALUE_CAP;
        self
    }

    /// See [`with_value_cap`](Self::with_value_cap).
    pub fn value_cap(&self) -> usize {
        self.value_cap
    }

    /// The secret under which erasure derives pseudonyms (HMAC-SHA256), so a pseudonym cannot
    /// be recomputed from the user id by anyone without it. Keep it as carefully as a password
    /// pepper: 32 random bytes or more.
    pub fn with_erasure_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.erasure_key = Some(Arc::from(key.as_ref()));
        self.set |= ERASURE_KEY;
        self
    }

    /// The scopes whose items are users (e.g. `["User"]`): erasure also rewrites the entries
    /// *about* a user, the items of these scopes whose id is the user's (default none: only the
    /// entries by the user).
    pub fn with_user_scopes<S: Into<String>>(
        mut self,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        self.user_scopes = scopes.into_iter().map(Into::into).collect();
        self.set |= USER_SCOPES;
        self
    }

    /// Write an outbox row with every batch of entries, in the same transaction, so a relay
    /// (`activity_nats::Relay`) publishes each committed entry exactly once (default off; off,
    /// it costs nothing). Entries of rolled-back transactions never reach the outbox.
    pub fn with_outbox(mut self, on: bool) -> Self {
        self.outbox = on;
        self.set |= OUTBOX;
        self
    }

    /// Store `detail` compact (default on): without its null keys and with a change's
    /// `type` left out where it is the entry's scope ([`Detail::stored`]), which every read
    /// restores. Turn it off only while instances of an earlier version, which cannot read that
    /// form, still read or seal the same log (a rolling upgrade): they read what this version
    /// writes then, and this version reads both forms. `schema::compact_details` converts the
    /// rows written before.
    ///
    /// [`Detail::stored`]: crate::Detail::stored
    pub fn with_compact_detail(mut self, on: bool) -> Self {
        self.compact_detail = on;
        self.set |= COMPACT_DETAIL;
        self
    }

    /// Whether `detail` is stored compact (see [`ActivityConfig::with_compact_detail`]).
    pub fn compact_detail(&self) -> bool {
        self.compact_detail
    }

    /// How long entries are kept: the age the application prunes at
    /// (`ops::retention::prune`). Every copy the library makes follows it: the relay's
    /// `ensure_stream` sets the stream's `max_age` to it, and notification delivery marks older
    /// than it are pruned. Default none (copies kept as long as the log keeps its entries,
    /// which the application decides).
    pub fn with_retention(mut self, keep: std::time::Duration) -> Self {
        self.retention = Some(keep);
        self.set |= RETENTION;
        self
    }

    /// The secret that signs page cursors (HMAC-SHA256 over the query and the position), so a
    /// client cannot alter a cursor, or move it to another query, without the server noticing.
    /// Without one, cursors are still bound to their query (a cursor of one query is refused
    /// by another) but could be forged by someone who knows the format. Keep it as a server
    /// secret; changing it invalidates the cursors handed out before.
    pub fn with_cursor_key(mut self, key: impl AsRef<[u8]>) -> Self {
        self.cursor_key = Some(Arc::from(key.as_ref()));
        self.set |= CURSOR_KEY;
        self
    }

    /// Who may read which entries, and how far back (see [`ReadPolicy`]). Once it restricts
    /// anything, every read must name its [`Reader`](crate::policy::Reader).
    pub fn with_read_policy(mut self, policy: ReadPolicy) -> Self {
        self.read_policy = Arc::new(policy);
        self.set |= READ_POLICY;
        self
    }

    /// See [`with_read_policy`](Self::with_read_policy) (default: hides nothing).
    pub fn read_policy(&self) -> &ReadPolicy {
        &self.read_policy
    }

    /// See [`with_cursor_key`](Self::with_cursor_key).
    pub fn cursor_key(&self) -> Option<&[u8]> {
        self.cursor_key.as_deref()
    }

    /// See [`with_retention`](Self::with_retention).
    pub fn retention(&self) -> Option<std::time::Duration> {
        self.retention
    }

    /// See [`with_outbox`](Self::with_outbox).
    pub fn outbox(&self) -> bool {
        self.outbox
    }

    /// See [`with_user_scopes`](Self::with_user_scopes).
    pub fn user_scopes(&self) -> &[String] {
        &self.user_scopes
    }

    /// Whether reads must name a tenant (default [`Tenancy::Required`]).
    pub fn with_tenancy(mut self, tenancy: Tenancy) -> Self {
        self.tenancy = tenancy;
        self.set |= TENANCY;
        self
    }

    /// Use `describer` for entries of `scope` in [`describe`](crate::describe()).
    pub fn with_describer(mut self, scope: impl Into<String>, describer: Describer) -> Self {
        self.describers.insert(scope.into(), describer);
        self
    }

    /// See [`with_failure_policy`](Self::with_failure_policy).
    pub fn failure_policy(&self) -> FailurePolicy {
        self.failure_policy
    }

    /// See [`with_clock`](Self::with_clock).
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// See [`with_hooks`](Self::with_hooks).
    pub fn hooks(&self) -> &dyn ActivityHooks {
        &*self.hooks
    }

    /// Whether [`with_hooks`](Self::with_hooks) installed hooks, in this configuration or the
    /// one it is scoped over. A transaction that writes its entries before COMMIT (past
    /// `EARLY_FLUSH_ENTRIES` in the writer) keeps them for `after_append` only then.
    pub fn has_hooks(&self) -> bool {
        self.set & HOOKS != 0
    }

    /// See [`with_wire_budget`](Self::with_wire_budget).
    pub fn wire_budget(&self) -> usize {
        self.wire_budget
    }

    /// See [`with_erasure_key`](Self::with_erasure_key).
    pub fn erasure_key(&self) -> Option<&[u8]> {
        self.erasure_key.as_deref()
    }

    /// See [`with_tenancy`](Self::with_tenancy).
    pub fn tenancy(&self) -> Tenancy {
        self.tenancy
    }

    /// The describer registered for `scope`, if any.
    pub fn describer(&self, scope: &str) -> Option<Describer> {
        self.describers.get(scope).copied()
    }

    /// Run `fut` with this configuration over the one in force: for the current task and
    /// everything `fut` awaits (not for tasks it spawns). Tests use it to run side by side, each
    /// with its own clock, policy or hooks.
    ///
    /// A scope changes only what it sets: `ActivityConfig::new().with_clock(..)` keeps the
    /// outbox, erasure key, hooks and every other setting in force, so a scope can never turn
    /// them off by accident. To turn one off, say so (`with_outbox(false)`,
    /// `with_hooks(Arc::new(NoHooks))`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::sync::Arc;
    /// use activity_core::{ActivityConfig, FixedClock};
    /// let outer = ActivityConfig::new().with_outbox(true).with_erasure_key([7; 32]);
    /// let t = chrono::DateTime::UNIX_EPOCH;
    /// let inner = ActivityConfig::new().with_clock(Arc::new(FixedClock(t)));
    /// outer.scope(inner.scope(async {
    ///     let c = ActivityConfig::current();
    ///     assert!(c.outbox() && c.erasure_key().is_some());
    ///     assert_eq!(c.clock().now(), t);
    /// })).await;
    /// # }
    /// ```
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        let config = ActivityConfig::with_current(|base| self.over(base));
        let clock = Arc::clone(&config.clock);
        crate::clock::scope(clock, SCOPED.scope(Arc::new(config), fut)).await
    }

    /// The configuration in force here: the innermost [`scope`](Self::scope), else the one
    /// [`init`] installed, else the defaults.
    pub fn current() -> Arc<ActivityConfig> {
        SCOPED
            .try_with(Arc::clone)
            .unwrap_or_else(|_| Arc::clone(installed()))
    }

    /// Call `f` with the configuration in force here. The hot path's way in: outside a
    /// [`scope`](Self::scope) it touches no reference count (a shared one would be a contended
    /// cache line under concurrent writers).
    pub fn with_current<R>(f: impl FnOnce(&ActivityConfig) -> R) -> R {
        match SCOPED.try_with(Arc::clone) {
            Ok(scoped) => f(&scoped),
            Err(_) => f(installed()),
        }
    }
}

tokio::task_local! {
    static SCOPED: Arc<ActivityConfig>;
}

static INSTALLED: OnceLock<Arc<ActivityConfig>> = OnceLock::new();

fn installed() -> &'static Arc<ActivityConfig> {
    INSTALLED.get_or_init(|| Arc::new(ActivityConfig::new()))
}

/// [`init`] was called after a configuration was already in force.
#[derive(Debug, thiserror::Error)]
#[error(
    "the activity log configuration is already installed (init runs once, before the first write)"
)]
pub struct AlreadyInitialized;

/// Install `config` for the whole process. Call it once at start-up, before the first write:
/// a second call — or a call after anything has read the defaults — is an error and changes
/// nothing, so no write is ever made under two configurations.
///
/// ```
/// use activity_core::{ActivityConfig, FailurePolicy};
/// activity_core::init(ActivityConfig::new().with_failure_policy(FailurePolicy::FailOpen)).unwrap();
/// assert!(activity_core::init(ActivityConfig::new()).is_err());
/// assert_eq!(ActivityConfig::current().failure_policy(), FailurePolicy::FailOpen);
/// ```
pub fn init(config: ActivityConfig) -> Result<(), AlreadyInitialized> {
    let clock = Arc::clone(&config.clock);
    INSTALLED
        .set(Arc::new(config))
        .map_err(|_| AlreadyInitialized)?;
    crate::clock::install(clock);
    Ok(())
}
