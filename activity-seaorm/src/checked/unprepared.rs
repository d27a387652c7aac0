//! Checked mode for `execute_unprepared`, through `tracing` (feature `checked-layer`).
//!
//! SeaORM 2.0 runs `execute_unprepared` (on a connection and in a transaction) without calling
//! the metric callback, so [`Checker::install`] cannot see that raw SQL. Two things it does emit
//! can: SeaORM wraps the call in a `TRACE` span named `execute_unprepared`, and sqlx reports the
//! statement it runs as a `sqlx::query` event, inside that span. The layer reads exactly those
//! two, and checks the statement's SQL as [`Checker::observe`] checks the others — same audited
//! tables, announcements and mutes — when the call returns, in the task that made it. Statements
//! outside such a span are not looked at (the metric callback covers them), so nothing is
//! counted twice.

use std::sync::atomic::{AtomicBool, Ordering};

use sea_orm::DbBackend;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::{Checker, sql};
use crate::keys::TaskKey;

impl Checker {
    /// A `tracing-subscriber` layer through which this checker also sees the SQL of
    /// `execute_unprepared`, which SeaORM 2.0 runs without calling the metric callback. It
    /// reads SeaORM's `TRACE` span `execute_unprepared` and sqlx's `sqlx::query` statement event
    /// inside it, and checks the SQL when the call returns, in the calling task (so
    /// announcements and mutes hold; on SQLite the statement runs on sqlx's worker thread).
    ///
    /// Its filter is per layer: it enables only those spans, and sqlx's event only inside one of
    /// them, so other statements cost one `enabled!` check (about 40 ns) and your other layers'
    /// filters are unaffected. What it needs:
    ///
    /// - the subscriber is a `tracing_subscriber::Registry` set as the **global** default
    ///   (SQLite's worker thread does not see a thread-local default), and no filter on the
    ///   *whole* subscriber turns off `TRACE` for `sea_orm` or the `sqlx::query` events (filters
    ///   attached to other layers with `.with_filter(..)` are fine);
    /// - SeaORM's `sqlx_logging` is on (its default; any level): with it off, sqlx emits no
    ///   event, and the call is counted in [`Checker::unverified`] (and warned about once);
    /// - `tracing`'s `max_level_*` / `release_max_level_*` features do not compile out `TRACE`.
    ///
    /// Add it to the global subscriber besides [`install`](Checker::install)ing the checker:
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), sea_orm::DbErr> {
    /// use activity_seaorm::checked::Checker;
    /// use tracing_subscriber::prelude::*;
    ///
    /// let checker = Checker::warn();
    /// tracing_subscriber::registry()
    ///     .with(checker.layer())
    ///     // .with(tracing_subscriber::fmt::layer().with_filter(EnvFilter::from_default_env()))
    ///     .init();
    /// let mut db = sea_orm::Database::connect("sqlite::memory:").await?;
    /// checker.install(&mut db);
    /// # Ok(()) }
    /// ```
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        UnpreparedLayer {
            checker: self.clone(),
        }
        .with_filter(UnpreparedOnly)
    }

    /// `execute_unprepared` calls whose SQL this checker's [`layer`](Checker::layer) could not
    /// see (sqlx emitted no statement event: SeaORM's `sqlx_logging` is off, or the call failed
    /// before reaching the database). It should stay 0.
    pub fn unverified(&self) -> u64 {
        self.inner.unverified.load(Ordering::Relaxed)
    }
}

/// SeaORM's spans around `execute_unprepared`: `#[instrument]`'s on a connection
/// (`sea_orm::database::*`) and in its drivers (`sea_orm::driver::*`), and, with SeaORM's
/// `tracing-spans` feature, `sea_orm.execute_unprepared` inside them (sqlx's SQLite worker then
/// enters that one, so the event is found only if it is ours too).
fn is_unprepared_span(meta: &Metadata<'_>) -> bool {
    meta.is_span()
        && matches!(
            meta.name(),
            "execute_unprepared" | "sea_orm.execute_unprepared"
        )
        && meta.target().starts_with("sea_orm")
}

/// sqlx's per-statement event, and the `enabled!` check sqlx makes before building it.
fn is_statement_event(meta: &Metadata<'_>) -> bool {
    !meta.is_span() && meta.target() == "sqlx::query"
}

/// Enables SeaORM's `execute_unprepared` spans, and sqlx's statement event only inside one.
struct UnpreparedOnly;

impl<S> Filter<S> for UnpreparedOnly
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        // Inside this filter's context, the only spans visible are `execute_unprepared` ones.
        is_unprepared_span(meta) || (is_statement_event(meta) && cx.lookup_current().is_some())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_unprepared_span(meta) {
            Interest::always()
        } else if is_statement_event(meta) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }
}

struct UnpreparedLayer {
    checker: Checker,
}

/// Kept on the outermost `execute_unprepared` span: who called, and the SQL sqlx ran for it.
struct Pending {
    task: TaskKey,
    statements: Vec<String>,
    seen: bool,
}

/// The SQL of a `sqlx::query` event: `db.statement` when sqlx shortened `summary`, else
/// `summary` itself (a statement of at most four words).
#[derive(Default)]
struct StatementText {
    summary: String,
    statement: String,
}

impl Visit for StatementText {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.clone_into(&mut self.statement),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl StatementText {
    fn into_sql(self) -> String {
        if self.statement.trim().is_empty() {
            self.summary
        } else {
            self.statement
        }
    }
}

impl<S> Layer<S> for UnpreparedLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        let Some(span) = cx.span(id) else { return };
        if span.parent().is_some() {
            return; // the connection's span around its driver's: the outer one keeps it
        }
        span.extensions_mut().insert(Pending {
            task: TaskKey::current(),
            statements: Vec::new(),
            seen: false,
        });
    }

    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        let Some(outer) = cx.event_scope(event).and_then(|s| s.from_root().next()) else {
            return;
        };
        let mut text = StatementText::default();
        event.record(&mut text);
        if let Some(pending) = outer.extensions_mut().get_mut::<Pending>() {
            pending.seen = true;
            pending.statements.push(text.into_sql());
        }
    }

    fn on_exit(&self, id: &Id, cx: Context<'_, S>) {
        // Each poll of the call exits the span in the calling task; the one after sqlx's event
        // checks it there, where the task's announcements and mutes are.
        self.check_pending(id, &cx, true);
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        // Statements still waiting: the caller was dropped after sqlx's event (a timeout, a
        // client gone), and the span closes wherever its last handle goes, e.g. on SQLite's
        // worker thread. Checked for the calling task, without panicking here.
        self.check_pending(&id, &cx, false);
        let Some(span) = cx.span(&id) else { return };
        let unseen = span
            .extensions()
            .get::<Pending>()
            .is_some_and(|pending| !pending.seen);
        if unseen {
            self.checker
                .inner
                .unverified
                .fetch_add(1, Ordering::Relaxed);
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    target: "activity_seaorm::checked",
                    "checked mode saw `execute_unprepared` but not its SQL (counted in \
                     `Checker::unverified`): SeaORM's `sqlx_logging` is off, or the call failed \
                     or was dropped before it reached the database"
                );
            }
        }
    }
}

impl UnpreparedLayer {
    /// Check the span's waiting statements: in the calling task, or (`own_task_only` false)
    /// wherever the span closes, for the calling task.
    fn check_pending<S>(&self, id: &Id, cx: &Context<'_, S>, own_task_only: bool)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(span) = cx.span(id) else { return };
        let (statements, task) = {
            let mut extensions = span.extensions_mut();
            let Some(pending) = extensions.get_mut::<Pending>() else {
                return;
            };
            let own = pending.task == TaskKey::current();
            if pending.statements.is_empty() || (own_task_only && !own) {
                return;
            }
            let task = (!own).then_some(pending.task);
            (std::mem::take(&mut pending.statements), task)
        };
        drop(span);
        for sql in &statements {
            self.check_sql(sql, task);
        }
    }

    /// The event does not say which backend ran the statement: classify it as each backend the
    /// checker was installed on would (all three before any), and check each write as often as
    /// the backend that found it most often saw it.
    fn check_sql(&self, text: &str, task: Option<TaskKey>) {
        let mut found: Vec<(sql::Write<'_>, usize)> = Vec::new();
        for backend in self.checker.backends() {
            let mut this: Vec<(sql::Write<'_>, usize)> = Vec::new();
            sql::writes(text, backend, |write| {
                match this.iter_mut().find(|(w, _)| w.same_as(&write)) {
                    Some((_, n)) => *n += 1,
                    None => this.push((write, 1)),
                }
            });
            for (write, n) in this {
                match found.iter_mut().find(|(w, _)| w.same_as(&write)) {
                    Some((_, most)) => *most = (*most).max(n),
                    None => found.push((write, n)),
                }
            }
        }
        for (write, n) in found {
            for _ in 0..n {
                self.checker.check_for(write, task);
            }
        }
    }
}

impl Checker {
    /// The backends of the connections this checker is installed on or has observed; all three
    /// before any.
    fn backends(&self) -> Vec<DbBackend> {
        let seen = self.inner.backends.load(Ordering::Relaxed);
        let all = [DbBackend::Postgres, DbBackend::MySql, DbBackend::Sqlite];
        let chosen: Vec<DbBackend> = all
            .into_iter()
            .filter(|b| seen & super::backend_bit(*b) != 0)
            .collect();
        if chosen.is_empty() {
            all.to_vec()
        } else {
            chosen
        }
    }
}
