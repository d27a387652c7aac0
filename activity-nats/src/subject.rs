//! Subjects and headers: `activity.<tenant>.<scope>.<activity>`, each token escaped so no id can
//! add a token, a wildcard or whitespace to a subject. A tenant is typed ([`TenantKey`]:
//! `o:<organization>` or `t:<team>`), so organization `5` and team `5` never share a subject or
//! a notification store key.

use activity_seaorm::ActivityEntry;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The token that stands for an absent tenant (`~` in a present value is escaped, so the two
/// cannot meet).
pub const NO_TENANT: &str = "~";

/// The header on a message an erasure republished (value `erasure`): the entry was already
/// delivered once, as it was; consumers that act on new entries (notifications, alerts) skip
/// it, copies that store entries replace theirs with it.
pub const REPUBLISHED: &str = "Activity-Republished";

/// Whether a consumer that acts on new entries should skip `message`: an erasure's `erased`
/// event, or an entry an erasure republished.
pub fn is_erasure_traffic(message: &async_nats::Message) -> bool {
    message.subject.ends_with(ERASED_SUFFIX)
        || message
            .headers
            .as_ref()
            .is_some_and(|h| h.get(REPUBLISHED).is_some())
}

/// `value` as one subject token: ASCII letters, digits, `-` and `_` stay; every other byte
/// (`.`, `*`, `>`, whitespace, `%`, `~`, non-ASCII) becomes `%XX`, and an empty value is a lone
/// `%` (an empty token is not allowed). Escaping is injective: two values never share a token.
pub fn token(value: &str) -> String {
    if value.is_empty() {
        return "%".to_owned();
    }
    utf8_percent_encode(value, TOKEN_SAFE).to_string()
}

/// What a token keeps as is: ASCII letters, digits, `-` and `_`.
const TOKEN_SAFE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// A tenant as one key, its kind part of it: `o:<id>` for an organization, `t:<id>` for a
/// team, empty for none. Where tenants are one key (stream subjects, the notification store),
/// organization `5` and team `5` must not be the same tenant.
///
/// ```
/// use activity_nats::subject::TenantKey;
/// use activity_seaorm::ActivityEntry;
/// assert_ne!(TenantKey::organization("5"), TenantKey::team("5"));
/// let mut entry = ActivityEntry::new("FeatureFlag", "updated");
/// entry.team_id = Some("5".into());
/// assert_eq!(TenantKey::of(&entry).as_str(), "t:5");
/// entry.organization_id = Some("acme".into());
/// assert_eq!(TenantKey::of(&entry).as_str(), "o:acme");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantKey(String);

impl TenantKey {
    /// An organization.
    pub fn organization(id: &str) -> Self {
        TenantKey(format!("o:{id}"))
    }

    /// A team.
    pub fn team(id: &str) -> Self {
        TenantKey(format!("t:{id}"))
    }

    /// No tenant.
    pub fn none() -> Self {
        TenantKey(String::new())
    }

    /// A key as `activity_seaorm::entry::tenant_key` makes it (`o:<id>`, `t:<id>`, empty).
    pub(crate) fn from_key(key: &str) -> Self {
        TenantKey(key.to_owned())
    }

    /// The tenant of `entry`: its organization, else its team, else none.
    pub fn of(entry: &ActivityEntry) -> Self {
        TenantKey(activity_seaorm::entry::tenant_key(
            entry.organization_id.as_deref(),
            entry.team_id.as_deref(),
        ))
    }

    /// The key as stored (`o:acme`, `t:7`, or empty).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is no tenant.
    pub fn is_none(&self) -> bool {
        self.0.is_empty()
    }

    /// As a subject token: the kind as is, the id escaped ([`token`]); [`NO_TENANT`] for none.
    pub fn token(&self) -> String {
        match self.0.split_once(':') {
            Some((kind, id)) => format!("{kind}:{}", token(id)),
            None => NO_TENANT.to_owned(),
        }
    }
}

impl std::fmt::Display for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The end of every `erased` event's subject: `~` in the scope's place, which no entry's scope
/// token can be (a `~` in a scope is escaped).
const ERASED_SUFFIX: &str = ".~.erased";

/// `<prefix>.<tenant>.~.erased`: where an erasure tells `tenant`'s consumers which of their
/// entries it rewrote (`{"pseudonym": .., "entry_ids": [..]}`). Never an entry's subject.
///
/// ```
/// use activity_nats::subject::{TenantKey, erased_subject};
/// assert_eq!(erased_subject("activity", &TenantKey::organization("acme")), "activity.o:acme.~.erased");
/// assert_eq!(erased_subject("activity", &TenantKey::none()), "activity.~.~.erased");
/// ```
pub fn erased_subject(prefix: &str, tenant: &TenantKey) -> String {
    format!("{prefix}.{}{ERASED_SUFFIX}", tenant.token())
}

/// `<prefix>.<tenant>.<scope>.<activity>` for `entry` (the prefix is used as given: it is the
/// operator's, not data).
///
/// ```
/// use activity_nats::subject::subject;
/// use activity_seaorm::ActivityEntry;
/// let mut entry = ActivityEntry::new("FeatureFlag", "updated");
/// entry.organization_id = Some("acme.eu".into());
/// assert_eq!(subject("activity", &entry), "activity.o:acme%2Eeu.FeatureFlag.updated");
/// entry.organization_id = None;
/// entry.team_id = Some("7".into());
/// assert_eq!(subject("activity", &entry), "activity.t:7.FeatureFlag.updated");
/// entry.team_id = None;
/// assert_eq!(subject("activity", &entry), "activity.~.FeatureFlag.updated");
/// ```
pub fn subject(prefix: &str, entry: &ActivityEntry) -> String {
    let tenant = TenantKey::of(entry).token();
    format!(
        "{prefix}.{tenant}.{}.{}",
        token(&entry.scope),
        token(&entry.activity)
    )
}

/// A header value: kept as is unless it holds a control character (which would end the header
/// line), then escaped like a subject token.
pub(crate) fn header_value(value: &str) -> String {
    if value.chars().any(char::is_control) {
        token(value)
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_cannot_add_tokens_wildcards_or_whitespace() {
        for (raw, escaped) in [
            ("acme", "acme"),
            ("team_1-b", "team_1-b"),
            ("a.b", "a%2Eb"),
            ("*", "%2A"),
            (">", "%3E"),
            ("a b\tc", "a%20b%09c"),
            ("50%", "50%25"),
            ("~", "%7E"),
            ("é", "%C3%A9"),
            ("", "%"),
        ] {
            assert_eq!(token(raw), escaped, "{raw:?}");
        }
    }

    #[test]
    fn distinct_values_give_distinct_tokens() {
        let values = ["", "%", "~", "a.b", "a%2Eb", "a_b", "A", "a"];
        let tokens: std::collections::HashSet<String> = values.iter().map(|v| token(v)).collect();
        assert_eq!(tokens.len(), values.len());
        assert!(!tokens.contains(NO_TENANT));
    }

    #[test]
    fn header_values_never_break_a_line() {
        assert_eq!(header_value("corr-1"), "corr-1");
        assert_eq!(header_value("a\r\nX: y"), "a%0D%0AX%3A%20y");
    }
}
