//! Who hears about an entry: subscribers of the item or of an ancestor (`descendants`), its
//! owner and delegators — minus the actor, minus whoever may not see the item, filtered by each
//! user's preference. Every step is applied to every entry; none is skipped for speed.

use std::collections::{BTreeSet, HashMap};

use activity_seaorm::{ActivityEntry, Reader};
use async_trait::async_trait;
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};

use super::prefs::Compiled;
use super::store::{activity_notification_preference, activity_subscription, stored};
use crate::error::Error;
use crate::subject::TenantKey;

pub use crate::error::BoxError;

/// Who may see an item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Visibility {
    /// Its owner and delegators only (the default: the safe guess when the application says
    /// nothing).
    #[default]
    Private,
    /// Users granted this item ([`Audience::may_see`] decides).
    Resource,
    /// Users with access to the item's scope ([`Audience::may_see`] decides).
    Scope,
    /// Members of the tenant ([`Audience::may_see`] decides).
    Tenant,
}

/// What the application knows about an entry's item. The library never guesses roles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ItemAudience {
    /// The item's owner.
    pub owner: Option<String>,
    /// Users acting for the owner.
    pub delegators: Vec<String>,
    /// The items this one is under, as `(scope, item id)`: their `descendants` subscribers
    /// watch it too.
    pub ancestors: Vec<(String, String)>,
    /// Who may see it.
    pub visibility: Visibility,
}

impl ItemAudience {
    /// Nobody but the owner.
    pub fn owned_by(owner: impl Into<String>) -> Self {
        Self {
            owner: Some(owner.into()),
            ..Self::default()
        }
    }

    /// With these delegators.
    pub fn with_delegators<S: Into<String>>(mut self, users: impl IntoIterator<Item = S>) -> Self {
        self.delegators = users.into_iter().map(Into::into).collect();
        self
    }

    /// Under these items.
    pub fn with_ancestor(mut self, scope: impl Into<String>, item_id: impl Into<String>) -> Self {
        self.ancestors.push((scope.into(), item_id.into()));
        self
    }

    /// With this visibility.
    pub fn with_visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }
}

/// The application's knowledge of ownership, delegation, hierarchy and visibility.
#[async_trait]
pub trait Audience: Send + Sync {
    /// Owner, delegators, ancestors and visibility of `entry`'s item.
    async fn item(&self, entry: &ActivityEntry) -> Result<ItemAudience, BoxError>;

    /// Whether `user_id` may see `entry`'s item under `visibility` (for
    /// [`Visibility::Private`] the owner and delegators must also pass).
    async fn may_see(
        &self,
        user_id: &str,
        entry: &ActivityEntry,
        visibility: Visibility,
    ) -> Result<bool, BoxError>;

    /// Who `user_id` is as a reader of `entry`: the configured
    /// [`ReadPolicy`](activity_seaorm::ReadPolicy) hides from them what it hides from that
    /// reader, and the notification carries the fields their role may see. The default is a
    /// member (every rule applies, no request origin): override it to tell staff apart.
    async fn reader(&self, user_id: &str, entry: &ActivityEntry) -> Result<Reader, BoxError> {
        let _ = entry;
        Ok(Reader::member(user_id))
    }
}

/// Computes recipients.
#[derive(Debug)]
pub struct Router<A> {
    audience: A,
    workflow: Vec<String>,
}

impl<A: Audience> Router<A> {
    /// A router asking `audience`.
    pub fn new(audience: A) -> Self {
        Self {
            audience,
            workflow: Vec::new(),
        }
    }

    /// Verbs that count as mutations beside `created`/`updated`/`deleted` (e.g. `approved`).
    pub fn with_workflow_verbs<S: Into<String>>(
        mut self,
        verbs: impl IntoIterator<Item = S>,
    ) -> Self {
        self.workflow = verbs.into_iter().map(Into::into).collect();
        self
    }

    /// The users to notify of `entry`, sorted.
    pub async fn recipients<C: ConnectionTrait>(
        &self,
        db: &C,
        entry: &ActivityEntry,
    ) -> Result<Vec<String>, Error> {
        Ok(self
            .readers(db, entry)
            .await?
            .into_iter()
            .filter_map(|r| r.user)
            .collect())
    }

    /// The users to notify of `entry`, sorted, each as the [`Reader`] the application says
    /// they are ([`Audience::reader`]): whoever the configured read policy hides `entry` from
    /// is not among them.
    pub async fn readers<C: ConnectionTrait>(
        &self,
        db: &C,
        entry: &ActivityEntry,
    ) -> Result<Vec<Reader>, Error> {
        let visible = self.watchers(db, entry).await?;
        let now = activity_seaorm::clock::now();
        let mut readers = Vec::with_capacity(visible.len());
        for user in visible {
            let mut reader = self
                .audience
                .reader(&user, entry)
                .await
                .map_err(Error::Audience)?;
            // The notification goes to `user`, whatever the application's reader says.
            reader.user = Some(user);
            if activity_seaorm::ActivityConfig::with_current(|c| {
                c.read_policy().allows(&reader, entry, now)
            }) {
                readers.push(reader);
            }
        }
        Ok(readers)
    }

    /// Watchers who may see the item and want the entry, before the read policy.
    async fn watchers<C: ConnectionTrait>(
        &self,
        db: &C,
        entry: &ActivityEntry,
    ) -> Result<Vec<String>, Error> {
        let key = TenantKey::of(entry);
        let tenant = key.as_str();
        let audience = self.audience.item(entry).await.map_err(Error::Audience)?;
        let mut candidates: BTreeSet<String> = subscribers(db, tenant, entry, &audience).await?;
        let mut privileged: BTreeSet<&str> = BTreeSet::new();
        if let Some(owner) = &audience.owner {
            candidates.insert(owner.clone());
            privileged.insert(owner);
        }
        for user in &audience.delegators {
            candidates.insert(user.clone());
            privileged.insert(user);
        }
        // Never notify yourself: neither the effective user nor an impersonating one.
        for actor in [&entry.user_id, &entry.impersonated_by]
            .into_iter()
            .flatten()
        {
            candidates.remove(actor);
        }
        let mut visible = Vec::with_capacity(candidates.len());
        for user in candidates {
            if audience.visibility == Visibility::Private && !privileged.contains(user.as_str()) {
                continue;
            }
            let may = self
                .audience
                .may_see(&user, entry, audience.visibility)
                .await
                .map_err(Error::Audience)?;
            if may {
                visible.push(user);
            }
        }
        if visible.is_empty() {
            return Ok(visible);
        }
        let preferences: HashMap<String, Compiled> =
            activity_notification_preference::Entity::find()
                .filter(activity_notification_preference::Column::Tenant.eq(tenant))
                .filter(
                    activity_notification_preference::Column::UserId.is_in(visible.iter().cloned()),
                )
                .all(db)
                .await?
                .into_iter()
                .map(|row| (row.user_id.clone(), Compiled::new(&stored(&row))))
                .collect();
        let default = Compiled::new(&super::Preference::Mutations);
        visible.retain(|user| {
            preferences
                .get(user)
                .unwrap_or(&default)
                .wants(entry, &self.workflow)
        });
        Ok(visible)
    }
}

/// Subscribers of the item, and `descendants` subscribers of its ancestors, in the tenant.
async fn subscribers<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    entry: &ActivityEntry,
    audience: &ItemAudience,
) -> Result<BTreeSet<String>, Error> {
    use activity_subscription::Column as S;
    let mut any = Condition::any();
    if let Some(item) = &entry.item_id {
        any = any.add(
            Condition::all()
                .add(S::Scope.eq(entry.scope.as_str()))
                .add(S::ItemId.eq(item.as_str())),
        );
    }
    for (scope, item) in &audience.ancestors {
        any = any.add(
            Condition::all()
                .add(S::Scope.eq(scope.as_str()))
                .add(S::ItemId.eq(item.as_str()))
                .add(S::Depth.eq("descendants")),
        );
    }
    if any.is_empty() {
        return Ok(BTreeSet::new());
    }
    let rows = activity_subscription::Entity::find()
        .filter(S::Tenant.eq(tenant))
        .filter(any)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|r| r.user_id).collect())
}
