//! Who acted and what set them off: the [`Actor`] and the job [`Trigger`], shared by the
//! context (who is acting now) and the entry (who acted), so neither module depends on the other
//! for them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What started the activity when it was not a user request (a job, a webhook...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Trigger {
    /// Kind of job, e.g. `nightly_recount`.
    pub job_type: String,
    /// Identifier of the job run.
    pub job_id: String,
    /// Free-form payload describing the run.
    pub payload: Value,
}

impl Trigger {
    /// A trigger with an empty (`null`) payload.
    pub fn new(job_type: impl Into<String>, job_id: impl Into<String>) -> Self {
        Self {
            job_type: job_type.into(),
            job_id: job_id.into(),
            payload: Value::Null,
        }
    }

    /// Attach a payload.
    pub fn with_payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }
}

/// A person (or API key, service account...) who acts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Actor {
    /// Stable identifier, stored in `user_id`.
    pub id: String,
    /// Display name, stored in `user_name`.
    pub name: Option<String>,
    /// E-mail address; kept in the context, never written to a column.
    pub email: Option<String>,
}

/// The most characters an identifier (actor, tenant, correlation id) may have: what
/// `activity_log` stores exactly. Longer ones are refused, never cut (two ids sharing a prefix
/// would become one user or tenant).
pub const MAX_IDENTIFIER_CHARS: usize = 255;

/// An identifier that cannot name anyone: empty, holding a control character, or longer than
/// [`MAX_IDENTIFIER_CHARS`]. Found where identifiers enter ([`Actor::try_new`],
/// [`ActivityContext::validate`](crate::ActivityContext::validate), the request middleware),
/// before the request does any work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {why}")]
#[non_exhaustive]
pub struct InvalidIdentifier {
    /// Which identifier, e.g. `user id`.
    pub what: &'static str,
    /// What is wrong with it (never the value itself, which may be hostile).
    pub why: &'static str,
}

/// Check one identifier (see [`InvalidIdentifier`]).
///
/// ```
/// use activity_core::actor::check_identifier;
/// assert!(check_identifier("user id", "alice").is_ok());
/// assert!(check_identifier("user id", "").is_err());
/// assert!(check_identifier("user id", "bob\n").is_err());
/// assert!(check_identifier("user id", &"é".repeat(256)).is_err());
/// ```
pub fn check_identifier(what: &'static str, value: &str) -> Result<(), InvalidIdentifier> {
    let why = if value.is_empty() {
        "it is empty"
    } else if value.chars().any(char::is_control) {
        "it contains a control character"
    } else if value.len() > MAX_IDENTIFIER_CHARS && value.chars().count() > MAX_IDENTIFIER_CHARS {
        "it is longer than 255 characters"
    } else {
        return Ok(());
    };
    Err(InvalidIdentifier { what, why })
}

impl Actor {
    /// An actor known by its identifier, checked: empty ids, control characters and ids over
    /// [`MAX_IDENTIFIER_CHARS`] are refused here, where they enter, rather than at the log write
    /// after the request did its work.
    pub fn try_new(id: impl Into<String>) -> Result<Self, InvalidIdentifier> {
        let id = id.into();
        check_identifier("user id", &id)?;
        Ok(Self::new(id))
    }

    /// An actor known by its identifier only. The id is checked when the context is
    /// [validated](crate::ActivityContext::validate) (the request middleware does it) and when
    /// the entry is written; [`try_new`](Self::try_new) checks it here.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: None,
            email: None,
        }
    }

    /// Set the display name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Set the e-mail address.
    pub fn with_email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }
}
