//! Sealed history: tamper evidence anyone holding the public key can check, which erasure
//! does not break.
//!
//! A [`Sealer`] follows committed entries (as the relay does, from behind a grace period) and
//! seals each tenant's new entries into blocks of at most [`MAX_BLOCK`]: a Merkle root (RFC
//! 6962) over the entries' canonical bytes, chained to the tenant's previous block, signed
//! with the application's ed25519 key. The signed header — a [`Checkpoint`] — is stored in
//! `activity_block` and meant to be published outside the database too
//! (`activity_nats::seal` sends every new one to JetStream): a checkpoint kept elsewhere is
//! what shows that the newest entries were deleted together with their blocks.
//!
//! - [`verify`] recomputes a tenant's blocks over a time range and reports every
//!   [`Problem`]: an entry altered, deleted or inserted into a sealed window
//!   ([`Problem::Mismatch`]), a block deleted or rewritten ([`Problem::BrokenChain`],
//!   [`Problem::BadSignature`]), newest blocks missing against a trusted checkpoint
//!   ([`Problem::Truncated`], with [`verify_trusting`]), an entry no block covers although its
//!   time was sealed ([`Problem::Unsealed`]). [`verify_all`] does the same for every tenant
//!   in one read of the entries in time order.
//! - [`prove`] returns one entry's inclusion proof (well under 1 KiB); it verifies with the
//!   public key alone ([`InclusionProof::verify`]).
//! - [`export_sealed`] writes a tenant's sealed entries in canonical form and their
//!   checkpoints, which the `activity-verify` binary checks with no database.
//! - [`verify_sealed`](crate::ops::archive::verify_sealed) checks what archives hold (and
//!   the database beside them) against the blocks after the archived rows are gone.
//!
//! **Erasure keeps every proof valid.** Personal fields — actor id and name, impersonator,
//! IP address, user agent, and for entries about a person (the configured user scopes) the
//! item id and the detail's strings — enter the hash as their keyed pseudonyms (HMAC under the
//! [erasure key](crate::ActivityConfig::with_erasure_key)), and
//! [`anonymize_user`](crate::ops::erasure::anonymize_user) writes exactly those pseudonyms.
//! So the sealer needs the erasure key, and exports for auditors carry pseudonyms, never the
//! personal values.
//!
//! **The horizon.** An entry is stamped when its change is made and committed later. A round
//! seals only entries stamped before its horizon: its grace (default 60 s, for clock skew
//! between writers) before the earlier of now and the start of the oldest transaction still
//! open (PostgreSQL's `pg_stat_activity`, InnoDB's `innodb_trx`; on SQLite the round's
//! `IMMEDIATE` transaction waits for the writer). So a long transaction's entries are sealed by
//! the round after its commit, never left behind a sealed horizon. A transaction the sealer
//! cannot see (another role's session without `pg_read_all_stats`, no `PROCESS` privilege on
//! MySQL: then the grace alone holds, with a warning) that commits behind a sealed horizon
//! makes its entries look inserted afterwards: a [`Problem::Mismatch`] of the block whose
//! window they fall in, or [`Problem::Unsealed`] after the last block — the reports a forged
//! insert gets.
//! Run one sealer at a time: a second one's round fails on the block key and changes nothing.

use std::collections::HashMap;
use std::ops::{Bound, RangeBounds};
use std::time::Duration;

use activity_core::ActivityError;
pub use activity_core::seal::{
    BlockHeader, Checkpoint, EntryKey, InclusionProof, MAX_BLOCK, Problem, Verification,
    is_pseudonym, parse_json, verify_export,
};
use activity_core::seal::{
    ChainStart, Hash, StoredDetail, StoredEntry, canonical_entry, canonical_entry_bytes,
    check_block_erased, check_chain, erased_after_sealing, inclusion_path, leaf_hash, merkle_root,
    tenant_key,
};
use chrono::{DateTime, SubsecRound, Utc};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, ExprTrait, FromQueryResult,
    QueryFilter, QueryOrder, QueryResult, QuerySelect, Select, Set, SqliteTransactionMode,
    TransactionOptions, TransactionSession, TransactionTrait,
};

use crate::config::ActivityConfig;
use crate::errors::Error;
use crate::ops::erasure::Pseudonymizer;
use crate::schema::seal::activity_block;
use crate::schema::table::activity_log::{Column, Entity};

/// Entries read per query while verifying.
const PAGE: u64 = 5_000;

/// Entries a sealing round aims to read per time slice.
const SLICE: usize = 10_000;

/// The columns a leaf covers, in the order [`LeafRow`] reads them.
const LEAF_COLUMNS: [Column; 18] = [
    Column::Id,
    Column::CreatedAt,
    Column::OrganizationId,
    Column::TeamId,
    Column::UserId,
    Column::UserName,
    Column::ImpersonatedBy,
    Column::WasImpersonated,
    Column::IsSystem,
    Column::Scope,
    Column::ItemId,
    Column::Activity,
    Column::Detail,
    Column::RequestId,
    Column::CorrelationId,
    Column::IpAddress,
    Column::UserAgent,
    Column::Client,
];

/// One entry as its leaf covers it, read by position with `detail` as stored: no model, no
/// decoded `Detail`, so a key added to the stored JSON is hashed like the rest. Its text
/// columns share one buffer (one allocation a row, not fourteen: sealing and `verify_all` make
/// one of these for every entry).
#[derive(Debug)]
struct LeafRow {
    id: uuid::Uuid,
    created_at: DateTime<Utc>,
    was_impersonated: bool,
    is_system: bool,
    text: String,
    /// Where each of [`TEXT_COLUMNS`] lies in `text`; `None` for NULL.
    spans: [Option<(u32, u32)>; TEXT_COLUMNS],
}

/// The text columns of a leaf row, in [`LEAF_COLUMNS`]' order: organization, team, user, user
/// name, impersonator, scope, item, activity, detail, request, correlation, IP, user agent,
/// client.
const TEXT_COLUMNS: usize = 14;

/// Positions in [`LEAF_COLUMNS`] of the text columns, in [`LeafRow::spans`]' order.
const TEXT_AT: [usize; TEXT_COLUMNS] = [2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 15, 16, 17];

/// Indexes in [`LeafRow::spans`] of `scope` and `activity` (NOT NULL columns) and `detail`.
const SCOPE: usize = 5;
const ACTIVITY: usize = 7;
const DETAIL: usize = 8;

/// Position of `detail` in [`LEAF_COLUMNS`].
const LEAF_DETAIL: usize = TEXT_AT[DETAIL];

impl LeafRow {
    /// A row of the given values, the text columns copied into one buffer.
    fn new(
        id: uuid::Uuid,
        created_at: DateTime<Utc>,
        was_impersonated: bool,
        is_system: bool,
        texts: [Option<&str>; TEXT_COLUMNS],
    ) -> Result<Self, DbErr> {
        let mut text = String::with_capacity(texts.iter().flatten().map(|t| t.len()).sum());
        let mut spans = [None; TEXT_COLUMNS];
        for (span, t) in spans.iter_mut().zip(texts) {
            if let Some(t) = t {
                let too_long = |_| DbErr::Type("an activity_log row over 4 GiB".into());
                let start = u32::try_from(text.len()).map_err(too_long)?;
                text.push_str(t);
                let end = u32::try_from(text.len()).map_err(too_long)?;
                *span = Some((start, end));
            }
        }
        Ok(LeafRow {
            id,
            created_at,
            was_impersonated,
            is_system,
            text,
            spans,
        })
    }

    fn text(&self, column: usize) -> Option<&str> {
        let (start, end) = self.spans.get(column).copied().flatten()?;
        self.text.get(start as usize..end as usize)
    }

    fn stored(&self) -> StoredEntry<'_> {
        let t = |i| self.text(i);
        StoredEntry {
            id: self.id,
            created_at: self.created_at,
            organization_id: t(0),
            team_id: t(1),
            user_id: t(2),
            user_name: t(3),
            impersonated_by: t(4),
            was_impersonated: self.was_impersonated,
            is_system: self.is_system,
            scope: t(SCOPE).unwrap_or_default(),
            item_id: t(6),
            activity: t(ACTIVITY).unwrap_or_default(),
            detail: StoredDetail::Text(t(DETAIL).unwrap_or_default()),
            request_id: t(9),
            correlation_id: t(10),
            ip_address: t(11),
            user_agent: t(12),
            client: t(13),
        }
    }

    fn key(&self) -> EntryKey {
        EntryKey {
            created_at: self.created_at,
            id: self.id,
        }
    }

    fn tenant(&self) -> String {
        tenant_key(self.text(0), self.text(1))
    }
}

impl FromQueryResult for LeafRow {
    fn from_query_result(row: &QueryResult, _pre: &str) -> Result<Self, DbErr> {
        #[cfg(feature = "postgres")]
        if let Some(row) = row.try_as_pg_row() {
            return pg::leaf_row(row);
        }
        let mut owned: [Option<String>; TEXT_COLUMNS] = Default::default();
        for (slot, at) in owned.iter_mut().zip(TEXT_AT) {
            *slot = if at == LEAF_DETAIL {
                Some(detail_text(row, at)?)
            } else {
                row.try_get_by_index(at)?
            };
        }
        let required = |i: usize| {
            owned[i].is_none().then(|| {
                DbErr::Type(format!(
                    "column {} of an activity_log row is null",
                    TEXT_AT[i]
                ))
            })
        };
        if let Some(e) = required(SCOPE).or_else(|| required(ACTIVITY)) {
            return Err(e);
        }
        LeafRow::new(
            row.try_get_by_index(0)?,
            row.try_get_by_index(1)?,
            row.try_get_by_index(7)?,
            row.try_get_by_index(8)?,
            owned.each_ref().map(Option::as_deref),
        )
    }
}

/// Column `i` of a driver's row as the text it holds, with no type check (MySQL reports
/// `JSON` columns as a type sqlx does not decode as text).
#[cfg(any(feature = "mysql", feature = "sqlite"))]
fn raw_text<R: sea_orm::sqlx::Row>(row: &R, i: usize) -> Result<String, DbErr>
where
    usize: sea_orm::sqlx::ColumnIndex<R>,
    for<'r> &'r str: sea_orm::sqlx::Decode<'r, R::Database>,
{
    use sea_orm::sqlx::{Decode, ValueRef};
    let v = row.try_get_raw(i).map_err(|e| DbErr::Type(e.to_string()))?;
    if v.is_null() {
        return Err(DbErr::Type("detail of an activity_log row is null".into()));
    }
    <&str as Decode<R::Database>>::decode(v)
        .map(str::to_owned)
        .map_err(|e| DbErr::Type(format!("detail: {e}")))
}

/// The `detail` column's text as the server sent it (MySQL's `JSON` and SQLite's text): not a
/// value sqlx parsed, which would read it as serde_json's `Value` does (see [`parse_json`]).
fn detail_text(row: &QueryResult, i: usize) -> Result<String, DbErr> {
    #[cfg(feature = "mysql")]
    if let Some(row) = row.try_as_mysql_row() {
        return raw_text(row, i);
    }
    #[cfg(feature = "sqlite")]
    if let Some(row) = row.try_as_sqlite_row() {
        return raw_text(row, i);
    }
    // Another connection (a mock or proxy): its value, written back as text.
    let value: serde_json::Value = row.try_get_by_index(i)?;
    Ok(value.to_string())
}

/// PostgreSQL rows decoded by position straight from the wire values: no per-value type
/// check (the `SELECT` names the columns and the table fixes their types) and no JSON tree.
/// Sealing reads every entry once and `verify_all` every entry again, so this decoding is most
/// of what either costs the client.
#[cfg(feature = "postgres")]
mod pg {
    use sea_orm::DbErr;
    use sea_orm::sqlx::postgres::{PgRow, PgValueRef, Postgres};
    use sea_orm::sqlx::{Decode, Row, ValueRef};

    use super::{ACTIVITY, LEAF_DETAIL, LeafRow, SCOPE, TEXT_AT, TEXT_COLUMNS};

    fn value(row: &PgRow, i: usize) -> Result<Option<PgValueRef<'_>>, DbErr> {
        let v = row.try_get_raw(i).map_err(|e| DbErr::Type(e.to_string()))?;
        Ok((!v.is_null()).then_some(v))
    }

    fn required<'r, T: Decode<'r, Postgres>>(row: &'r PgRow, i: usize) -> Result<T, DbErr> {
        let v = value(row, i)?
            .ok_or_else(|| DbErr::Type(format!("column {i} of an activity_log row is null")))?;
        T::decode(v).map_err(|e| DbErr::Type(format!("column {i}: {e}")))
    }

    fn text(row: &PgRow, i: usize) -> Result<Option<&str>, DbErr> {
        match value(row, i)? {
            None => Ok(None),
            Some(v) => <&str as Decode<Postgres>>::decode(v)
                .map(Some)
                .map_err(|e| DbErr::Type(format!("column {i}: {e}"))),
        }
    }

    pub(super) fn leaf_row(row: &PgRow) -> Result<LeafRow, DbErr> {
        let mut texts: [Option<&str>; TEXT_COLUMNS] = [None; TEXT_COLUMNS];
        for (slot, at) in texts.iter_mut().zip(TEXT_AT) {
            *slot = if at == LEAF_DETAIL {
                let detail = value(row, at)?
                    .ok_or_else(|| DbErr::Type("detail of an activity_log row is null".into()))?;
                let bytes = detail.as_bytes().map_err(|e| DbErr::Type(e.to_string()))?;
                // `jsonb` in binary format: a version byte (1), then the text; no JSON text
                // starts with that byte.
                let json = bytes.strip_prefix(&[1u8]).unwrap_or(bytes);
                Some(std::str::from_utf8(json).map_err(|e| DbErr::Type(format!("detail: {e}")))?)
            } else {
                text(row, at)?
            };
        }
        if texts[SCOPE].is_none() || texts[ACTIVITY].is_none() {
            return Err(DbErr::Type(
                "scope or activity of an activity_log row is null".into(),
            ));
        }
        LeafRow::new(
            required(row, 0)?,
            required(row, 1)?,
            required(row, 7)?,
            required(row, 8)?,
            texts,
        )
    }
}

/// `SELECT` of [`LEAF_COLUMNS`].
fn leaf_rows() -> Select<Entity> {
    Entity::find().select_only().columns(LEAF_COLUMNS)
}

/// Seals committed entries into signed blocks; see the [module docs](self).
#[derive(Clone)]
pub struct Sealer {
    key: SigningKey,
    grace: Duration,
    block: usize,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field(
                "key",
                &activity_core::seal::key_id(&self.key.verifying_key()),
            )
            .field("grace", &self.grace)
            .field("block", &self.block)
            .finish()
    }
}

/// What one [`Sealer::seal`] round did.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SealReport {
    /// The blocks made, in the order they were stored: publish these.
    pub checkpoints: Vec<Checkpoint>,
    /// Entries sealed.
    pub entries: u64,
}

impl Sealer {
    /// A sealer signing with `key` (the application's; keep it out of the database), a grace
    /// of 60 seconds and blocks of [`MAX_BLOCK`] entries.
    pub fn new(key: SigningKey) -> Self {
        Sealer {
            key,
            grace: Duration::from_secs(60),
            block: MAX_BLOCK,
        }
    }

    /// Seal only entries older than `grace` (see the [module docs](self)).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// At most `entries` per block (1 to [`MAX_BLOCK`]).
    pub fn with_block_size(mut self, entries: usize) -> Self {
        self.block = entries.clamp(1, MAX_BLOCK);
        self
    }

    /// The public key that checks this sealer's checkpoints.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// One round: seal every entry committed since the last round's horizon and older than
    /// the grace, each tenant's into new blocks chained to its last, in one transaction.
    /// Needs the erasure key ([`Pseudonymizer`]).
    pub async fn seal<C>(&self, db: &C) -> Result<SealReport, Error>
    where
        C: ConnectionTrait + TransactionTrait,
    {
        let aliases = Aliases::new(Pseudonymizer::current()?)?;
        let mut scopes: Vec<String> = ActivityConfig::with_current(|c| c.user_scopes().to_vec());
        scopes.sort();
        scopes.dedup();
        let grace = chrono::Duration::from_std(self.grace).unwrap_or(chrono::Duration::MAX);
        // Outside the round's transaction: a role that may not summarize fails this statement
        // alone, and the round still runs (reading the unsummarized tail).
        if let Err(error) = crate::schema::summarize_seal_index(db).await {
            if SUMMARIZE_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::debug!(%error, "sealer: the seal index could not be summarized");
            } else {
                tracing::warn!(%error, "sealer: the seal index could not be summarized; each round reads every entry written since autovacuum last did (give the sealer the table owner's role)");
            }
        }
        // SQLite: the write lock first, so no writer holds entries it stamped but has not
        // committed while the round reads.
        let txn = db
            .begin_with_options(TransactionOptions {
                isolation_level: None,
                access_mode: None,
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            })
            .await?;
        // Never past a transaction still open: its entries are stamped but not visible yet,
        // and a block whose window covered them would be reported altered once they commit.
        let now = crate::write::before::now();
        let now = match oldest_open_transaction(&txn).await {
            Ok(Some(oldest)) => Ord::min(now, oldest),
            Ok(None) => now,
            Err(e) => {
                tracing::warn!(error = %e, "sealer: open transactions not visible; the grace alone holds the horizon back");
                now
            }
        };
        let horizon = now
            .checked_sub_signed(grace)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
            .trunc_subsecs(6);
        let cursor = horizon_of(&txn).await?;
        if cursor.is_some_and(|c| c >= horizon) {
            txn.commit().await?;
            return Ok(SealReport::default());
        }
        let mut round = Round {
            sealer: self,
            aliases,
            scopes,
            horizon,
            pending: HashMap::new(),
            last: HashMap::new(),
            report: SealReport::default(),
            rows: Vec::new(),
        };
        let lo = match cursor {
            Some(c) => c,
            None => match oldest(&txn).await? {
                Some(first) => first
                    .checked_sub_signed(chrono::Duration::microseconds(1))
                    .unwrap_or(first),
                None => horizon,
            },
        };
        let mut slices = Slices::new(lo, horizon);
        while let Some(rows) = slices.next(&txn).await? {
            for row in rows {
                round.add(&txn, row).await?;
            }
            round.store(&txn).await?;
        }
        let tenants: Vec<String> = round.pending.keys().cloned().collect();
        for tenant in tenants {
            round.close(&txn, &tenant).await?;
        }
        round.store(&txn).await?;
        txn.commit().await?;
        tracing::debug!(
            blocks = round.report.checkpoints.len(),
            entries = round.report.entries,
            horizon = %horizon,
            "sealed"
        );
        Ok(round.report)
    }

    /// Seal a round every `every` until `stop` resolves, handing each round's checkpoints to
    /// `publish` (e.g. to the stream) after they are stored. A failed round is logged and
    /// retried at the next tick.
    pub async fn run<C, F, P>(&self, db: &C, every: Duration, stop: F, mut publish: P)
    where
        C: ConnectionTrait + TransactionTrait,
        F: std::future::Future<Output = ()>,
        P: FnMut(Vec<Checkpoint>),
    {
        let mut stop = std::pin::pin!(stop);
        loop {
            match self.seal(db).await {
                Ok(report) if !report.checkpoints.is_empty() => publish(report.checkpoints),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "sealing round failed; retrying"),
            }
            if tokio::time::timeout(every, &mut stop).await.is_ok() {
                return;
            }
        }
    }
}

/// Whether a round has warned that it could not summarize the seal index (once a process).
static SUMMARIZE_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Pseudonyms of one round, each value's computed once.
struct Aliases {
    /// The erasure key's fingerprint ([`Pseudonymizer::key_id`]).
    key_id: String,
    /// The user scopes configured now.
    user_scopes: Vec<String>,
    with: Pseudonymizer,
    seen: HashMap<String, String>,
}

impl Aliases {
    /// Fails when this build cannot write the canonical form (see
    /// [`activity_core::seal::canonical_numbers`]): every sealing and checking call makes one.
    fn new(with: Pseudonymizer) -> Result<Self, Error> {
        activity_core::seal::canonical_numbers()?;
        Ok(Aliases {
            key_id: with.key_id(),
            user_scopes: ActivityConfig::with_current(|c| c.user_scopes().to_vec()),
            with,
            seen: HashMap::new(),
        })
    }

    /// Whether `header`'s pseudonyms are this key's; a block sealed before headers named the
    /// key is checked as it always was.
    fn sealed_with(&self, header: &BlockHeader) -> bool {
        header.erasure_key.is_empty() || header.erasure_key == self.key_id
    }

    /// Check `header`'s block against `leaves` when its pseudonyms are this key's; else report
    /// the key change, not a mismatch every entry with a personal field would raise. `erased`:
    /// see [`check_block_erased`].
    fn check(
        &self,
        header: &BlockHeader,
        leaves: &[Hash],
        erased: Option<&str>,
        out: &mut Verification,
    ) {
        if self.sealed_with(header) {
            check_block_erased(header, leaves, erased, out);
        } else {
            out.blocks += 1;
            out.entries += leaves.len() as u64;
            out.problems.push(Problem::ErasureKeyChanged {
                tenant: header.tenant.clone(),
                seq: header.seq,
            });
        }
    }

    /// Fails unless `header`'s pseudonyms are this key's: what is made from its entries
    /// (a proof, an export) would not match the block.
    fn same_key(&self, header: &BlockHeader) -> Result<(), Error> {
        if self.sealed_with(header) {
            return Ok(());
        }
        Err(Error::Activity(ActivityError::Integrity(format!(
            "block {} of tenant {:?} was sealed under another erasure key ({}; configured: {}): \
             configure the key it was sealed with",
            header.seq, header.tenant, header.erasure_key, self.key_id
        ))))
    }

    /// The scope of `row` when it was erased as a person's after `header` sealed it
    /// ([`erased_after_sealing`]) under a scope configured as a user scope now: what an
    /// erasure under a user scope added later leaves.
    fn erased_after(&self, row: &StoredEntry<'_>, header: &BlockHeader) -> Option<String> {
        erased_after_sealing(header, row.scope, row.item_id)
            .filter(|s| self.user_scopes.iter().any(|u| u == s))
            .map(str::to_owned)
    }

    /// The pseudonym of `v`, from the cache when it was seen before (at most 100,000 kept).
    fn alias(&mut self, v: &str) -> String {
        if let Some(a) = self.seen.get(v) {
            return a.clone();
        }
        let a = self.with.alias(v);
        if self.seen.len() < 100_000 {
            self.seen.insert(v.to_owned(), a.clone());
        }
        a
    }

    fn canonical(&mut self, row: &LeafRow, scopes: &[String]) -> serde_json::Value {
        canonical_entry(&row.stored(), scopes, &mut |v: &str| self.alias(v))
    }

    fn leaf(&mut self, row: &LeafRow, scopes: &[String]) -> Hash {
        leaf_hash(&canonical_entry_bytes(
            &row.stored(),
            scopes,
            &mut |v: &str| self.alias(v),
        ))
    }
}

/// One sealing round's state.
struct Round<'a> {
    sealer: &'a Sealer,
    aliases: Aliases,
    scopes: Vec<String>,
    horizon: DateTime<Utc>,
    /// Per tenant, the entries not yet in a block.
    pending: HashMap<String, Vec<(EntryKey, Hash)>>,
    /// Per tenant, its newest block (looked up when the tenant's first block of the round
    /// is made).
    last: HashMap<String, Option<BlockHeader>>,
    report: SealReport,
    rows: Vec<activity_block::ActiveModel>,
}

impl Round<'_> {
    async fn add<C: ConnectionTrait>(&mut self, txn: &C, row: LeafRow) -> Result<(), Error> {
        let tenant = row.tenant();
        let leaf = self.aliases.leaf(&row, &self.scopes);
        let key = row.key();
        let pending = self.pending.entry(tenant.clone()).or_default();
        pending.push((key, leaf));
        if pending.len() >= self.sealer.block {
            self.close(txn, &tenant).await?;
        }
        Ok(())
    }

    /// Make a block of `tenant`'s pending entries.
    async fn close<C: ConnectionTrait>(&mut self, txn: &C, tenant: &str) -> Result<(), Error> {
        let Some(entries) = self.pending.remove(tenant) else {
            return Ok(());
        };
        let Some((last_key, _)) = entries.last() else {
            return Ok(());
        };
        if !self.last.contains_key(tenant) {
            let found = last_block(txn, tenant).await?;
            self.last.insert(tenant.to_owned(), found);
        }
        let prev = self.last.get(tenant).and_then(Option::as_ref);
        let leaves: Vec<Hash> = entries.iter().map(|(_, l)| *l).collect();
        let header = BlockHeader::new(
            tenant.to_owned(),
            prev,
            last_key.clone(),
            leaves.len() as u64,
            merkle_root(&leaves),
            self.horizon,
            self.scopes.clone(),
            self.aliases.key_id.clone(),
            &self.sealer.key.verifying_key(),
        );
        let checkpoint = Checkpoint::sign(header.clone(), &self.sealer.key);
        self.rows.push(activity_block::ActiveModel {
            tenant: Set(tenant.to_owned()),
            seq: Set(i64::try_from(header.seq).unwrap_or(i64::MAX)),
            last_at: Set(header.last.created_at),
            sealed_through: Set(self.horizon),
            checkpoint: Set(serde_json::to_string(&checkpoint)?),
        });
        self.report.entries += header.entries;
        self.report.checkpoints.push(checkpoint);
        self.last.insert(tenant.to_owned(), Some(header));
        Ok(())
    }

    async fn store<C: ConnectionTrait>(&mut self, txn: &C) -> Result<(), Error> {
        for chunk in std::mem::take(&mut self.rows).chunks(200) {
            activity_block::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(txn)
                .await?;
        }
        Ok(())
    }
}

/// Most entries one slice holds: a denser stretch is read again as a shorter slice, and a
/// single microsecond holding more (a bulk write under a fixed clock) is read in pages by id,
/// so a round's memory stays bounded whatever the backlog looks like.
const SLICE_CAP: usize = 4 * SLICE;

/// The entries stamped in `(lo, upper]`, in key order, as consecutive slices of one index
/// range each (a LIMIT page ordered by key would re-read the rest of the range each time). A
/// slice grows while it finds few entries and shrinks when it finds many. Rows are sorted here,
/// not by the database: with no btree on the time alone, it would sort the whole slice (on
/// disk past `work_mem`) before sending its first row; unsorted, rows stream as it reads them.
struct Slices {
    lo: DateTime<Utc>,
    upper: DateTime<Utc>,
    step: chrono::Duration,
    cap: usize,
    /// Paging through one crowded microsecond: its time and the last id read.
    crowded: Option<(DateTime<Utc>, Option<uuid::Uuid>)>,
}

impl Slices {
    fn new(lo: DateTime<Utc>, upper: DateTime<Utc>) -> Self {
        Slices {
            lo,
            upper,
            step: chrono::Duration::minutes(1),
            cap: SLICE_CAP,
            crowded: None,
        }
    }

    /// The next slice holding entries; `None` once `upper` is reached.
    async fn next<C: ConnectionTrait>(&mut self, db: &C) -> Result<Option<Vec<LeafRow>>, Error> {
        let micro = chrono::Duration::microseconds(1);
        loop {
            if let Some((at, last)) = self.crowded {
                let mut q = leaf_rows().filter(Column::CreatedAt.eq(at));
                if let Some(id) = last {
                    q = q.filter(Column::Id.gt(id));
                }
                let rows = q
                    .order_by_asc(Column::Id)
                    .limit(self.cap as u64)
                    .into_model::<LeafRow>()
                    .all(db)
                    .await?;
                if rows.len() < self.cap {
                    self.crowded = None;
                    self.lo = at;
                } else {
                    self.crowded = Some((at, rows.last().map(|r| r.id)));
                }
                if rows.is_empty() {
                    continue;
                }
                return Ok(Some(rows));
            }
            if self.lo >= self.upper {
                return Ok(None);
            }
            let hi = self
                .lo
                .checked_add_signed(self.step)
                .map_or(self.upper, |t| Ord::min(t, self.upper));
            let mut rows = leaf_rows()
                .filter(Column::CreatedAt.gt(self.lo))
                .filter(Column::CreatedAt.lte(hi))
                .limit(self.cap as u64 + 1)
                .into_model::<LeafRow>()
                .all(db)
                .await?;
            if rows.len() > self.cap {
                let width = hi - self.lo;
                if width <= micro {
                    self.crowded = Some((hi, None));
                } else {
                    self.step = Ord::max(width / 2, micro);
                }
                continue;
            }
            rows.sort_unstable_by_key(LeafRow::key);
            self.lo = hi;
            if rows.len() < SLICE / 4 {
                self.step = self.step.checked_mul(2).unwrap_or(self.step);
            } else if rows.len() > SLICE && self.step > chrono::Duration::milliseconds(2) {
                self.step = self.step / 2;
            }
            if rows.is_empty() {
                continue;
            }
            return Ok(Some(rows));
        }
    }
}

/// The oldest entry's time.
async fn oldest<C: ConnectionTrait>(db: &C) -> Result<Option<DateTime<Utc>>, Error> {
    let first: Option<Option<DateTime<Utc>>> = Entity::find()
        .select_only()
        .column_as(Expr::col(Column::CreatedAt).min(), "first")
        .into_tuple()
        .one(db)
        .await?;
    Ok(first.flatten())
}

/// When the oldest transaction still open on the database (other than the caller's) began:
/// PostgreSQL's `pg_stat_activity` (client sessions of this database whose start the sealer's
/// role may see: the writers' role or `pg_read_all_stats`), InnoDB's `innodb_trx` (sessions
/// whose default database is this one; the `PROCESS` privilege; whole seconds, so one second
/// earlier; a view InnoDB refreshes every 0.1 s, well inside the grace). SQLite: `None` (the round's
/// `IMMEDIATE` transaction waits for the writer instead).
async fn oldest_open_transaction<C: ConnectionTrait>(
    db: &C,
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT min(xact_start) AS oldest FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND backend_type = 'client backend' AND xact_start IS NOT NULL"
        }
        DbBackend::MySql => {
            "SELECT CAST(UNIX_TIMESTAMP(MIN(t.trx_started)) AS SIGNED) - 1 AS oldest \
             FROM information_schema.innodb_trx t \
             JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
             WHERE p.DB = DATABASE() AND t.trx_mysql_thread_id <> CONNECTION_ID()"
        }
        _ => return Ok(None),
    };
    let Some(row) = db
        .query_one_raw(sea_orm::Statement::from_string(backend, sql))
        .await?
    else {
        return Ok(None);
    };
    Ok(match backend {
        DbBackend::Postgres => row.try_get::<Option<DateTime<Utc>>>("", "oldest")?,
        _ => row
            .try_get::<Option<i64>>("", "oldest")?
            .and_then(|s| DateTime::from_timestamp(s, 0)),
    })
}

/// The newest horizon any block was sealed through.
async fn horizon_of<C: ConnectionTrait>(db: &C) -> Result<Option<DateTime<Utc>>, Error> {
    let newest: Option<Option<DateTime<Utc>>> = activity_block::Entity::find()
        .select_only()
        .column_as(
            Expr::col(activity_block::Column::SealedThrough).max(),
            "newest",
        )
        .into_tuple()
        .one(db)
        .await?;
    Ok(newest.flatten())
}

fn parse(row: &activity_block::Model) -> Result<Checkpoint, Error> {
    serde_json::from_str(&row.checkpoint).map_err(|e| {
        Error::Activity(ActivityError::Integrity(format!(
            "block {} of tenant {:?} is not a checkpoint: {e}",
            row.seq, row.tenant
        )))
    })
}

async fn last_block<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
) -> Result<Option<BlockHeader>, Error> {
    let row = activity_block::Entity::find()
        .filter(activity_block::Column::Tenant.eq(tenant))
        .order_by_desc(activity_block::Column::Seq)
        .one(db)
        .await?;
    row.map(|r| parse(&r).map(|c| c.header)).transpose()
}

/// A tenant's stored checkpoints, by `seq`.
pub async fn checkpoints<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
) -> Result<Vec<Checkpoint>, Error> {
    checkpoints_after(db, tenant, 0).await
}

/// A tenant's stored checkpoints after block `seq`, by `seq` (what a copy holding blocks up to
/// `seq` lacks).
pub async fn checkpoints_after<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    seq: u64,
) -> Result<Vec<Checkpoint>, Error> {
    let rows = activity_block::Entity::find()
        .filter(activity_block::Column::Tenant.eq(tenant))
        .filter(activity_block::Column::Seq.gt(i64::try_from(seq).unwrap_or(i64::MAX)))
        .order_by_asc(activity_block::Column::Seq)
        .all(db)
        .await?;
    rows.iter().map(parse).collect()
}

/// Every tenant that has a block.
pub async fn tenants<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, Error> {
    Ok(activity_block::Entity::find()
        .select_only()
        .column(activity_block::Column::Tenant)
        .distinct()
        .order_by_asc(activity_block::Column::Tenant)
        .into_tuple()
        .all(db)
        .await?)
}

/// For each of `tenants` (those an archive holds entries of: another tenant's keys and counts
/// never enter it), the newest checkpoint whose block ends before `before` (what an archive of
/// the entries before `before` ends in); none when the blocks table does not exist.
pub(crate) async fn ending_before<C: ConnectionTrait>(
    db: &C,
    tenants: impl IntoIterator<Item = &str>,
    before: DateTime<Utc>,
) -> Result<Vec<Checkpoint>, Error> {
    if !crate::schema::named_table_exists(db, "activity_block").await? {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for tenant in tenants {
        let row = activity_block::Entity::find()
            .filter(activity_block::Column::Tenant.eq(tenant))
            .filter(activity_block::Column::LastAt.lt(before))
            .order_by_desc(activity_block::Column::Seq)
            .one(db)
            .await?;
        if let Some(row) = row {
            out.push(parse(&row)?);
        }
    }
    Ok(out)
}

/// The entries of `tenant` (a [`tenant_key`]).
fn of_tenant(tenant: &str) -> Condition {
    if let Some(org) = tenant.strip_prefix("o:") {
        Condition::all().add(Column::OrganizationId.eq(org))
    } else if let Some(team) = tenant.strip_prefix("t:") {
        Condition::all()
            .add(Column::OrganizationId.is_null())
            .add(Column::TeamId.eq(team))
    } else {
        Condition::all()
            .add(Column::OrganizationId.is_null())
            .add(Column::TeamId.is_null())
    }
}

/// `(created_at, id)` as one row value: PostgreSQL serves a row comparison from the tenant
/// feed indexes' `(…, created_at, id)` columns as one index range.
fn key_tuple() -> Expr {
    Expr::tuple([Expr::col(Column::CreatedAt), Expr::col(Column::Id)])
}

fn key_value(key: &EntryKey) -> Expr {
    Expr::tuple([Expr::value(key.created_at), Expr::value(key.id)])
}

/// Entries strictly after `key`.
fn after_key(key: &EntryKey) -> Condition {
    Condition::all().add(key_tuple().gt(key_value(key)))
}

/// Entries up to and including `key`.
fn through_key(key: &EntryKey) -> Condition {
    Condition::all().add(key_tuple().lte(key_value(key)))
}

async fn page<C: ConnectionTrait>(
    db: &C,
    cond: Condition,
    after: Option<EntryKey>,
) -> Result<Vec<LeafRow>, Error> {
    let mut cond = cond;
    if let Some(key) = after {
        cond = cond.add(after_key(&key));
    }
    Ok(leaf_rows()
        .filter(cond)
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .limit(PAGE)
        .into_model::<LeafRow>()
        .all(db)
        .await?)
}

/// Every entry of `tenant` in `(after, through]` (either end open when `None`), in key order,
/// read a page at a time and handed to `each`.
async fn walk<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    after: Option<&EntryKey>,
    through: Option<&EntryKey>,
    mut each: impl FnMut(&LeafRow) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut cond = of_tenant(tenant);
    if let Some(a) = after {
        cond = cond.add(after_key(a));
    }
    if let Some(t) = through {
        cond = cond.add(through_key(t));
    }
    let mut at: Option<EntryKey> = None;
    loop {
        let rows = page(db, cond.clone(), at.take()).await?;
        let full = rows.len() as u64 == PAGE;
        at = rows.last().map(LeafRow::key);
        for row in &rows {
            each(row)?;
        }
        if !full {
            return Ok(());
        }
    }
}

fn in_range(range: &impl RangeBounds<DateTime<Utc>>, at: Option<&DateTime<Utc>>) -> bool {
    let Some(at) = at else {
        return matches!(range.start_bound(), Bound::Unbounded);
    };
    range.contains(at)
}

/// Whether a block's whole window lies in `range`: the blocks a check compares with entries
/// (one that crosses a bound is left to a wider range).
fn window_in(range: &impl RangeBounds<DateTime<Utc>>, h: &BlockHeader) -> bool {
    in_range(range, h.after.as_ref().map(|a| &a.created_at)) && range.contains(&h.last.created_at)
}

/// One tenant's chain, checked as its blocks stream by: each block against the one before it,
/// so only the headers of the blocks in range stay (and the last one read), not the history's.
#[derive(Default)]
struct Chain {
    /// The last block read (the next one must link to it).
    chained: Option<BlockHeader>,
    /// The blocks whose window lies in the range, in order.
    checked: Vec<BlockHeader>,
}

impl Chain {
    /// The next stored block: checked against the last, kept if `keep` says so.
    fn follow(
        &mut self,
        cp: Checkpoint,
        keep: impl FnOnce(&BlockHeader) -> bool,
        key: &VerifyingKey,
        out: &mut Verification,
    ) {
        check_chain(
            std::slice::from_ref(&cp),
            self.chained.as_ref(),
            ChainStart::First,
            key,
            out,
        );
        if keep(&cp.header) {
            self.checked.push(cp.header.clone());
        }
        self.chained = Some(cp.header);
    }

    /// The newest block's last entry: entries after it are not sealed yet.
    fn last(&self) -> Option<&EntryKey> {
        self.chained.as_ref().map(|h| &h.last)
    }
}

/// Checkpoints kept outside the database (read back from the stream, named by archives),
/// matched against the stored blocks as they stream by, by tenant and number.
struct Trusted<'a> {
    kept: Vec<(&'a Checkpoint, bool)>,
    at: HashMap<(&'a str, u64), Vec<usize>>,
}

impl<'a> Trusted<'a> {
    fn new(kept: impl IntoIterator<Item = &'a Checkpoint>) -> Self {
        let kept: Vec<(&Checkpoint, bool)> = kept.into_iter().map(|k| (k, false)).collect();
        let mut at: HashMap<(&str, u64), Vec<usize>> = HashMap::new();
        for (i, (k, _)) in kept.iter().enumerate() {
            at.entry((k.header.tenant.as_str(), k.header.seq))
                .or_default()
                .push(i);
        }
        Trusted { kept, at }
    }

    /// A stored block, under the tenant its row is stored under.
    fn saw(&mut self, tenant: &str, cp: &Checkpoint) {
        for &i in self
            .at
            .get(&(tenant, cp.header.seq))
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some((k, found)) = self.kept.get_mut(i) {
                *found = *found || **k == *cp;
            }
        }
    }

    /// The kept checkpoints no stored block equals, in order, as [`Problem::Truncated`].
    fn missing(&self) -> impl Iterator<Item = Problem> + '_ {
        self.kept
            .iter()
            .filter(|(_, found)| !found)
            .map(|(k, _)| Problem::Truncated {
                tenant: k.header.tenant.clone(),
                seq: k.header.seq,
            })
    }
}

/// Check `tenant`'s sealed history over `range` (of entry times) with `key`: the whole chain
/// of its blocks (signatures, order, links), then every block whose window lies in `range`
/// against the entries stored in it now, then the entries after its last block that a newer
/// horizon has passed. Needs the erasure key. Use `..` for everything; an archived and dropped
/// stretch is left out by starting `range` after it. The chain is read a page of blocks at a
/// time; what stays in memory is the header of each block whose window lies in `range`.
pub async fn verify<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    range: impl RangeBounds<DateTime<Utc>>,
    key: &VerifyingKey,
) -> Result<Verification, Error> {
    verify_trusting(db, tenant, range, key, &[]).await
}

/// [`verify`], and check that the database still holds each of `trusted` — checkpoints kept
/// outside it, e.g. read back from the stream — exactly ([`Problem::Truncated`] if not).
pub async fn verify_trusting<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    range: impl RangeBounds<DateTime<Utc>>,
    key: &VerifyingKey,
    trusted: &[Checkpoint],
) -> Result<Verification, Error> {
    let mut aliases = Aliases::new(Pseudonymizer::current()?)?;
    let mut out = Verification::default();
    let mut trusted = Trusted::new(trusted.iter().filter(|t| t.header.tenant == tenant));
    let mut chain = Chain::default();
    for_each_block(db, Some(tenant), |stored_under, cp| {
        trusted.saw(stored_under, &cp);
        chain.follow(cp, |h| window_in(&range, h), key, &mut out);
        Ok(())
    })
    .await?;
    out.problems.extend(trusted.missing());
    let checked = chain.checked.as_slice();
    // One walk over the checked blocks' entries, each handed to the block whose window holds
    // it (the windows are consecutive in an unbroken chain).
    if let (Some(first), Some(last)) = (checked.first(), checked.last()) {
        let mut at = 0;
        let mut leaves = Vec::new();
        let mut erased = None;
        walk(db, tenant, first.after.as_ref(), Some(&last.last), |e| {
            let key = e.key();
            while let Some(h) = checked.get(at)
                && key > h.last
            {
                aliases.check(h, &leaves, erased.take().as_deref(), &mut out);
                leaves.clear();
                at += 1;
            }
            if let Some(h) = checked.get(at)
                && h.covers(&key)
            {
                leaves.push(aliases.leaf(e, &h.user_scopes));
                erased = erased
                    .take()
                    .or_else(|| aliases.erased_after(&e.stored(), h));
            }
            Ok(())
        })
        .await?;
        for h in checked.get(at..).unwrap_or_default() {
            aliases.check(h, &leaves, erased.take().as_deref(), &mut out);
            leaves.clear();
        }
    }
    let horizon = horizon_of(db).await?;
    if let Some(horizon) = horizon {
        let mut found = Vec::new();
        walk(db, tenant, chain.last(), None, |e| {
            if e.created_at <= horizon && range.contains(&e.created_at) {
                found.push(Problem::Unsealed {
                    tenant: tenant.to_owned(),
                    id: e.id,
                    created_at: e.created_at,
                });
            }
            Ok(())
        })
        .await?;
        out.problems.extend(found);
    }
    Ok(out)
}

/// [`verify_trusting`] of every tenant at once (every tenant that has a block, and entries of
/// tenants that have none): one read of the entries in `range` in time order, where a tenant
/// at a time would read each tenant's rows scattered through the table. Problems come tenant
/// by tenant as [`verify_trusting`] reports them. The entries of one time slice are hashed on
/// a blocking thread while the next slice is read.
///
/// Every stored block's signature and link is checked, a page of blocks at a time; what stays
/// in memory is the header of each block whose whole window lies inside `range` (~0.5 KB; the
/// blocks checked against the entries) and one header per tenant. So verifying yesterday holds
/// yesterday's blocks however long the history is; a block whose window crosses a bound of
/// `range` is left to a wider range, as in [`verify_trusting`].
pub async fn verify_all<C: ConnectionTrait>(
    db: &C,
    range: impl RangeBounds<DateTime<Utc>>,
    key: &VerifyingKey,
    trusted: &[Checkpoint],
) -> Result<Verification, Error> {
    let aliases = Aliases::new(Pseudonymizer::current()?)?;
    // The horizon first: blocks a round commits while the chains are read (in pages) only add
    // coverage, while a horizon read after them could pass entries of blocks not read.
    let horizon = horizon_of(db).await?;
    let mut tenants: HashMap<String, TenantCheck> = HashMap::new();
    let mut trusted = Trusted::new(trusted);
    // Each chain is checked as its blocks stream by: verifying a day of a long history holds
    // that day's blocks, and one header per tenant, not the history's.
    for_each_block(db, None, |tenant, cp| {
        trusted.saw(tenant, &cp);
        let t = tenants
            .entry(tenant.to_owned())
            .or_insert_with(TenantCheck::new);
        t.chain
            .follow(cp, |h| window_in(&range, h), key, &mut t.out);
        Ok(())
    })
    .await?;
    // A trusted checkpoint no stored block equals (its tenant's blocks may all be gone) is
    // reported `Truncated`, as `verify_trusting` of that tenant does.
    for p in trusted.missing() {
        if let Problem::Truncated { tenant, .. } = &p {
            tenants
                .entry(tenant.clone())
                .or_insert_with(TenantCheck::new)
                .out
                .problems
                .push(p);
        }
    }
    let upper = tenants
        .values()
        .filter_map(|t| t.chain.last().map(|l| l.created_at))
        .chain(horizon)
        .max();
    let mut state = AllCheck {
        aliases,
        tenants,
        horizon,
        start: range.start_bound().cloned(),
        end: range.end_bound().cloned(),
    };
    // Read nothing past the newest block or horizon: later entries are neither checked nor
    // reported.
    let upper = match (upper, range.end_bound()) {
        (None, _) => None,
        (Some(u), Bound::Included(e) | Bound::Excluded(e)) => Some(Ord::min(u, *e)),
        (Some(u), Bound::Unbounded) => Some(u),
    };
    if let Some(upper) = upper {
        let first = match range.start_bound() {
            Bound::Included(s) | Bound::Excluded(s) => Some(*s),
            Bound::Unbounded => oldest(db).await?,
        };
        let lo = first
            .map(|f| {
                f.checked_sub_signed(chrono::Duration::microseconds(1))
                    .unwrap_or(f)
            })
            .unwrap_or(upper);
        let mut slices = Slices::new(lo, upper);
        let mut stage = Stage::Here(Box::new(state));
        while let Some(rows) = slices.next(db).await? {
            let mut check = stage.take().await?;
            stage = Stage::Hashing(tokio::task::spawn_blocking(move || {
                check.feed(&rows);
                check
            }));
        }
        state = stage.take().await?;
    }
    let mut out = Verification::default();
    let mut names: Vec<String> = state.tenants.keys().cloned().collect();
    names.sort();
    for name in names {
        let Some(mut t) = state.tenants.remove(&name) else {
            continue;
        };
        for h in t.chain.checked.get(t.at..).unwrap_or_default() {
            state
                .aliases
                .check(h, &t.leaves, t.erased.take().as_deref(), &mut t.out);
            t.leaves.clear();
        }
        out.blocks += t.out.blocks;
        out.entries += t.out.entries;
        out.problems.append(&mut t.out.problems);
        out.problems.append(&mut t.unsealed);
    }
    Ok(out)
}

/// Every stored checkpoint (of the tenant `only`, if given), parsed, handed to `each` with the
/// tenant its row is stored under, by tenant and `seq`.
async fn for_each_block<C: ConnectionTrait>(
    db: &C,
    only: Option<&str>,
    mut each: impl FnMut(&str, Checkpoint) -> Result<(), Error>,
) -> Result<(), Error> {
    // A page of stored rows at a time (each ~1 KB of JSON), parsed as read: the stored form
    // of every block is never held at once.
    const BLOCK_PAGE: u64 = if cfg!(test) { 3 } else { 2_000 };
    let mut after: Option<(String, i64)> = None;
    loop {
        let mut q = activity_block::Entity::find();
        if let Some(tenant) = only {
            q = q.filter(activity_block::Column::Tenant.eq(tenant));
        }
        if let Some((tenant, seq)) = &after {
            // One row comparison: PostgreSQL and SQLite serve it from the primary key as one
            // range (an `OR` of the two cases would read the key from its start every page).
            q = q.filter(
                Expr::tuple([
                    Expr::col(activity_block::Column::Tenant),
                    Expr::col(activity_block::Column::Seq),
                ])
                .gt(Expr::tuple([
                    Expr::value(tenant.as_str()),
                    Expr::value(*seq),
                ])),
            );
        }
        let rows = q
            .order_by_asc(activity_block::Column::Tenant)
            .order_by_asc(activity_block::Column::Seq)
            .limit(BLOCK_PAGE)
            .all(db)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = Some((last.tenant.clone(), last.seq));
        let full = rows.len() as u64 == BLOCK_PAGE;
        for row in &rows {
            each(&row.tenant, parse(row)?)?;
        }
        if !full {
            return Ok(());
        }
    }
}

/// [`verify_all`]'s state: here, or on the thread hashing a slice while the next is read.
enum Stage {
    Here(Box<AllCheck>),
    Hashing(tokio::task::JoinHandle<AllCheck>),
}

impl Stage {
    async fn take(self) -> Result<AllCheck, Error> {
        match self {
            Stage::Here(check) => Ok(*check),
            Stage::Hashing(handle) => handle.await.map_err(|e| {
                Error::Activity(ActivityError::Integrity(format!(
                    "verification thread failed: {e}"
                )))
            }),
        }
    }
}

/// One tenant's part of [`verify_all`].
struct TenantCheck {
    /// Its chain; `at` is the block of those in range that entries go to next.
    chain: Chain,
    at: usize,
    leaves: Vec<Hash>,
    out: Verification,
    unsealed: Vec<Problem>,
    /// The current block's [`Aliases::erased_after`], if any.
    erased: Option<String>,
}

impl TenantCheck {
    fn new() -> Self {
        TenantCheck {
            chain: Chain::default(),
            at: 0,
            leaves: Vec::new(),
            out: Verification::default(),
            unsealed: Vec::new(),
            erased: None,
        }
    }
}

/// [`verify_all`]'s state, handed to the hashing thread and back.
struct AllCheck {
    aliases: Aliases,
    tenants: HashMap<String, TenantCheck>,
    horizon: Option<DateTime<Utc>>,
    start: Bound<DateTime<Utc>>,
    end: Bound<DateTime<Utc>>,
}

impl AllCheck {
    /// Hand each row (in key order) to its tenant's block, as [`verify_trusting`] does.
    fn feed(&mut self, rows: &[LeafRow]) {
        let range = (self.start, self.end);
        for row in rows {
            if !range.contains(&row.created_at) {
                continue;
            }
            let tenant = row.tenant();
            let key = row.key();
            let t = match self.tenants.get_mut(&tenant) {
                Some(t) => t,
                None => self
                    .tenants
                    .entry(tenant.clone())
                    .or_insert_with(TenantCheck::new),
            };
            if t.chain.last().is_none_or(|l| &key > l) {
                if self.horizon.is_some_and(|h| row.created_at <= h) {
                    t.unsealed.push(Problem::Unsealed {
                        tenant,
                        id: row.id,
                        created_at: row.created_at,
                    });
                }
                continue;
            }
            while let Some(h) = t.chain.checked.get(t.at)
                && key > h.last
            {
                self.aliases
                    .check(h, &t.leaves, t.erased.take().as_deref(), &mut t.out);
                t.leaves.clear();
                t.at += 1;
            }
            if let Some(h) = t.chain.checked.get(t.at)
                && h.covers(&key)
            {
                let leaf = self.aliases.leaf(row, &h.user_scopes);
                t.leaves.push(leaf);
                t.erased = t
                    .erased
                    .take()
                    .or_else(|| self.aliases.erased_after(&row.stored(), h));
            }
        }
    }
}

/// The check of archived entries against the chain, behind
/// [`verify_sealed`](crate::ops::archive::verify_sealed): [`new`](Self::new) reads the stored
/// chains once, the archive reads its files and hands each entry to [`add`](Self::add) (on a
/// blocking thread); [`finish`](Self::finish) adds what the database still holds before the
/// cutoff and checks every block whose window starts before it.
///
/// Of the chains, only the headers of the blocks to check stay (in range, starting before the
/// cutoff): checking last January's archive does not hold every block since. Each archived
/// entry is kept as its key and leaf only (about 90 bytes), never as the entry; so is each
/// stored entry of the checked windows.
pub(crate) struct ArchiveCheck {
    aliases: Aliases,
    /// Per tenant: its chain, the entries found in its checked windows, what was found wrong.
    tenants: HashMap<String, ArchivedTenant>,
    /// The newest cutoff of the archives given.
    cutoff: DateTime<Utc>,
}

/// One tenant's part of [`ArchiveCheck`].
#[derive(Default)]
struct ArchivedTenant {
    /// Its chain, with the blocks to check.
    chain: Chain,
    /// The entries found in the checked windows, archived and stored.
    leaves: Vec<(EntryKey, Leaf)>,
    /// Archived entries after its last block (reported if the horizon passed them).
    unsealed: Vec<EntryKey>,
    out: Verification,
}

impl ArchiveCheck {
    /// Check every tenant's stored chain (signatures, links) and that each of `kept` (the
    /// checkpoints the manifests name, and the caller's trusted ones) is still stored exactly.
    /// Needs the erasure key (the configured one).
    pub(crate) async fn new<'a, C: ConnectionTrait>(
        db: &C,
        cutoff: DateTime<Utc>,
        range: &impl RangeBounds<DateTime<Utc>>,
        key: &VerifyingKey,
        kept: impl IntoIterator<Item = &'a Checkpoint>,
    ) -> Result<Self, Error> {
        let aliases = Aliases::new(Pseudonymizer::current()?)?;
        let mut tenants: HashMap<String, ArchivedTenant> = HashMap::new();
        let mut kept = Trusted::new(kept);
        let to_check = |h: &BlockHeader| {
            window_in(range, h) && h.after.as_ref().is_none_or(|a| a.created_at < cutoff)
        };
        for_each_block(db, None, |tenant, cp| {
            kept.saw(tenant, &cp);
            let t = tenants.entry(tenant.to_owned()).or_default();
            t.chain.follow(cp, to_check, key, &mut t.out);
            Ok(())
        })
        .await?;
        // A checkpoint both named by a manifest and trusted is reported once.
        let mut reported = std::collections::HashSet::new();
        for p in kept.missing() {
            if let Problem::Truncated { tenant, seq } = &p
                && reported.insert((tenant.clone(), *seq))
            {
                tenants
                    .entry(tenant.clone())
                    .or_default()
                    .out
                    .problems
                    .push(p);
            }
        }
        Ok(ArchiveCheck {
            aliases,
            tenants,
            cutoff,
        })
    }

    /// One archived entry, with the user scopes of the block to check that covers it; an entry
    /// no such block covers is kept only if it is after the tenant's last block (unsealed
    /// although the horizon may have passed it: `finish` decides).
    pub(crate) fn add(&mut self, entry: &StoredEntry<'_>) {
        let tenant = tenant_key(entry.organization_id, entry.team_id);
        let key = EntryKey {
            created_at: entry.created_at,
            id: entry.id,
        };
        let t = self.tenants.entry(tenant).or_default();
        let leaf = covering(&t.chain.checked, |h| h, &key).map(|h| {
            let aliases = &mut self.aliases;
            let leaf = leaf_hash(&canonical_entry_bytes(
                entry,
                &h.user_scopes,
                &mut |v: &str| aliases.alias(v),
            ));
            (leaf, self.aliases.erased_after(entry, h))
        });
        match leaf {
            Some(leaf) => t.leaves.push((key, leaf)),
            None if t.chain.last().is_none_or(|l| &key > l) => t.unsealed.push(key),
            None => {}
        }
    }

    /// Check each block whose window starts in `range` and before the cutoff against the
    /// archived entries and the stored ones together; report every entry before the cutoff,
    /// archived or stored, that no block covers although the horizon passed it.
    pub(crate) async fn finish<C: ConnectionTrait>(
        mut self,
        db: &C,
        range: impl RangeBounds<DateTime<Utc>>,
    ) -> Result<Verification, Error> {
        let cutoff = self.cutoff;
        let horizon = horizon_of(db).await?;
        let unsealed = |at: &DateTime<Utc>| {
            *at < cutoff && horizon.is_some_and(|h| *at <= h) && range.contains(at)
        };
        let upper = cutoff - chrono::Duration::microseconds(1);
        for (tenant, t) in &mut self.tenants {
            for k in std::mem::take(&mut t.unsealed) {
                if unsealed(&k.created_at) {
                    t.out.problems.push(Problem::Unsealed {
                        tenant: tenant.clone(),
                        id: k.id,
                        created_at: k.created_at,
                    });
                }
            }
        }
        // What the database still holds before the cutoff, in one read in time order; then,
        // tenant by tenant, the rest of the window that straddles the cutoff (at most one
        // block's worth each).
        let lo = match range.start_bound() {
            Bound::Included(s) | Bound::Excluded(s) => Some(*s),
            Bound::Unbounded => oldest(db).await?,
        }
        .map(|f| {
            f.checked_sub_signed(chrono::Duration::microseconds(1))
                .unwrap_or(f)
        });
        if let Some(lo) = lo {
            let mut slices = Slices::new(lo, upper);
            while let Some(rows) = slices.next(db).await? {
                for row in &rows {
                    let k = row.key();
                    let t = self.tenants.entry(row.tenant()).or_default();
                    if let Some(h) = covering(&t.chain.checked, |h| h, &k) {
                        let leaf = self.aliases.leaf(row, &h.user_scopes);
                        let erased = self.aliases.erased_after(&row.stored(), h);
                        t.leaves.push((k, (leaf, erased)));
                    } else if t.chain.last().is_none_or(|l| &k > l) && unsealed(&row.created_at) {
                        t.out.problems.push(Problem::Unsealed {
                            tenant: row.tenant(),
                            id: row.id,
                            created_at: row.created_at,
                        });
                    }
                }
            }
        }
        let from_cutoff = EntryKey {
            created_at: upper,
            id: uuid::Uuid::max(),
        };
        for (tenant, t) in &mut self.tenants {
            let Some(last) = t.chain.checked.last().filter(|h| h.last > from_cutoff) else {
                continue;
            };
            let last = last.last.clone();
            let (aliases, leaves, checked) = (&mut self.aliases, &mut t.leaves, &t.chain.checked);
            walk(db, tenant, Some(&from_cutoff), Some(&last), |row| {
                let k = row.key();
                if let Some(h) = covering(checked, |h| h, &k) {
                    let leaf = aliases.leaf(row, &h.user_scopes);
                    leaves.push((k, (leaf, aliases.erased_after(&row.stored(), h))));
                }
                Ok(())
            })
            .await?;
        }
        let mut out = Verification::default();
        let mut names: Vec<String> = self.tenants.keys().cloned().collect();
        names.sort();
        for name in names {
            let Some(mut t) = self.tenants.remove(&name) else {
                continue;
            };
            // An entry both archived and still stored (not pruned yet) counts once when the
            // two copies give the same leaf; copies that differ both count.
            t.leaves.sort_unstable();
            t.leaves.dedup();
            let mut rest = t.leaves.as_slice();
            let mut blocks = Verification::default();
            for h in &t.chain.checked {
                let end = rest.partition_point(|(k, _)| k <= &h.last);
                let (window, after) = rest.split_at(end);
                let erased = window.iter().find_map(|(_, (_, e))| e.as_deref());
                let leaves: Vec<Hash> = window.iter().map(|(_, (l, _))| *l).collect();
                self.aliases.check(h, &leaves, erased, &mut blocks);
                rest = after;
            }
            out.blocks += blocks.blocks;
            out.entries += blocks.entries;
            // Chain problems first, then the blocks', then unsealed entries (in key order).
            let (mut unsealed, chain): (Vec<Problem>, Vec<Problem>) = t
                .out
                .problems
                .into_iter()
                .partition(|p| matches!(p, Problem::Unsealed { .. }));
            unsealed.sort_by_key(|p| match p {
                Problem::Unsealed { id, created_at, .. } => Some((*created_at, *id)),
                _ => None,
            });
            out.problems.extend(chain);
            out.problems.extend(blocks.problems);
            out.problems.extend(unsealed);
        }
        Ok(out)
    }
}

/// An entry's leaf, and its scope when it was erased after sealing ([`erased_after_sealing`]).
type Leaf = (Hash, Option<String>);

/// The block of `blocks` (in order, windows consecutive) whose window holds `key`.
fn covering<'a, T>(
    blocks: &'a [T],
    header: impl Fn(&T) -> &BlockHeader,
    key: &EntryKey,
) -> Option<&'a T> {
    let at = blocks.partition_point(|b| &header(b).last < key);
    blocks.get(at).filter(|b| header(b).covers(key))
}

/// An entry in canonical form (what its hash covers: personal fields as pseudonyms) with the
/// proof that it is in a signed block.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Proven {
    /// The entry's canonical form.
    pub entry: serde_json::Value,
    /// Its inclusion proof.
    pub proof: InclusionProof,
}

/// The inclusion proof of entry `id`: `None` when no such entry exists or it is not sealed
/// yet. Needs the erasure key.
pub async fn prove<C: ConnectionTrait>(db: &C, id: uuid::Uuid) -> Result<Option<Proven>, Error> {
    let Some(entry) = leaf_rows()
        .filter(Column::Id.eq(id))
        .into_model::<LeafRow>()
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let mut aliases = Aliases::new(Pseudonymizer::current()?)?;
    let tenant = entry.tenant();
    let key = entry.key();
    // The covering block is the first whose last entry is not before this one: any of the
    // blocks ending in this entry's microsecond (a bulk write, a fixed clock: there may be
    // several), else the first ending after it.
    let blocks = || {
        activity_block::Entity::find()
            .filter(activity_block::Column::Tenant.eq(tenant.as_str()))
            .order_by_asc(activity_block::Column::Seq)
    };
    let mut candidates = blocks()
        .filter(activity_block::Column::LastAt.eq(entry.created_at))
        .all(db)
        .await?;
    candidates.extend(
        blocks()
            .filter(activity_block::Column::LastAt.gt(entry.created_at))
            .limit(1)
            .all(db)
            .await?,
    );
    let mut block = None;
    for row in &candidates {
        let cp = parse(row)?;
        if cp.header.covers(&key) {
            block = Some(cp);
            break;
        }
    }
    let Some(checkpoint) = block else {
        return Ok(None);
    };
    let h = &checkpoint.header;
    aliases.same_key(h)?;
    // The count is the database's word until the root checks it: never an allocation size.
    let mut leaves =
        Vec::with_capacity(usize::try_from(h.entries).map_or(MAX_BLOCK, |n| n.min(MAX_BLOCK)));
    let mut index = None;
    walk(db, &tenant, h.after.as_ref(), Some(&h.last), |e| {
        if e.id == id {
            index = Some(leaves.len());
        }
        leaves.push(aliases.leaf(e, &h.user_scopes));
        Ok(())
    })
    .await?;
    let Some(index) = index else {
        return Ok(None);
    };
    let path = inclusion_path(&leaves, index)
        .iter()
        .map(hex::encode)
        .collect();
    let canonical = aliases.canonical(&entry, &h.user_scopes);
    Ok(Some(Proven {
        entry: canonical,
        proof: InclusionProof {
            index: index as u64,
            path,
            checkpoint,
        },
    }))
}

/// What [`export_sealed`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SealedExport {
    /// Blocks (checkpoint lines).
    pub blocks: u64,
    /// Entries (canonical lines).
    pub entries: u64,
}

/// Write `tenant`'s sealed entries over `range` for an auditor: to `entries`, one canonical
/// entry per line (personal fields as pseudonyms), every entry of each whole block whose window
/// lies in `range`; to `checkpoints`, those blocks' checkpoints. The `activity-verify` binary
/// checks the pair with the public key alone. Needs the erasure key.
pub async fn export_sealed<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    range: impl RangeBounds<DateTime<Utc>>,
    entries: &mut impl std::io::Write,
    checkpoints_out: &mut impl std::io::Write,
) -> Result<SealedExport, Error> {
    let mut aliases = Aliases::new(Pseudonymizer::current()?)?;
    let mut done = SealedExport::default();
    let chain = checkpoints(db, tenant).await?;
    let exported: Vec<&Checkpoint> = chain
        .iter()
        .filter(|cp| window_in(&range, &cp.header))
        .collect();
    for cp in &exported {
        aliases.same_key(&cp.header)?;
    }
    // One walk over the blocks' windows (consecutive in an unbroken chain), each entry written
    // with the user scopes of the block that holds it.
    if let (Some(first), Some(last)) = (exported.first(), exported.last()) {
        let mut at = 0;
        walk(
            db,
            tenant,
            first.header.after.as_ref(),
            Some(&last.header.last),
            |e| {
                let key = e.key();
                while let Some(cp) = exported.get(at)
                    && key > cp.header.last
                {
                    at += 1;
                }
                if let Some(cp) = exported.get(at)
                    && cp.header.covers(&key)
                {
                    let line = canonical_entry_bytes(
                        &e.stored(),
                        &cp.header.user_scopes,
                        &mut |v: &str| aliases.alias(v),
                    );
                    entries.write_all(&line)?;
                    entries.write_all(b"\n")?;
                    done.entries += 1;
                }
                Ok(())
            },
        )
        .await?;
    }
    for cp in exported {
        serde_json::to_writer(&mut *checkpoints_out, cp)?;
        checkpoints_out.write_all(b"\n")?;
        done.blocks += 1;
    }
    entries.flush()?;
    checkpoints_out.flush()?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::table::activity_log;
    use activity_core::ActivityEntry;
    use chrono::TimeZone;

    /// Every tenant's stored checkpoints, by tenant and `seq`.
    async fn all_chains<C: ConnectionTrait>(
        db: &C,
    ) -> Result<std::collections::BTreeMap<String, Vec<Checkpoint>>, Error> {
        let mut chains: std::collections::BTreeMap<String, Vec<Checkpoint>> = Default::default();
        for_each_block(db, None, |tenant, cp| {
            chains.entry(tenant.to_owned()).or_default().push(cp);
            Ok(())
        })
        .await?;
        Ok(chains)
    }

    /// The stored blocks are read a page at a time (3 rows in tests), each tenant's chain
    /// whole and in order across the pages.
    #[tokio::test]
    async fn every_chain_is_read_whole_across_pages() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        crate::schema::create_table(&db).await.unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let mut rows = Vec::new();
        for i in 0..23i64 {
            let mut e = ActivityEntry::new("FeatureFlag", "updated");
            e.created_at = t0 + chrono::Duration::seconds(i);
            e.organization_id = Some(["a", "b", "c"][(i % 3) as usize].to_owned());
            rows.push(activity_log::ActiveModel::from(e));
        }
        activity_log::Entity::insert_many(rows)
            .exec_without_returning(&db)
            .await
            .unwrap();
        let sealer = Sealer::new(SigningKey::from_bytes(&[3u8; 32]))
            .with_grace(Duration::ZERO)
            .with_block_size(2);
        let round = ActivityConfig::new()
            .with_erasure_key([5u8; 32])
            .scope(sealer.seal(&db))
            .await
            .unwrap();
        assert_eq!(round.entries, 23);
        // 8 + 8 + 7 entries in blocks of 2: 4 + 4 + 4 blocks, read 3 rows a page.
        let chains = all_chains(&db).await.unwrap();
        assert_eq!(
            chains
                .iter()
                .map(|(t, c)| (t.as_str(), c.len()))
                .collect::<Vec<_>>(),
            [("o:a", 4), ("o:b", 4), ("o:c", 4)]
        );
        for (tenant, chain) in &chains {
            assert_eq!(chain, &checkpoints(&db, tenant).await.unwrap());
        }

        // `verify_all` checks the chains as they stream by, a page at a time: the same
        // findings as a tenant at a time, a link broken across a page included.
        let key = sealer.verifying_key();
        let config = ActivityConfig::new().with_erasure_key([5u8; 32]);
        let both = |range: (Bound<DateTime<Utc>>, Bound<DateTime<Utc>>),
                    trusted: Vec<Checkpoint>| {
            let (db, config, key) = (&db, config.clone(), key);
            config.scope(async move {
                let all = verify_all(db, range, &key, &trusted).await.unwrap();
                let mut each = Vec::new();
                for tenant in ["o:a", "o:b", "o:c"] {
                    let one = verify_trusting(db, tenant, range, &key, &trusted)
                        .await
                        .unwrap();
                    each.extend(one.problems);
                }
                assert_eq!(
                    all.problems, each,
                    "verify_all and a tenant at a time agree"
                );
                all
            })
        };
        let all = both((Bound::Unbounded, Bound::Unbounded), Vec::new()).await;
        assert_eq!((all.blocks, all.entries, all.problems.len()), (12, 23, 0));
        // Only the blocks whose whole window lies in the range are checked against entries.
        let part = (
            Bound::Included(t0 + chrono::Duration::seconds(6)),
            Bound::Included(t0 + chrono::Duration::seconds(17)),
        );
        let some = both(part, Vec::new()).await;
        assert!(
            some.problems.is_empty() && (1..12).contains(&some.blocks),
            "{some:?}"
        );
        // A block gone from the middle of o:b's chain (its rows come second and third of a
        // page): the next one no longer links; kept outside, it is reported missing.
        let gone = chains["o:b"][2].clone();
        activity_block::Entity::delete_many()
            .filter(activity_block::Column::Tenant.eq("o:b"))
            .filter(activity_block::Column::Seq.eq(3))
            .exec(&db)
            .await
            .unwrap();
        let broken = both((Bound::Unbounded, Bound::Unbounded), vec![gone]).await;
        assert_eq!(
            broken.problems,
            [
                Problem::BrokenChain {
                    tenant: "o:b".into(),
                    seq: 4
                },
                Problem::Truncated {
                    tenant: "o:b".into(),
                    seq: 3
                },
            ]
        );
    }

    /// Slices never hold more than their cap and together return every entry exactly once, in
    /// key order — through a stretch denser than the cap (read again in shorter slices) and a
    /// single microsecond holding more than the cap (a bulk write under a fixed clock, paged by
    /// id).
    #[tokio::test]
    async fn slices_are_bounded_and_return_every_entry_once_in_order() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        crate::schema::create_table(&db).await.unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
        let mut times = Vec::new();
        times.extend(std::iter::repeat_n(t0, 61));
        times.extend((0..30).map(|i| t0 + chrono::Duration::seconds(2 * i + 1)));
        times.extend((0..20).map(|i| t0 + chrono::Duration::milliseconds(30_000 + i)));
        times.extend((0..5).map(|i| t0 + chrono::Duration::hours(3 + i)));
        let mut ids = Vec::new();
        let mut rows = Vec::new();
        for at in &times {
            let mut e = ActivityEntry::new("FeatureFlag", "updated");
            e.created_at = *at;
            ids.push((e.created_at, e.id));
            rows.push(activity_log::ActiveModel::from(e));
        }
        for chunk in rows.chunks(50) {
            activity_log::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&db)
                .await
                .unwrap();
        }
        ids.sort();

        let mut slices = Slices::new(
            t0 - chrono::Duration::microseconds(1),
            t0 + chrono::Duration::days(1),
        );
        slices.cap = 8;
        let mut seen = Vec::new();
        while let Some(slice) = slices.next(&db).await.unwrap() {
            assert!(!slice.is_empty() && slice.len() <= 8, "{}", slice.len());
            seen.extend(slice.iter().map(|r| (r.created_at, r.id)));
        }
        assert_eq!(seen, ids);
        assert!(slices.next(&db).await.unwrap().is_none());
    }
}
