//! Erasure requests: replace a user's identity in the log by a keyed pseudonym (see
//! [`anonymize_user`] for exactly what is touched).

use activity_core::{ActivityContext, ActivityEntry, ActivityError};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use scoped_futures::ScopedFutureExt;
use sea_orm::sea_query::Condition;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionTrait,
};
use sha2::Sha256;

use crate::config::ActivityConfig;
use crate::errors::Error;
use crate::schema::table::activity_log::{ActiveModel, Column, Entity, Model};

/// Rows read and rewritten per batch by [`anonymize_user`]: memory stays bounded whatever the
/// user's history.
pub const ERASURE_BATCH: u64 = 500;

/// Shortest erasure key accepted, in bytes. A shorter "secret" could be guessed, and with it
/// every pseudonym recomputed from the user ids.
pub const MIN_ERASURE_KEY: usize = 16;

/// The scope and activity of the entry that records an erasure (its item id is the
/// pseudonym).
pub const ERASURE_SCOPE: &str = "User";
/// See [`ERASURE_SCOPE`].
pub const ERASURE_ACTIVITY: &str = "anonymized";

/// Domain separation: the same key used elsewhere never yields these pseudonyms.
const PSEUDONYM_CONTEXT: &[u8] = b"activity-seaorm erasure pseudonym v1\0";

/// The pseudonym that replaces `user_id` in erased entries: `anon-` and the first 128 bits of
/// HMAC-SHA256(erasure key, `user_id`) in hex. Stable for one key (a user erased twice gets
/// the same one, so their history stays linked), and it cannot be recomputed from the id by
/// anyone without the key (an unkeyed hash of a small integer id can be reversed by trying
/// them all). A value that already is a pseudonym is its own.
///
/// Fails with [`Error::ErasureKey`] when [`ActivityConfig::with_erasure_key`] was not given a
/// key of at least [`MIN_ERASURE_KEY`] bytes.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use activity_seaorm::ActivityConfig;
/// use activity_seaorm::ops::erasure::pseudonym;
/// let config = ActivityConfig::new().with_erasure_key(b"0123456789abcdef0123456789abcdef");
/// let alias = ActivityConfig::scope(config, async { pseudonym("42") }).await.unwrap();
/// assert!(alias.starts_with("anon-") && alias.len() == 37);
/// assert!(pseudonym("42").is_err(), "no key configured here");
/// # }
/// ```
pub fn pseudonym(user_id: &str) -> Result<String, Error> {
    Ok(Pseudonymizer::current()?.alias(user_id))
}

/// The keyed pseudonyms of the configured erasure key, for many values: erasure writes them
/// into every personal field it rewrites (each value its own: a name becomes the name's
/// pseudonym, an address the address's), and the [sealed](crate::ops::seal) canonical form
/// hashes the same ones, so an erased entry hashes as it did before.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer { key: <redacted> }")
    }
}

impl Pseudonymizer {
    /// Under the configured [`ActivityConfig::with_erasure_key`]; fails with
    /// [`Error::ErasureKey`] without one of at least [`MIN_ERASURE_KEY`] bytes.
    pub fn current() -> Result<Self, Error> {
        ActivityConfig::with_current(|config| {
            let key = config.erasure_key().ok_or(Error::ErasureKey {
                why: "no key is configured",
                min: MIN_ERASURE_KEY,
            })?;
            if key.len() < MIN_ERASURE_KEY {
                return Err(Error::ErasureKey {
                    why: "the configured key is too short",
                    min: MIN_ERASURE_KEY,
                });
            }
            let mut mac =
                <Hmac<Sha256> as KeyInit>::new_from_slice(key).map_err(|_| Error::ErasureKey {
                    why: "the configured key was refused by HMAC",
                    min: MIN_ERASURE_KEY,
                })?;
            mac.update(PSEUDONYM_CONTEXT);
            Ok(Pseudonymizer { mac })
        })
    }

    /// A fingerprint of the key (16 hex digits of its HMAC over a reserved value): sealed
    /// blocks name it, so a block checked under another key says so instead of mismatching.
    pub fn key_id(&self) -> String {
        let mut mac = self.mac.clone();
        mac.update(b"\0activity-seaorm erasure key id");
        hex::encode(&mac.finalize().into_bytes()[..8])
    }

    /// The pseudonym of `value` (itself when it already is one).
    pub fn alias(&self, value: &str) -> String {
        if activity_core::seal::is_pseudonym(value) {
            return value.to_owned();
        }
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        format!(
            "{}{}",
            activity_core::seal::PSEUDONYM_PREFIX,
            hex::encode(&digest[..16])
        )
    }
}

/// Answer an erasure request: replace `user_id`'s identity in the log by its [`pseudonym`].
///
/// The configured [`ActivityConfig::with_user_scopes`] name the scopes whose items are users
/// (e.g. `["User"]`, the scope of the application's user model); with none, only the entries
/// the user made are touched. What is touched, and nothing else:
///
/// - entries **by** the user (`user_id` or `impersonated_by` equal to `user_id`): the actor
///   columns that hold the user (`user_id`, `impersonated_by`) become the pseudonym, and their
///   `user_name` and, when the request was theirs (they acted as themselves or impersonated
///   someone), its `ip_address` and `user_agent` (enough to link the pseudonym back to them)
///   become each its own pseudonym (see [`Pseudonymizer`]: the sealed history hashes these, so
///   erasure leaves every proof valid). A request made by someone impersonating the user was
///   the impersonator's: its address and browser stay. The rest of the entry —
///   what they did, to which item, the request id and client — stays as it is;
/// - entries **about** the user (scope among the user scopes, `item_id == user_id`): `item_id`,
///   and `detail.name`, `detail.short_id` and each change's `before`/`after` that are a JSON
///   string *exactly equal* to one of the user's known values, become that value's pseudonym
///   (the id's is the pseudonym). The known
///   values are the id, every `user_name` recorded with it as actor, and every `detail.name`
///   of the entries about the user. Other personal fields of the user's record (an email that
///   is not its name) are not known here: declare them `#[activity(mask)]` so they are never
///   written.
///
/// Matching is whole-value equality, never a substring: erasing user `1` named `Al` leaves
/// `release-2026-01-11`, `Alice` and user `11` alone, and every other entry — other users,
/// other tenants — stays byte for byte as it was.
///
/// - **Key.** Needs [`ActivityConfig::with_erasure_key`]; without one it fails with
///   [`Error::ErasureKey`] before touching anything.
/// - **Bounded.** Works through the matching rows in batches of [`ERASURE_BATCH`], in
///   `(created_at, id)` order with a keyset bound, never loading them all, in one pass per
///   way a row can name the user: as actor (the `user_id` index), as impersonator (the
///   partial impersonator index; on MySQL, which has no partial index, a scan), and as the
///   item of a user scope. The item index leads with the team, so the last pass looks the item
///   up team by team: one statement finds the next 500 teams that have entries (a skip scan,
///   one index descent each) and one more reads the item in their ranges of the item index,
///   instead of a scan of the whole table (minutes at a billion entries). Entries committed
///   while it runs (at READ COMMITTED, in a team the walk has passed) are left for the next
///   run, which rewrites them and records them.
/// - **Atomic.** Runs in one transaction (a savepoint when `db` is a transaction) that enters
///   [`guard::enter_maintenance`](crate::schema::guard::enter_maintenance) and ends maintenance again
///   before it commits, so it works with the append-only guard installed and leaves the rest
///   of a caller's transaction refused by it.
/// - **Recorded.** Writes one entry, scope [`ERASURE_SCOPE`], activity [`ERASURE_ACTIVITY`],
///   item id the pseudonym, `detail.context = {"rows_rewritten": n}`, with the current actor —
///   unless the current actor (or impersonator) is the erased user, then as a system entry, so
///   the record does not name them.
/// - **Idempotent.** A second run finds nothing left to rewrite (every match has had the id
///   replaced) and, since the record for this pseudonym exists, writes nothing: it returns 0
///   and changes nothing. (A run that does rewrite rows — the user acted again after the
///   first erasure — records a new entry for those rows.)
///
/// Returns how many rows were rewritten.
pub async fn anonymize_user<C>(db: &C, user_id: &str) -> Result<u64, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    Ok(anonymize(db, user_id, None).await?.entry_ids.len() as u64)
}

/// One tenant, for an erasure that must stay inside it (a user who leaves one organization
/// but stays in another).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErasureTenant {
    /// Entries whose `organization_id` is this.
    Organization(String),
    /// Entries whose `team_id` is this.
    Team(String),
}

impl ErasureTenant {
    fn condition(&self) -> Condition {
        match self {
            ErasureTenant::Organization(id) => Condition::all().add(Column::OrganizationId.eq(id)),
            ErasureTenant::Team(id) => Condition::all().add(Column::TeamId.eq(id)),
        }
    }

    /// Whether `entry` (an [`ActivityEntry`]'s JSON) belongs to this tenant.
    pub fn holds(&self, entry: &serde_json::Value) -> bool {
        let (key, id) = match self {
            ErasureTenant::Organization(id) => ("organization_id", id),
            ErasureTenant::Team(id) => ("team_id", id),
        };
        entry.get(key).and_then(serde_json::Value::as_str) == Some(id.as_str())
    }
}

/// [`anonymize_user`], returning what every other copy needs to follow it: the pseudonym, the
/// user's known values (read before the rewrite) and the ids of the entries rewritten.
pub(crate) async fn anonymize<C>(
    db: &C,
    user_id: &str,
    tenant: Option<&ErasureTenant>,
) -> Result<ErasureRequest, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    if user_id.is_empty() || user_id.contains('\0') {
        return Err(ActivityError::InvalidQuery(
            "anonymize_user: the user id must be non-empty text without NUL".into(),
        )
        .into());
    }
    // Derive the pseudonym first: without a key, fail before anything is changed.
    let aliases = Pseudonymizer::current()?;
    let alias = aliases.alias(user_id);
    let user = user_id.to_owned();
    let scopes: Vec<String> = ActivityConfig::with_current(|c| c.user_scopes().to_vec());
    let operator_is_user = ActivityContext::current().is_some_and(|ctx| {
        ctx.user().is_some_and(|a| a.id == user_id)
            || ctx.impersonated_by().is_some_and(|a| a.id == user_id)
    });
    let work = crate::transaction(db, |txn| {
        async move {
            let target = Target {
                user: &user,
                alias: &alias,
                aliases: &aliases,
                scopes: &scopes,
                tenant,
            };
            crate::schema::guard::maintenance(txn, erase(txn, &target)).await
        }
        .scope_boxed()
    });
    if operator_is_user {
        ActivityContext::scope(ActivityContext::system(), work).await
    } else {
        work.await
    }
}

/// After the copies taught `request` values the log did not know the user by (a name they had
/// before the entries that still say so were archived and pruned): replace those values in the
/// log's entries about the user too, which the first pass left as they were. Returns how many
/// entries changed.
pub(crate) async fn rewrite_learned<C>(
    db: &C,
    request: &mut ErasureRequest,
    before: &[String],
) -> Result<u64, Error>
where
    C: ConnectionTrait + TransactionTrait,
{
    // What is new: not known to this run's log pass, nor to an earlier run's record.
    let learned: Vec<String> = request
        .known_values
        .iter()
        .filter(|v| {
            before.binary_search(v).is_err()
                && request
                    .known_pseudonyms
                    .binary_search(&request.aliases.alias(v))
                    .is_err()
        })
        .cloned()
        .collect();
    if learned.is_empty() {
        return Ok(0);
    }
    let pseudonyms: Vec<String> = learned.iter().map(|v| request.aliases.alias(v)).collect();
    let shared = &*request;
    let learned = &learned;
    let work = crate::transaction(db, |txn| {
        async move {
            // The entries about the user now name the pseudonym.
            let target = Target {
                user: &shared.pseudonym,
                alias: &shared.pseudonym,
                aliases: &shared.aliases,
                scopes: &shared.user_scopes,
                tenant: shared.tenant.as_ref(),
            };
            let rewrite = async {
                let mut changed = 0u64;
                let mut about = target.about_ranges();
                while let Some(range) = about.next(txn).await? {
                    let mut after = None;
                    loop {
                        let rows = batch(txn, range.clone(), after).await?;
                        let Some(last) = rows.last() else { break };
                        after = Some((last.created_at, last.id));
                        let full = rows.len() as u64 == ERASURE_BATCH;
                        for row in rows {
                            let mut detail = row.detail.clone();
                            replace_known(&mut detail, &shared.known_values, &[], &shared.aliases);
                            if detail == row.detail {
                                continue;
                            }
                            let mut am = row.clone().into_active_model();
                            am.detail = Set(detail);
                            if update(txn, am, &row).await? {
                                changed += 1;
                            }
                        }
                        if !full {
                            break;
                        }
                    }
                }
                // Recorded, so a later run still knows them when the archives no longer say.
                record(txn, &target, changed, learned).await?;
                Ok::<_, Error>(changed)
            };
            crate::schema::guard::maintenance(txn, rewrite).await
        }
        .scope_boxed()
    });
    let changed = work.await?;
    request.known_pseudonyms.extend(pseudonyms);
    request.known_pseudonyms.sort();
    request.known_pseudonyms.dedup();
    Ok(changed)
}

/// One erasure as every copy applies it: who, the pseudonym that replaces them, the scopes
/// whose items are users, the values known to name them, and the log entries rewritten. The
/// rules are those of [`anonymize_user`], applied to an entry's JSON (an archive line, a
/// stream message), so every copy ends up as the log did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ErasureRequest {
    /// The erased user's id.
    pub user_id: String,
    /// Their [`pseudonym`].
    pub pseudonym: String,
    /// Scopes whose items are users ([`ActivityConfig::with_user_scopes`]).
    pub user_scopes: Vec<String>,
    /// Values that name the user (id, recorded names), sorted.
    pub known_values: Vec<String>,
    /// The pseudonyms of the values earlier erasures of the user knew (each records them in
    /// its `anonymized` entry), sorted: a copy an earlier run did not reach may still hold
    /// values the log no longer does, and a value whose pseudonym is here is replaced too.
    pub known_pseudonyms: Vec<String>,
    /// The log entries the erasure rewrote, in `(created_at, id)` order.
    pub entry_ids: Vec<uuid::Uuid>,
    /// The same entries by tenant key (`o:<organization>`, `t:<team>`, empty for none): each
    /// tenant's consumers are told of their own.
    pub entry_ids_by_tenant: std::collections::BTreeMap<String, Vec<uuid::Uuid>>,
    /// The one tenant the erasure stays in, if any: copies touch only its entries.
    pub tenant: Option<ErasureTenant>,
    /// The key's pseudonyms, for the values a copy holds.
    pub(crate) aliases: Pseudonymizer,
}

impl ErasureRequest {
    fn text<'a>(entry: &'a serde_json::Value, key: &str) -> Option<&'a str> {
        entry.get(key).and_then(serde_json::Value::as_str)
    }

    fn by_user(&self, entry: &serde_json::Value) -> bool {
        Self::text(entry, "user_id") == Some(self.user_id.as_str())
    }

    fn by_impersonator(&self, entry: &serde_json::Value) -> bool {
        Self::text(entry, "impersonated_by") == Some(self.user_id.as_str())
    }

    /// About the user: its item is the user, or the pseudonym an earlier run wrote there (whose
    /// detail may still hold a value learned since).
    fn about(&self, entry: &serde_json::Value) -> bool {
        let item = Self::text(entry, "item_id");
        (item == Some(self.user_id.as_str()) || item == Some(self.pseudonym.as_str()))
            && self.of_user_scope(entry)
    }

    /// In one of the scopes whose items are users, and not an erasure's own record.
    fn of_user_scope(&self, entry: &serde_json::Value) -> bool {
        Self::text(entry, "scope").is_some_and(|s| self.user_scopes.iter().any(|u| u == s))
            && !Self::is_record(entry)
    }

    /// An erasure's own `anonymized` entry (its item is the pseudonym; it names no one else).
    fn is_record(entry: &serde_json::Value) -> bool {
        Self::text(entry, "scope") == Some(ERASURE_SCOPE)
            && Self::text(entry, "activity") == Some(ERASURE_ACTIVITY)
    }

    /// Whether `entry` (an [`ActivityEntry`]'s JSON, in the erasure's tenant if it has one)
    /// was rewritten by an erasure of the user: it names the pseudonym where it named the user.
    /// A copy lists such entries in its news of the erasure again, in case an earlier run
    /// could not tell of them.
    pub fn erased_before(&self, entry: &serde_json::Value) -> bool {
        let alias = Some(self.pseudonym.as_str());
        self.tenant.as_ref().is_none_or(|t| t.holds(entry))
            && !Self::is_record(entry)
            && (Self::text(entry, "user_id") == alias
                || Self::text(entry, "impersonated_by") == alias
                || (Self::text(entry, "item_id") == alias && self.of_user_scope(entry)))
    }

    /// Whether `entry` (an [`ActivityEntry`]'s JSON) is by or about the user (and in the
    /// erasure's tenant, if it has one).
    pub fn touches(&self, entry: &serde_json::Value) -> bool {
        self.tenant.as_ref().is_none_or(|t| t.holds(entry))
            && (self.by_user(entry) || self.by_impersonator(entry) || self.about(entry))
    }

    /// Add the values `entry` knows the user by (the name recorded with them as actor, the
    /// name of an entry about them): a copy may hold names the log no longer does.
    pub fn learn(&mut self, entry: &serde_json::Value) {
        let mut found = Vec::new();
        if self.by_user(entry) {
            found.extend(Self::text(entry, "user_name"));
        }
        if self.about(entry) {
            found.extend(
                entry
                    .get("detail")
                    .and_then(|d| d.get("name"))
                    .and_then(serde_json::Value::as_str),
            );
        }
        // A pseudonym an earlier run wrote names no one: nothing to learn.
        for value in found
            .into_iter()
            .filter(|v| !v.is_empty() && !activity_core::seal::is_pseudonym(v))
        {
            if let Err(at) = self
                .known_values
                .binary_search_by(|k| k.as_str().cmp(value))
            {
                self.known_values.insert(at, value.to_owned());
            }
        }
    }

    /// Rewrite `entry` (an [`ActivityEntry`]'s JSON) as [`anonymize_user`] rewrites a row;
    /// whether anything changed. Entries neither by nor about the user are left untouched.
    pub fn erase(&self, entry: &mut serde_json::Value) -> bool {
        if !self.touches(entry) {
            return false;
        }
        let by_user = self.by_user(entry);
        let impersonator = self.by_impersonator(entry);
        let about = self.about(entry);
        let before = entry.clone();
        let alias = serde_json::Value::String(self.pseudonym.clone());
        let aliases = &self.aliases;
        let Some(map) = entry.as_object_mut() else {
            return false;
        };
        let own_alias = |map: &mut serde_json::Map<String, serde_json::Value>, key: &str| {
            if let Some(serde_json::Value::String(v)) = map.get_mut(key) {
                *v = aliases.alias(v);
            }
        };
        if by_user {
            map.insert("user_id".into(), alias.clone());
            own_alias(map, "user_name");
        }
        if impersonator {
            map.insert("impersonated_by".into(), alias.clone());
        }
        let impersonated = map.get("impersonated_by").is_some_and(|v| !v.is_null());
        if request_by(by_user, impersonator, impersonated) {
            own_alias(map, "ip_address");
            own_alias(map, "user_agent");
        }
        if about {
            map.insert("item_id".into(), alias);
            if let Some(detail) = map.get_mut("detail") {
                replace_known(detail, &self.known_values, &self.known_pseudonyms, aliases);
            }
        }
        *entry != before
    }
}

/// Whether an entry's request (its IP address and user agent) was the erased user's: by them
/// when no one impersonated them, or as the impersonator.
fn request_by(by_user: bool, impersonator: bool, impersonated: bool) -> bool {
    impersonator || (by_user && !impersonated)
}

/// Who is erased, as what, and which scopes hold users.
struct Target<'a> {
    user: &'a str,
    alias: &'a str,
    aliases: &'a Pseudonymizer,
    scopes: &'a [String],
    tenant: Option<&'a ErasureTenant>,
}

impl Target<'_> {
    /// Entries by the user, one condition per access path: as actor (the `user_id` index), as
    /// impersonator (the impersonator index). A row [`rewrite`] changed matches neither again.
    fn passes(&self) -> [Condition; 2] {
        [
            self.in_tenant(Condition::all().add(Column::UserId.eq(self.user))),
            self.in_tenant(Condition::all().add(Column::ImpersonatedBy.eq(self.user))),
        ]
    }

    /// Entries about the user.
    fn about(&self) -> Condition {
        self.in_tenant(
            Condition::all()
                .add(Column::Scope.is_in(self.scopes.iter().map(String::as_str)))
                .add(Column::ItemId.eq(self.user)),
        )
    }

    /// The ranges of entries about the user, walked one after another (see [`AboutRanges`]).
    fn about_ranges(&self) -> AboutRanges<'_> {
        AboutRanges {
            target: self,
            next: if self.scopes.is_empty() {
                Range::Done
            } else if matches!(self.tenant, Some(ErasureTenant::Team(_))) {
                Range::Tenant
            } else {
                Range::NoTeam
            },
        }
    }

    /// `c`, inside the erasure's tenant if it has one.
    fn in_tenant(&self, c: Condition) -> Condition {
        match self.tenant {
            Some(tenant) => Condition::all().add(c).add(tenant.condition()),
            None => c,
        }
    }

    fn is_about(&self, row: &Model) -> bool {
        row.item_id.as_deref() == Some(self.user) && self.scopes.contains(&row.scope)
    }
}

/// Teams a step of [`AboutRanges`] finds, and so the most a range names.
const TEAMS_PER_RANGE: u32 = 500;

/// The entries about the user as conditions that each read ranges of an index. The only index
/// that names an item leads with the team, so the user's item is looked up team by team: a
/// step finds the next [`TEAMS_PER_RANGE`] teams that have entries (one statement, one index
/// descent per team) and its range reads the item in each of them; the entries without a team
/// are one more range. That replaces a scan of the whole table with a few statements per 500
/// teams. An organization's erasure walks the teams the same way, its condition in each range;
/// a team's is that team's one range.
struct AboutRanges<'t> {
    target: &'t Target<'t>,
    next: Range,
}

/// Where [`AboutRanges`] is.
enum Range {
    /// The erasure's tenant: its one condition.
    Tenant,
    /// The entries without a team, then the first teams.
    NoTeam,
    /// The first teams, or the teams after this one.
    After(Option<String>),
    Done,
}

impl AboutRanges<'_> {
    async fn next<C: ConnectionTrait>(&mut self, txn: &C) -> Result<Option<Condition>, Error> {
        let about = self.target.about();
        let after = match std::mem::replace(&mut self.next, Range::Done) {
            Range::Done => return Ok(None),
            Range::Tenant => return Ok(Some(about)),
            Range::NoTeam => {
                self.next = Range::After(None);
                return Ok(Some(about.add(Column::TeamId.is_null())));
            }
            Range::After(team) => team,
        };
        let teams = teams_after(txn, after.as_deref()).await?;
        let Some(last) = teams.last().cloned() else {
            return Ok(None);
        };
        if teams.len() as u32 == TEAMS_PER_RANGE {
            self.next = Range::After(Some(last));
        }
        Ok(Some(about.add(Column::TeamId.is_in(teams))))
    }
}

/// The next [`TEAMS_PER_RANGE`] distinct teams after `after` (from the first without it), in
/// order. A recursive query that steps from team to team (a skip scan: each step the first
/// index entry past the previous team, on a partitioned table one descent per partition),
/// counted so that it stops after the page on every backend.
async fn teams_after<C: ConnectionTrait>(
    txn: &C,
    after: Option<&str>,
) -> Result<Vec<String>, Error> {
    let backend = txn.get_database_backend();
    let (first, values) = match after {
        Some(team) => (
            match backend {
                DbBackend::Postgres => "team_id > $1",
                _ => "team_id > ?",
            },
            vec![sea_orm::Value::from(team)],
        ),
        None => ("team_id IS NOT NULL", Vec::new()),
    };
    let sql = format!(
        "WITH RECURSIVE teams (t, n) AS ( \
           SELECT (SELECT team_id FROM activity_log WHERE {first} ORDER BY team_id LIMIT 1), 1 \
           UNION ALL \
           SELECT (SELECT a.team_id FROM activity_log a WHERE a.team_id > teams.t \
                   ORDER BY a.team_id LIMIT 1), teams.n + 1 \
           FROM teams WHERE teams.t IS NOT NULL AND teams.n < {TEAMS_PER_RANGE} \
         ) SELECT t FROM teams WHERE t IS NOT NULL ORDER BY n"
    );
    let rows = txn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?;
    let mut teams = Vec::with_capacity(rows.len());
    for row in rows {
        teams.push(row.try_get::<String>("", "t")?);
    }
    Ok(teams)
}

/// The rewrite, inside the transaction and maintenance.
async fn erase<C: ConnectionTrait>(txn: &C, target: &Target<'_>) -> Result<ErasureRequest, Error> {
    // The ranges about the user that held entries: the rewrite reads only those again.
    let (known, about) = known_values(txn, target).await?;
    let mut rewritten = 0u64;
    let mut keys: Vec<(DateTime<Utc>, uuid::Uuid, String)> = Vec::new();
    for condition in target.passes().into_iter().chain(about) {
        let mut after: Option<(DateTime<Utc>, uuid::Uuid)> = None;
        loop {
            let rows = batch(txn, condition.clone(), after).await?;
            let Some(last) = rows.last() else { break };
            after = Some((last.created_at, last.id));
            let full = rows.len() as u64 == ERASURE_BATCH;
            for row in rows {
                let key = (
                    row.created_at,
                    row.id,
                    crate::entry::tenant_key(
                        row.organization_id.as_deref(),
                        row.team_id.as_deref(),
                    ),
                );
                if rewrite(txn, target, &known, row).await? {
                    rewritten += 1;
                    keys.push(key);
                }
            }
            if !full {
                break;
            }
        }
    }
    keys.sort_unstable();
    let mut entry_ids_by_tenant: std::collections::BTreeMap<String, Vec<uuid::Uuid>> =
        std::collections::BTreeMap::new();
    for (_, id, tenant) in &keys {
        entry_ids_by_tenant
            .entry(tenant.clone())
            .or_default()
            .push(*id);
    }
    let entry_ids = keys.into_iter().map(|(_, id, _)| id).collect();
    let mut known_pseudonyms = earlier_pseudonyms(txn, target).await?;
    known_pseudonyms.extend(known.iter().map(|v| target.aliases.alias(v)));
    known_pseudonyms.sort();
    known_pseudonyms.dedup();
    if rewritten > 0 || !recorded(txn, target).await? {
        record(txn, target, rewritten, &known).await?;
    }
    Ok(ErasureRequest {
        user_id: target.user.to_owned(),
        pseudonym: target.alias.to_owned(),
        user_scopes: target.scopes.to_vec(),
        known_values: known,
        known_pseudonyms,
        entry_ids,
        entry_ids_by_tenant,
        tenant: target.tenant.cloned(),
        aliases: target.aliases.clone(),
    })
}

/// The next batch of rows matching `condition` after the keyset position `after`, oldest first.
async fn batch<C: ConnectionTrait>(
    txn: &C,
    condition: Condition,
    after: Option<(DateTime<Utc>, uuid::Uuid)>,
) -> Result<Vec<Model>, Error> {
    let mut condition = Condition::all().add(condition);
    if let Some((at, id)) = after {
        condition = condition.add(
            Condition::any().add(Column::CreatedAt.gt(at)).add(
                Condition::all()
                    .add(Column::CreatedAt.eq(at))
                    .add(Column::Id.gt(id)),
            ),
        );
    }
    Ok(crate::schema::table::find_entries()
        .filter(condition)
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .limit(ERASURE_BATCH)
        .all(txn)
        .await?)
}

/// The user's known values: the id, the names recorded with it as actor, and the names of the
/// entries about the user (a handful of distinct strings, whatever the history's length); and
/// the ranges of [`AboutRanges`] that held entries about the user.
async fn known_values<C: ConnectionTrait>(
    txn: &C,
    target: &Target<'_>,
) -> Result<(Vec<String>, Vec<Condition>), Error> {
    let mut known = vec![target.user.to_owned()];
    let names: Vec<Option<String>> = Entity::find()
        .select_only()
        .column(Column::UserName)
        .distinct()
        .filter(target.in_tenant(Condition::all().add(Column::UserId.eq(target.user))))
        .into_tuple()
        .all(txn)
        .await?;
    known.extend(names.into_iter().flatten());
    let mut about = target.about_ranges();
    let mut held = Vec::new();
    while let Some(range) = about.next(txn).await? {
        let mut after = None;
        loop {
            let rows = batch(txn, range.clone(), after).await?;
            let Some(last) = rows.last() else { break };
            if after.is_none() {
                held.push(range.clone());
            }
            after = Some((last.created_at, last.id));
            let full = rows.len() as u64 == ERASURE_BATCH;
            for row in rows {
                if let Some(serde_json::Value::String(name)) = row.detail.get("name") {
                    known.push(name.clone());
                }
            }
            if !full {
                break;
            }
        }
    }
    known.retain(|v| !v.is_empty());
    known.sort();
    known.dedup();
    Ok((known, held))
}

/// Rewrite one row in place; whether anything changed.
async fn rewrite<C: ConnectionTrait>(
    txn: &C,
    target: &Target<'_>,
    known: &[String],
    row: Model,
) -> Result<bool, Error> {
    let about = target.is_about(&row);
    let by_user = row.user_id.as_deref() == Some(target.user);
    let mut am = row.clone().into_active_model();
    let alias = |v: &Option<String>| v.as_deref().map(|v| target.aliases.alias(v));
    if by_user {
        am.user_id = Set(Some(target.alias.to_owned()));
        if row.user_name.is_some() {
            am.user_name = Set(alias(&row.user_name));
        }
    }
    let impersonator = row.impersonated_by.as_deref() == Some(target.user);
    if impersonator {
        am.impersonated_by = Set(Some(target.alias.to_owned()));
    }
    // The request came from the user (acting as themselves, or impersonating someone): its
    // address and browser string are theirs, and would link the pseudonym back to them. Each
    // becomes its own pseudonym (what the sealed canonical form hashes), never the value. When
    // someone else impersonated the user, the request was theirs: it stays, as evidence of
    // where they acted from.
    if request_by(by_user, impersonator, row.impersonated_by.is_some()) {
        if row.ip_address.is_some() {
            am.ip_address = Set(alias(&row.ip_address));
        }
        if row.user_agent.is_some() {
            am.user_agent = Set(alias(&row.user_agent));
        }
    }
    if about {
        am.item_id = Set(Some(target.alias.to_owned()));
        let mut detail = row.detail.clone();
        replace_known(&mut detail, known, &[], target.aliases);
        if detail != row.detail {
            am.detail = Set(detail);
        }
    }
    if !am.is_changed() {
        return Ok(false);
    }
    update(txn, am, &row).await
}

/// Write `am`'s changes to `row`, whether it is still there.
async fn update<C: ConnectionTrait>(txn: &C, am: ActiveModel, row: &Model) -> Result<bool, Error> {
    // By the whole key: the time lets a partitioned log go to the row's month, where the id
    // alone is looked up in every partition (and planned for each: ~10 ms a row at 20M).
    let by_key = Entity::update_many()
        .set(am.clone())
        .filter(Column::Id.eq(row.id))
        .filter(Column::CreatedAt.eq(row.created_at))
        .exec(txn)
        .await?;
    // Elsewhere the time is a typed column: a miss means the row is gone (pruned meanwhile),
    // and the id alone could reach another row (a partitioned log's key is the pair), which an
    // erasure must never touch.
    if by_key.rows_affected > 0 || txn.get_database_backend() != DbBackend::Sqlite {
        return Ok(by_key.rows_affected > 0);
    }
    // On SQLite a time stored in another form than the one bound (text another writer wrote)
    // does not compare equal: by the id alone then, so no row read here is left unerased.
    let by_id = Entity::update_many()
        .set(am)
        .filter(Column::Id.eq(row.id))
        .exec(txn)
        .await?;
    Ok(by_id.rows_affected > 0)
}

/// In a `detail` about the user: `name`, `short_id`, and each change's `before`/`after` that
/// equal a known value exactly become that value's pseudonym.
/// A value is also known when its pseudonym is among `pseudonyms` (both sorted).
fn replace_known(
    detail: &mut serde_json::Value,
    known: &[String],
    pseudonyms: &[String],
    aliases: &Pseudonymizer,
) {
    activity_core::seal::pseudonymize_detail(detail, &mut |s| {
        if known.binary_search_by(|k| k.as_str().cmp(s)).is_ok() {
            return aliases.alias(s);
        }
        if !pseudonyms.is_empty() {
            let alias = aliases.alias(s);
            if pseudonyms.binary_search(&alias).is_ok() {
                return alias;
            }
        }
        s.to_owned()
    });
}

/// Record the erasure: one `anonymized` entry, about the pseudonym, in the erasure's tenant.
async fn record<C: ConnectionTrait>(
    txn: &C,
    target: &Target<'_>,
    rewritten: u64,
    known: &[String],
) -> Result<(), Error> {
    let mut record = ActivityEntry::new(ERASURE_SCOPE, ERASURE_ACTIVITY)
        .with_item_id(target.alias)
        .forced();
    // The pseudonyms of what this run knew the user by (HMACs, as the rows now hold them): a
    // later run reaches copies with them after the log has forgotten the values.
    let known_pseudonyms: Vec<String> = known.iter().map(|v| target.aliases.alias(v)).collect();
    record.detail.context = Some(serde_json::json!({
        "rows_rewritten": rewritten,
        "known": known_pseudonyms,
    }));
    // A tenant's erasure is that tenant's record.
    match target.tenant {
        Some(ErasureTenant::Organization(id)) => record.organization_id = Some(id.clone()),
        Some(ErasureTenant::Team(id)) => record.team_id = Some(id.clone()),
        None => {}
    }
    record.own_tenant = target.tenant.is_some();
    crate::log_activity(txn, record).await?;
    Ok(())
}

/// The pseudonyms the user's earlier erasures recorded knowing them by.
async fn earlier_pseudonyms<C: ConnectionTrait>(
    txn: &C,
    target: &Target<'_>,
) -> Result<Vec<String>, Error> {
    let records = crate::schema::table::find_entries()
        .filter(Column::Scope.eq(ERASURE_SCOPE))
        .filter(Column::Activity.eq(ERASURE_ACTIVITY))
        .filter(target.in_tenant(Condition::all().add(Column::ItemId.eq(target.alias))))
        .all(txn)
        .await?;
    Ok(records
        .into_iter()
        .filter_map(|m| ActivityEntry::from(m).detail.context)
        .filter_map(|c| c.get("known").and_then(|k| k.as_array()).cloned())
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .filter(|v| activity_core::seal::is_pseudonym(v))
        .collect())
}

/// Whether the erasure of the user with this pseudonym was already recorded.
async fn recorded<C: ConnectionTrait>(txn: &C, target: &Target<'_>) -> Result<bool, Error> {
    let found = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::Scope.eq(ERASURE_SCOPE))
        .filter(Column::Activity.eq(ERASURE_ACTIVITY))
        .filter(target.in_tenant(Condition::all().add(Column::ItemId.eq(target.alias))))
        .limit(1)
        .into_tuple::<uuid::Uuid>()
        .one(txn)
        .await?;
    Ok(found.is_some())
}
