//! When an entry cannot be written: what the caller is told, and what became of the change.
//!
//! A failed log write returns the database's own error with its message prefixed by what
//! happened ("activity log write failed (1 entries, ref 5c1d9a0e); the change was already committed
//! (autocommit) …"): `DbErr::sql_err()`, the SQLSTATE code and the driver's error type stay
//! reachable through it as on any other database error. [`LogWriteFailure::of`] tells it apart
//! from the caller's own failures and says whether the change committed. (Errors that carry no
//! database error, such as a pool timeout, become a `DbErr::Custom` whose text says all of it.)

use std::fmt;

use activity_core::actor::InvalidIdentifier;
use sea_orm::DbErr;

/// What became of the change whose entries could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeState {
    /// Inside [`transaction`](crate::transaction): the transaction rolled back, the change with
    /// it. Retrying is safe.
    RolledBack,
    /// Inside a transaction the caller opened (`begin()`): still open. Propagate the error (or
    /// roll back) and the change goes with it; commit anyway and it stays without its entry.
    InOpenTransaction,
    /// On an autocommit connection the change committed before its entry was written: it
    /// stands, without an entry. Do not retry it as if it had not happened.
    Committed,
    /// The connection type is not one the library knows: the change may have committed.
    Unknown,
}

/// A failed log write, recognised in the error it returned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogWriteFailure {
    /// What became of the change.
    pub change: ChangeState,
    /// How many entries were lost.
    pub entries: usize,
    /// Set when the write was refused before any INSERT because an identifier was longer than
    /// its column (see [`IdentifierTooLong::of`]).
    pub refused: Option<IdentifierTooLong>,
    /// Set when the write was refused before any INSERT because an actor id could name no one
    /// (empty, or holding a control character): the middleware and
    /// [`ActivityContext::validate`](crate::ActivityContext::validate) catch it earlier; this is
    /// the last line.
    pub invalid: Option<InvalidIdentifier>,
}

/// Why a write was refused before any INSERT.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// An identifier longer than its column.
    TooLong(IdentifierTooLong),
    /// An actor id that names no one.
    Invalid(InvalidIdentifier),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooLong(e) => write!(f, "{e}"),
            Refusal::Invalid(e) => write!(f, "activity log: {e}; refused"),
        }
    }
}

impl fmt::Display for LogWriteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let change = CHANGE_PHRASES
            .iter()
            .find(|(state, _)| *state == self.change)
            .map_or("", |(_, phrase)| phrase);
        write!(
            f,
            "{PREFIX}{} entries, ref {}); {change}",
            self.entries,
            process_mark()
        )
    }
}

/// How every failed write's message starts; what [`LogWriteFailure::of`] reads back.
const PREFIX: &str = "activity log write failed (";

/// A mark of this process in every failure message it writes (`ref 1f2e3d4c`), random per
/// process: [`LogWriteFailure::of`] recognises only messages bearing it, so an error a database
/// or trigger raised with the same wording is never taken for the library's.
fn process_mark() -> &'static str {
    static MARK: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MARK.get_or_init(|| {
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        format!("{:08x}", random as u32)
    })
}

/// What each [`ChangeState`] says in the message.
const CHANGE_PHRASES: [(ChangeState, &str); 4] = [
    (
        ChangeState::RolledBack,
        "the transaction rolled back, change not committed",
    ),
    (
        ChangeState::InOpenTransaction,
        "the change is in your open transaction: roll it back or it commits without its entry",
    ),
    (
        ChangeState::Committed,
        "the change was already committed (autocommit) and stands without its entry",
    ),
    (ChangeState::Unknown, "the change may have been committed"),
];

impl LogWriteFailure {
    /// Read a failure back from the message this module wrote (`PREFIX`, the count, the change
    /// phrase, then the cause).
    fn parse(message: &str) -> Option<LogWriteFailure> {
        let rest = message.strip_prefix(PREFIX)?;
        let (count, rest) = rest.split_once(" entries, ref ")?;
        let rest = rest.strip_prefix(process_mark())?.strip_prefix("); ")?;
        let entries = count.parse().ok()?;
        let (change, cause) = CHANGE_PHRASES
            .iter()
            .find_map(|(state, phrase)| Some((*state, rest.strip_prefix(phrase)?)))?;
        Some(LogWriteFailure {
            change,
            entries,
            refused: IdentifierTooLong::parse(cause),
            invalid: parse_invalid(cause),
        })
    }
}

/// The [`InvalidIdentifier`] a refusal's text names (`activity log: invalid {what}: {why};
/// refused`), rebuilt by the check that wrote it from a value with the same fault.
fn parse_invalid(cause: &str) -> Option<InvalidIdentifier> {
    const MARK: &str = "activity log: invalid ";
    let rest = &cause[cause.find(MARK)? + MARK.len()..];
    let what = [
        "user id",
        "impersonator id",
        "organization id",
        "team id",
        "correlation id",
    ]
    .into_iter()
    .find(|what| rest.starts_with(&format!("{what}: ")))?;
    let why = &rest[what.len() + 2..];
    let long = "x".repeat(256);
    let faulty = [
        ("it is empty", ""),
        ("it contains a control character", "\u{7}"),
        ("it is longer than 255 characters", long.as_str()),
    ]
    .into_iter()
    .find(|(reason, _)| why.starts_with(&format!("{reason}; refused")))?
    .1;
    activity_core::actor::check_identifier(what, faulty).err()
}

impl LogWriteFailure {
    /// The failure `err` reports, if it is a failed activity-log write (and not, say, the
    /// caller's own statement failing).
    ///
    /// ```
    /// # use activity_seaorm::LogWriteFailure;
    /// let other = sea_orm::DbErr::RecordNotUpdated;
    /// assert_eq!(LogWriteFailure::of(&other), None);
    /// ```
    ///
    /// The failure is carried by the error itself, in its message (the database's error keeps
    /// its type and code; only its message says what became of the change): nothing is
    /// remembered on the side, so no number of concurrent failures can make one forgotten. A
    /// database error is recognised only as the library's wrapper, never by a message a
    /// database or trigger wrote that happens to look like one.
    pub fn of(err: &DbErr) -> Option<LogWriteFailure> {
        match err {
            DbErr::Custom(text) => LogWriteFailure::parse(text),
            #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
            DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
            | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => match &**e {
                sea_orm::sqlx::Error::Database(db) => LogWriteFailure::parse(db.message()),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The error to return for a failed write of `entries` entries: the database's own where there
/// is one, remembered as a log failure.
pub(crate) fn log_write_error(error: DbErr, change: ChangeState, entries: usize) -> DbErr {
    let failure = LogWriteFailure {
        change,
        entries,
        refused: None,
        invalid: None,
    };
    remember(error, failure)
}

/// The error to return for a write of `entries` entries refused before any INSERT because of
/// `refused`: its text names the column and both lengths, and it is remembered as a log
/// failure, so [`LogWriteFailure::of`] and [`IdentifierTooLong::of`] recognise it.
pub(crate) fn refused_write_error(refused: Refusal, change: ChangeState, entries: usize) -> DbErr {
    let error = DbErr::Custom(refused.to_string());
    let (refused, invalid) = match refused {
        Refusal::TooLong(e) => (Some(e), None),
        Refusal::Invalid(e) => (None, Some(e)),
    };
    let failure = LogWriteFailure {
        change,
        entries,
        refused,
        invalid,
    };
    remember(error, failure)
}

fn remember(error: DbErr, failure: LogWriteFailure) -> DbErr {
    tracing::error!(error = %error, %failure, "activity log write failed");
    explain(error, &failure)
}

/// `error`, telling what `failure` did to the change.
fn explain(error: DbErr, failure: &LogWriteFailure) -> DbErr {
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
    {
        use sea_orm::RuntimeErr;
        use std::sync::Arc;
        let (exec, arc) = match error {
            DbErr::Exec(RuntimeErr::SqlxError(arc)) => (true, arc),
            DbErr::Query(RuntimeErr::SqlxError(arc)) => (false, arc),
            other => return DbErr::Custom(format!("{failure}: {other}")),
        };
        let wrapped = match Arc::try_unwrap(arc) {
            Ok(sea_orm::sqlx::Error::Database(inner)) => {
                sea_orm::sqlx::Error::Database(Box::new(database::Explained {
                    message: format!("{failure}: {}", inner.message()),
                    inner,
                }))
            }
            Ok(other) => return DbErr::Custom(format!("{failure}: {other}")),
            Err(shared) => return DbErr::Custom(format!("{failure}: {shared}")),
        };
        let runtime = RuntimeErr::SqlxError(Arc::new(wrapped));
        if exec {
            DbErr::Exec(runtime)
        } else {
            DbErr::Query(runtime)
        }
    }
    #[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
    DbErr::Custom(format!("{failure}: {error}"))
}

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod database {
    use std::borrow::Cow;
    use std::error::Error as StdError;
    use std::fmt;

    use sea_orm::sqlx::error::{DatabaseError, ErrorKind};

    /// The database's error with a message that says what became of the change. Everything
    /// but the message is the driver's own: `as_error` hands out the original, so
    /// `DbErr::sql_err()` (which downcasts to the driver's type) and the code still work.
    #[derive(Debug)]
    pub(super) struct Explained {
        pub(super) message: String,
        pub(super) inner: Box<dyn DatabaseError>,
    }

    impl fmt::Display for Explained {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.message)
        }
    }

    impl StdError for Explained {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(self.inner.as_error())
        }
    }

    impl DatabaseError for Explained {
        fn message(&self) -> &str {
            &self.message
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            self.inner.code()
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self.inner.as_error()
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self.inner.as_error_mut()
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self.inner.into_error()
        }
        fn constraint(&self) -> Option<&str> {
            self.inner.constraint()
        }
        fn table(&self) -> Option<&str> {
            self.inner.table()
        }
        fn kind(&self) -> ErrorKind {
            self.inner.kind()
        }
    }
}

/// An identifier longer than its column stores exactly: the entry is refused rather than
/// truncated (two ids sharing a prefix would become one tenant or user). Nothing of the write
/// is stored; find it in a failed write's error with [`IdentifierTooLong::of`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "activity log: {column} is {chars} characters, longer than the {max} the column stores \
     exactly; refused"
)]
#[non_exhaustive]
pub struct IdentifierTooLong {
    /// The column, e.g. `user_id`.
    pub column: &'static str,
    /// The value's length in characters.
    pub chars: usize,
    /// The column's width in characters.
    pub max: usize,
}

impl IdentifierTooLong {
    /// The refusal a failure's text names (`activity log: {column} is {chars} characters,
    /// longer than the {max} …`), for a column the log has.
    fn parse(cause: &str) -> Option<IdentifierTooLong> {
        let at = cause.find("activity log: ")?;
        let rest = &cause[at + "activity log: ".len()..];
        let (column, rest) = rest.split_once(" is ")?;
        let column = crate::schema::table::COLUMN_CAPS
            .iter()
            .map(|cap| sea_orm::IdenStatic::as_str(&cap.column))
            .find(|name| *name == column)?;
        let (chars, rest) = rest.split_once(" characters, longer than the ")?;
        let (max, _) = rest.split_once(" the column stores exactly")?;
        Some(IdentifierTooLong {
            column,
            chars: chars.parse().ok()?,
            max: max.parse().ok()?,
        })
    }

    /// The refusal `err` reports, if it is a log write refused for an overlong identifier.
    ///
    /// ```
    /// # use activity_seaorm::failure::IdentifierTooLong;
    /// assert_eq!(IdentifierTooLong::of(&sea_orm::DbErr::RecordNotUpdated), None);
    /// ```
    pub fn of(err: &DbErr) -> Option<IdentifierTooLong> {
        LogWriteFailure::of(err).and_then(|f| f.refused)
    }
}
