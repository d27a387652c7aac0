//! What a user wants to hear about: everything, mutations (the default), or their own glob
//! patterns over `<scope>.<activity>`.

use activity_seaorm::ActivityEntry;
use globset::{Glob, GlobSet, GlobSetBuilder};

/// The verbs every [`Preference::Mutations`] user hears about, beside the configured workflow
/// verbs.
pub const MUTATIONS: [&str; 3] = ["created", "updated", "deleted"];

/// A user's notification preference.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preference {
    /// Every activity they may see.
    All,
    /// `created`, `updated`, `deleted` and the configured workflow verbs (the default).
    Mutations,
    /// Only activities whose `<scope>.<activity>` matches one of these globs (e.g.
    /// `FeatureFlag.*`, `*.approved`); case-insensitive.
    Custom(Vec<String>),
}

impl Preference {
    /// As stored: `all`, `mutations`, or `custom`.
    pub fn kind(&self) -> &'static str {
        match self {
            Preference::All => "all",
            Preference::Mutations => "mutations",
            Preference::Custom(_) => "custom",
        }
    }

    /// From what was stored; an unknown kind falls back to the default, never to `All`.
    pub fn from_stored(kind: &str, patterns: &[String]) -> Preference {
        match kind {
            "all" => Preference::All,
            "custom" => Preference::Custom(patterns.to_vec()),
            _ => Preference::Mutations,
        }
    }
}

/// A preference ready to test entries against (globs compiled once).
#[derive(Debug)]
pub(crate) enum Compiled {
    All,
    Mutations,
    Custom(GlobSet),
}

impl Compiled {
    /// Compile `preference`; an invalid pattern matches nothing (and is reported), so a typo
    /// never widens what a user receives.
    pub(crate) fn new(preference: &Preference) -> Compiled {
        match preference {
            Preference::All => Compiled::All,
            Preference::Mutations => Compiled::Mutations,
            Preference::Custom(patterns) => {
                let mut set = GlobSetBuilder::new();
                for pattern in patterns {
                    match Glob::new(&pattern.to_lowercase()) {
                        Ok(glob) => {
                            set.add(glob);
                        }
                        Err(e) => {
                            tracing::warn!(%pattern, error = %e, "invalid notification pattern; ignored")
                        }
                    }
                }
                Compiled::Custom(set.build().unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "notification patterns could not be compiled; none match");
                    GlobSet::empty()
                }))
            }
        }
    }

    /// Whether the user wants `entry` (`workflow`: the configured extra mutation verbs).
    pub(crate) fn wants(&self, entry: &ActivityEntry, workflow: &[String]) -> bool {
        match self {
            Compiled::All => true,
            Compiled::Mutations => {
                MUTATIONS.contains(&entry.activity.as_str()) || workflow.contains(&entry.activity)
            }
            Compiled::Custom(set) => {
                set.is_match(format!("{}.{}", entry.scope, entry.activity).to_lowercase())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(scope: &str, activity: &str) -> ActivityEntry {
        ActivityEntry::new(scope, activity)
    }

    #[test]
    fn mutations_by_default_and_workflow_verbs_on_request() {
        let m = Compiled::new(&Preference::Mutations);
        let workflow = vec!["approved".to_owned()];
        assert!(m.wants(&entry("FeatureFlag", "updated"), &workflow));
        assert!(m.wants(&entry("Document", "approved"), &workflow));
        assert!(!m.wants(&entry("Document", "viewed"), &workflow));
        assert!(!m.wants(&entry("Document", "approved"), &[]));
        assert_eq!(Preference::from_stored("bogus", &[]), Preference::Mutations);
    }

    #[test]
    fn custom_globs_match_scope_dot_activity_case_insensitively() {
        let c = Compiled::new(&Preference::Custom(vec![
            "flag*.*".into(),
            "*.approved".into(),
        ]));
        assert!(!c.wants(&entry("FeatureFlag", "viewed"), &[]));
        assert!(c.wants(&entry("FlagGroup", "viewed"), &[]));
        assert!(c.wants(&entry("Document", "approved"), &[]));
        assert!(!c.wants(&entry("Document", "updated"), &[]));
        // An invalid pattern matches nothing rather than everything.
        let bad = Compiled::new(&Preference::Custom(vec!["[".into()]));
        assert!(!bad.wants(&entry("Document", "updated"), &[]));
    }
}
