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

impl Actor {
    /// An actor known by its identifier only.
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
