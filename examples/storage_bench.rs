//! The storage harness: bytes per entry of THE SAME logical events stored in the log's own
//! table and in the peers' schemas (each with the indexes its own migrations create), side by
//! side in one PostgreSQL run, plus compact candidates for the log's table and the archived
//! size.
//!
//! ```sh
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p activity-examples --example storage_bench
//! ```
//!
//! The logical event: one small `updated` of one boolean field (`enabled`) of a
//! FeatureFlag-like model (`id, key, name, enabled, rollout_percentage, organization_id,
//! team_id, created_at, updated_at`), by a user (id and display name), in an organization and a
//! team, with a request id, one update per transaction (so a peer's per-transaction row counts
//! once per event): 2,000 items, 2,000 users, 40 organizations, 200 teams, `BENCH_ROWS` events
//! (default 500,000) over 27 days of 2025. Every schema is filled from one view of those events
//! (`INSERT … SELECT` over `generate_series`, in time order, every index in place, ids
//! time-ordered like production: UUID v7 layout as in `examples/sql/storage_floor.sql`, serials
//! for the peers that use them, random UUIDs where a peer uses `uuid4`), then `VACUUM ANALYZE`.
//! Bytes per entry: heap (`pg_table_size`: main fork, TOAST, free-space and visibility maps) and
//! each index (`pg_relation_size`), divided by the number of events.
//!
//! `ours` is the real `activity_log` of `activity_seaorm::schema::create_table`; the harness
//! checks its generated rows against entries written by `log_activity` (in `transaction`, with
//! an `ActivityContext`) for the same events, column by column and in `pg_column_size`. The
//! `ours before` row is the same table with `detail` stored in the full API shape, as versions
//! before the compact form stored it; candidates B–D are design explorations for a compact
//! row, not the library's schema. Then the `ours` rows are exported as JSON lines of the API shape (what an archive holds) and
//! compressed with zstd (level 9, alone and with the archive's long-distance matching) and gzip
//! (default level): the archived size per entry. Last, `ours`' indexes are rebuilt
//! (`REINDEX`) to show what their 50/50 page splits cost.
//!
//! And what the candidates cost the reads, measured (before the export, printed last): for
//! `ours` and candidates C, D and D2, the SQL that each read path they change would send
//! (item pages, organization and team feeds, the actor filter, erasure's lookup; on D and D2
//! the hash predicate beside the exact values), each a prepared statement on one connection:
//! the median of `BENCH_READ_REPS` (default 200) executions after a warm-up, and each plan's
//! sequential scans of the log table (`EXPLAIN`). Every shape must return the same entries.
//!
//! Everything lives in the schemas `storage_bench` and `storage_bench_lib` (dropped first, and
//! at the end unless `BENCH_KEEP=1`).

use std::error::Error;
use std::io::Write;
use std::time::Instant;

use activity_examples::bench::{drop_schema, env_num, postgres_schema};
use activity_seaorm::entry::{Change, ChangeAction};
use activity_seaorm::prelude::ScopedFutureExt;
use activity_seaorm::{
    ActivityContext, ActivityEntry, Actor, activity_log, log_activity, transaction,
};
use chrono::{DateTime, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, TransactionTrait, Value,
};

const SCHEMA: &str = "storage_bench";
const LIB_SCHEMA: &str = "storage_bench_lib";

type Res<T> = Result<T, Box<dyn Error>>;

/// The logical events, one row per event `g` (1..=rows): the item (flag id), its team and
/// organization, the acting user (a member of that organization), the flag's value before and
/// after (each item's updates alternate false→true→false…), the event's time and the time of
/// the item's previous update, the request id, the entry id and the transaction's correlation
/// id (UUID v7 layout: 48-bit milliseconds, version 7, pseudo-random).
fn events_view(rows: usize) -> String {
    let step_us = 27 * 86_400 * 1_000_000 / rows.max(1) as u64;
    let v7 = |seed: &str| {
        format!(
            "(lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7' \
             || substr(md5('{seed}' || g), 1, 19))::uuid"
        )
    };
    format!(
        "CREATE VIEW ev AS SELECT g, item, team, org, \
           org + 40 * ((g * 7) % 50) AS usr, \
           upd % 2 = 1 AS before, upd % 2 = 0 AS after, at, \
           CASE WHEN upd = 0 THEN flag_created \
                ELSE at - 2000 * interval '{step_us} microseconds' END AS prev_at, \
           flag_created, item * 37 % 101 AS rollout, \
           'flag-' || item AS key, 'Feature flag ' || item AS name, \
           md5('request' || g)::uuid AS request_id, {id} AS id, {tx} AS tx \
         FROM (SELECT g, item, (g - 1) / 2000 AS upd, item % 200 + 1 AS team, \
                 (item % 200 + 1) % 40 + 1 AS org, \
                 timestamptz '2025-01-01 00:00:00+00' + g * interval '{step_us} microseconds' AS at, \
                 timestamptz '2024-06-01 00:00:00+00' + item * interval '1 minute' AS flag_created \
               FROM (SELECT g, (g - 1) % 2000 + 1 AS item \
                     FROM generate_series(1, {rows}) AS g) AS s0) AS s",
        id = v7("id"),
        tx = v7("tx"),
    )
}

/// `detail` in the API shape, nulls included: PostHog's rows, and how the library stored it
/// before the compact form (the `ours before` row).
const DETAIL_FULL: &str = "jsonb_build_object('name', key, 'short_id', NULL, 'type', NULL, \
     'changes', jsonb_build_array(jsonb_build_object('type', 'FeatureFlag', 'action', 'changed', \
     'field', 'enabled', 'before', before, 'after', after)), 'trigger', NULL, 'context', NULL)";

/// `detail` as the library stores it (`Detail::stored`): no null keys, no per-change `type`
/// equal to the entry's scope.
const DETAIL_A: &str = "jsonb_build_object('name', key, 'changes', jsonb_build_array(\
     jsonb_build_object('action', 'changed', 'field', 'enabled', 'before', before, 'after', after)))";

/// Candidate D's hashed index keys, in its DDL and in the reads that use them: the item (team,
/// scope code, item id), the tenant (`o:<organization>`, else `t:<team>`) and D2's team.
const D_ITEM_KEY: &str = "hashtextextended(coalesce(team_id, '') || '/' || scope::text || '/' \
     || coalesce(item_id, ''), 0)";
const D_TENANT_KEY: &str =
    "hashtextextended(coalesce('o:' || organization_id, 't:' || team_id), 0)";
const D_TEAM_KEY: &str = "hashtextextended(team_id, 0)";

/// Which of a layout's indexes count.
enum Indexes {
    All,
    Except(&'static [&'static str]),
    Only(&'static [&'static str]),
}

impl Indexes {
    fn counts(&self, name: &str) -> bool {
        match self {
            Indexes::All => true,
            Indexes::Except(names) => !names.contains(&name),
            Indexes::Only(names) => names.contains(&name),
        }
    }
}

/// One row of the report: the tables an event is stored in (the first holds one row per event)
/// and which of their indexes count.
struct Layout {
    label: &'static str,
    tables: &'static [&'static str],
    indexes: Indexes,
    /// Candidates: what the read paths lose.
    lost: Option<&'static str>,
}

/// Statements that create and fill the peers' schemas and the candidates, in order. `ours`
/// (`activity_log`) exists and is filled before; `copy_b` are `activity_log`'s secondary
/// indexes rewritten for `activity_log_b` (candidates B and C share that table).
fn statements(copy_a: &[String], copy_b: &[String]) -> Vec<String> {
    // Ruby's YAML of a UTC `Time` (paper_trail's default serializer) and Debezium's JSON of a
    // `timestamptz` (Bemi).
    let yaml_time =
        |t: &str| format!("to_char({t} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '000 Z'");
    let iso_time =
        |t: &str| format!("to_char({t} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    let bemi_row = |enabled: &str, updated: &str| {
        format!(
            "jsonb_build_object('id', item, 'key', key, 'name', name, 'enabled', {enabled}, \
             'rollout_percentage', rollout, 'organization_id', org, 'team_id', team, \
             'created_at', {}, 'updated_at', {})",
            iso_time("flag_created"),
            iso_time(updated)
        )
    };
    let mut sql: Vec<String> = vec![
        // --- Envers. Hibernate ORM, hibernate-envers/src/main/java/org/hibernate/envers/
        // RevisionMapping.java (DefaultRevisionEntity: table REVINFO, `REV` int from a
        // sequence, `REVTSTMP` bigint) and the audit table `<entity>_AUD`: the audited columns
        // (a full row snapshot), `REV` (FK to REVINFO, no index) and `REVTYPE` (smallint:
        // 0 add, 1 mod, 2 del), primary key (original id, REV). Hibernate ≥ 6.2 orders table
        // columns and a composite primary key's columns by size, then name
        // (hibernate-core/…/boot/model/relational/ColumnOrderingStrategyStandard.java, applied
        // in …/boot/internal/MetadataImpl.java `handlePrimaryKey`), so with a bigint id its DDL
        // declares the key as (REV, id); Hibernate 5 declared (id, REV).
        "CREATE TABLE envers_revinfo (rev integer NOT NULL, revtstmp bigint, PRIMARY KEY (rev))"
            .into(),
        "CREATE TABLE envers_feature_flag_aud (rev integer NOT NULL, revtype smallint, \
         enabled boolean, rollout_percentage integer, created_at timestamp(6) with time zone, \
         id bigint NOT NULL, organization_id bigint, team_id bigint, \
         updated_at timestamp(6) with time zone, key varchar(255), name varchar(255), \
         PRIMARY KEY (rev, id), \
         CONSTRAINT envers_aud_rev_fk FOREIGN KEY (rev) REFERENCES envers_revinfo)"
            .into(),
        "INSERT INTO envers_revinfo SELECT g, (extract(epoch FROM at) * 1000)::bigint \
         FROM ev ORDER BY g"
            .into(),
        "INSERT INTO envers_feature_flag_aud SELECT g, 1, after, rollout, flag_created, item, \
         org, team, at, key, name FROM ev ORDER BY g"
            .into(),
        // Hibernate 5's key order (id, REV), its column order (id, REV, REVTYPE, properties).
        "CREATE TABLE envers5_revinfo (rev integer NOT NULL, revtstmp bigint, PRIMARY KEY (rev))"
            .into(),
        "CREATE TABLE envers5_feature_flag_aud (id bigint NOT NULL, rev integer NOT NULL, \
         revtype smallint, key varchar(255), name varchar(255), enabled boolean, \
         rollout_percentage integer, organization_id bigint, team_id bigint, \
         created_at timestamp(6) with time zone, updated_at timestamp(6) with time zone, \
         PRIMARY KEY (id, rev), \
         CONSTRAINT envers5_aud_rev_fk FOREIGN KEY (rev) REFERENCES envers5_revinfo)"
            .into(),
        "INSERT INTO envers5_revinfo SELECT g, (extract(epoch FROM at) * 1000)::bigint \
         FROM ev ORDER BY g"
            .into(),
        "INSERT INTO envers5_feature_flag_aud SELECT item, g, 1, key, name, after, rollout, \
         org, team, flag_created, at FROM ev ORDER BY g"
            .into(),
        // A custom revision entity (`@RevisionEntity` extending the default mapping, as in the
        // Envers documentation) carrying who and which request: REV, REVTSTMP, then the
        // varchar(255) columns by name. The audit rows are the ≥ 6.2 table's above.
        "CREATE TABLE envers_user_revinfo (rev integer NOT NULL, revtstmp bigint, \
         request_id varchar(255), username varchar(255), PRIMARY KEY (rev))"
            .into(),
        "INSERT INTO envers_user_revinfo SELECT g, (extract(epoch FROM at) * 1000)::bigint, \
         request_id::text, 'User ' || usr FROM ev ORDER BY g"
            .into(),
        // --- django-pghistory. Opus10/django-pghistory, pghistory/models.py (`Event`:
        // `pgh_id` AutoField, `pgh_created_at`, `pgh_label` text), pghistory/config.py (tracked
        // foreign keys and `pgh_obj`/`pgh_context` become ForeignKey(db_constraint=False,
        // db_index=True): one index each; other fields lose unique/db_index),
        // pghistory/migrations/0001_initial.py (`pghistory_context`: uuid4 id, created_at,
        // updated_at, metadata jsonb; primary key only). `pghistory.track()` snapshots the new
        // row on update (label `update`); the middleware's context carries the user (and here
        // the request id), one context row per request/transaction.
        "CREATE TABLE pghistory_context (id uuid NOT NULL PRIMARY KEY, \
         created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, \
         metadata jsonb NOT NULL)"
            .into(),
        "CREATE TABLE app_featureflagevent (pgh_id serial NOT NULL PRIMARY KEY, \
         pgh_created_at timestamptz NOT NULL, pgh_label text NOT NULL, id bigint NOT NULL, \
         key varchar(255) NOT NULL, name varchar(255) NOT NULL, enabled boolean NOT NULL, \
         rollout_percentage integer NOT NULL, organization_id bigint NOT NULL, \
         team_id bigint NOT NULL, created_at timestamptz NOT NULL, \
         updated_at timestamptz NOT NULL, pgh_context_id uuid NULL, pgh_obj_id bigint NOT NULL)"
            .into(),
        "CREATE INDEX app_featureflagevent_organization_id ON app_featureflagevent \
         (organization_id)"
            .into(),
        "CREATE INDEX app_featureflagevent_team_id ON app_featureflagevent (team_id)".into(),
        "CREATE INDEX app_featureflagevent_pgh_context_id ON app_featureflagevent \
         (pgh_context_id)"
            .into(),
        "CREATE INDEX app_featureflagevent_pgh_obj_id ON app_featureflagevent (pgh_obj_id)"
            .into(),
        "INSERT INTO pghistory_context SELECT md5('context' || g)::uuid, at, at, \
         jsonb_build_object('user', usr, 'request_id', request_id::text) FROM ev ORDER BY g"
            .into(),
        "INSERT INTO app_featureflagevent (pgh_created_at, pgh_label, id, key, name, enabled, \
         rollout_percentage, organization_id, team_id, created_at, updated_at, pgh_context_id, \
         pgh_obj_id) SELECT at, 'update', item, key, name, after, rollout, org, team, \
         flag_created, at, md5('context' || g)::uuid, item FROM ev ORDER BY g"
            .into(),
        // --- paper_trail. paper-trail-gem/paper_trail,
        // lib/generators/paper_trail/install/templates/create_versions.rb.erb (bigserial id,
        // whodunnit string, created_at, item_id bigint, item_type, event, object text; one
        // index on (item_type, item_id)) and add_object_changes_to_versions.rb.erb
        // (`--with-changes`: object_changes text). The generator offers no json/jsonb option,
        // so both are `text` holding the default serializer's YAML: `object` is the row before
        // the update, `object_changes` the changed attributes (with `updated_at`). The request
        // id is not stored (it needs a metadata column of the application's own).
        "CREATE TABLE versions (id bigserial PRIMARY KEY, whodunnit varchar, \
         created_at timestamp(6) without time zone, item_id bigint NOT NULL, \
         item_type varchar NOT NULL, event varchar NOT NULL, object text, object_changes text)"
            .into(),
        "CREATE INDEX index_versions_on_item_type_and_item_id ON versions (item_type, item_id)"
            .into(),
        format!(
            r#"INSERT INTO versions (whodunnit, created_at, item_id, item_type, event, object,
             object_changes)
             SELECT usr::text, at AT TIME ZONE 'UTC', item, 'FeatureFlag', 'update',
               E'---\nid: ' || item || E'\nkey: ' || key || E'\nname: ' || name
               || E'\nenabled: ' || before || E'\nrollout_percentage: ' || rollout
               || E'\norganization_id: ' || org || E'\nteam_id: ' || team
               || E'\ncreated_at: ' || {fc} || E'\nupdated_at: ' || {prev} || E'\n',
               E'---\nenabled:\n- ' || before || E'\n- ' || after || E'\nupdated_at:\n- '
               || {prev} || E'\n- ' || {at} || E'\n'
             FROM ev ORDER BY g"#,
            fc = yaml_time("flag_created"),
            prev = yaml_time("prev_at"),
            at = yaml_time("at"),
        ),
        // --- PostHog. PostHog/posthog, posthog/models/activity_logging/activity_log.py
        // (`ActivityLog(UUIDTModel)`, commit 5328c2d7): uuid id (time-ordered UUIDT), team_id
        // int, organization_id uuid, user FK (Django indexes it; the constraint to posthog_user
        // is left out here: it takes no space), activity, item_id varchar(72), scope, detail
        // jsonb (the same API shape as ours), created_at, is_system, was_impersonated; and the
        // nine indexes of its Meta.
        "CREATE TABLE posthog_activitylog (id uuid NOT NULL PRIMARY KEY, \
         team_id integer NULL CHECK (team_id >= 0), organization_id uuid NULL, \
         user_id integer NULL, activity varchar(79) NOT NULL, item_id varchar(72) NULL, \
         scope varchar(79) NOT NULL, detail jsonb NULL, created_at timestamptz NOT NULL, \
         is_system boolean NULL, was_impersonated boolean NULL, \
         CONSTRAINT must_have_team_or_organization_id \
           CHECK (team_id IS NOT NULL OR organization_id IS NOT NULL))"
            .into(),
        "CREATE INDEX posthog_activitylog_user_id ON posthog_activitylog (user_id)".into(),
        "CREATE INDEX posthog_act_team_id_scope_item_id_idx ON posthog_activitylog \
         (team_id, scope, item_id)"
            .into(),
        "CREATE INDEX idx_alog_org_scope_created_at ON posthog_activitylog \
         (organization_id, scope, created_at DESC) \
         WHERE detail IS NOT NULL AND jsonb_typeof(detail) = 'object'"
            .into(),
        "CREATE INDEX idx_alog_org_detail_exists ON posthog_activitylog (organization_id) \
         WHERE detail IS NOT NULL AND jsonb_typeof(detail) = 'object'"
            .into(),
        "CREATE INDEX activitylog_detail_gin ON posthog_activitylog USING gin (detail jsonb_ops)"
            .into(),
        "CREATE INDEX idx_alog_detail_gin_path_ops ON posthog_activitylog \
         USING gin (detail jsonb_path_ops) WHERE detail IS NOT NULL"
            .into(),
        "CREATE INDEX idx_alog_team_act_scope_usr ON posthog_activitylog \
         (team_id, activity, scope, user_id) WHERE was_impersonated = false AND is_system = false"
            .into(),
        "CREATE INDEX idx_alog_team_scope_created ON posthog_activitylog \
         (team_id, scope, created_at DESC) WHERE was_impersonated = false AND is_system = false"
            .into(),
        "CREATE INDEX idx_alog_team_scp_act_crtd ON posthog_activitylog \
         (team_id, scope, activity, created_at DESC) \
         WHERE was_impersonated = false AND is_system = false"
            .into(),
        format!(
            "INSERT INTO posthog_activitylog (id, team_id, organization_id, user_id, activity, \
             item_id, scope, detail, created_at, is_system, was_impersonated) \
             SELECT id, team, md5('org' || org)::uuid, usr, 'updated', item::text, \
             'FeatureFlag', {DETAIL_FULL}, at, false, false FROM ev ORDER BY g"
        ),
        // --- Bemi. BemiHQ/bemi, core/src/migrations/ (Migration20240201161333_init.ts through
        // Migration20240409135627_timestamps_with_microsecond.ts): `changes` with a uuid4 id,
        // full before/after row images (Debezium JSON: the source table needs REPLICA IDENTITY
        // FULL), the application context, database/schema/table, operation, committed/queued
        // times, transaction id and WAL position; indexes on committed_at, primary_key, table,
        // operation, GIN (jsonb_path_ops) on before, after and context, and a unique
        // (position, table, schema, database, operation).
        "CREATE TABLE changes (id uuid NOT NULL DEFAULT gen_random_uuid(), \
         created_at timestamptz NOT NULL, primary_key varchar(255) NULL, \
         \"after\" jsonb NOT NULL DEFAULT '{}', context jsonb NOT NULL DEFAULT '{}', \
         \"database\" varchar(255) NOT NULL, \"schema\" varchar(255) NOT NULL, \
         \"table\" varchar(255) NOT NULL, operation text NOT NULL \
           CHECK (operation IN ('CREATE', 'UPDATE', 'DELETE', 'TRUNCATE', 'MESSAGE')), \
         committed_at timestamptz NOT NULL, queued_at timestamptz NOT NULL, \
         transaction_id bigint NOT NULL, \"position\" bigint NOT NULL, \
         \"before\" jsonb NOT NULL DEFAULT '{}', CONSTRAINT changes_pkey PRIMARY KEY (id))"
            .into(),
        "CREATE INDEX changes_committed_at_index ON changes (committed_at)".into(),
        "CREATE INDEX changes_primary_key_index ON changes (primary_key)".into(),
        "CREATE INDEX changes_before_index ON changes USING gin (\"before\" jsonb_path_ops)"
            .into(),
        "CREATE INDEX changes_after_index ON changes USING gin (\"after\" jsonb_path_ops)".into(),
        "CREATE INDEX changes_context_index ON changes USING gin (context jsonb_path_ops)".into(),
        "CREATE INDEX changes_table_index ON changes (\"table\")".into(),
        "CREATE INDEX changes_operation_index ON changes (operation)".into(),
        "ALTER TABLE changes ADD CONSTRAINT changes_position_table_schema_database_operation_unique \
         UNIQUE (\"position\", \"table\", \"schema\", \"database\", operation)"
            .into(),
        format!(
            "INSERT INTO changes (id, created_at, primary_key, \"after\", context, \"database\", \
             \"schema\", \"table\", operation, committed_at, queued_at, transaction_id, \
             \"position\", \"before\") \
             SELECT md5('bemi' || g)::uuid, at + interval '1 second', item::text, {after}, \
             jsonb_build_object('user_id', usr, 'request_id', request_id::text), 'app', \
             'public', 'feature_flag', 'UPDATE', at, at + interval '200 milliseconds', \
             1000000 + g, 100000000 + g::bigint * 4096, {before} FROM ev ORDER BY g",
            after = bemi_row("after", "at"),
            before = bemi_row("before", "prev_at"),
        ),
        // --- `activity_log` as before the compact `detail`: its columns and indexes, the full
        // shape stored (the table named `_a` after the candidate it was when this was a design).
        "CREATE TABLE activity_log_a (LIKE activity_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            .into(),
        "ALTER TABLE activity_log_a ADD PRIMARY KEY (id)".into(),
    ];
    sql.extend(copy_a.iter().cloned());
    sql.push(format!(
        "INSERT INTO activity_log_a (id, created_at, organization_id, team_id, user_id, \
         user_name, was_impersonated, is_system, scope, item_id, activity, detail, request_id, \
         correlation_id) \
         SELECT id, at, org::text, team::text, usr::text, 'User ' || usr, false, false, \
         'FeatureFlag', item::text, 'updated', {DETAIL_FULL}, request_id::text, tx::text \
         FROM ev ORDER BY g"
    ));
    // --- Candidates B and C (one table: C counts a subset of its indexes plus its own feed
    // index, which B does not count). Scope and activity as smallint codes into a dictionary,
    // request_id as uuid, user_name in an actor dictionary (id → name).
    sql.extend([
        "CREATE TABLE activity_code_b (code smallint PRIMARY KEY, kind varchar(8) NOT NULL, \
         name varchar(79) NOT NULL, UNIQUE (kind, name))"
            .to_owned(),
        "CREATE TABLE activity_actor_b (user_id varchar(255) PRIMARY KEY, \
         user_name varchar(255))"
            .into(),
        "CREATE TABLE activity_log_b (id uuid NOT NULL, created_at timestamptz NOT NULL, \
         organization_id varchar(255), team_id varchar(255), user_id varchar(255), \
         impersonated_by varchar(255), was_impersonated boolean NOT NULL DEFAULT false, \
         is_system boolean NOT NULL DEFAULT false, scope smallint NOT NULL, \
         item_id varchar(255), activity smallint NOT NULL, detail jsonb NOT NULL, \
         request_id uuid, correlation_id varchar(255), ip_address varchar(64), \
         user_agent varchar(512), client varchar(128), trace_id varchar(32), \
         span_id varchar(16), CONSTRAINT activity_log_b_pkey PRIMARY KEY (id))"
            .into(),
    ]);
    sql.extend(copy_b.iter().cloned());
    sql.extend([
        // C's one tenant feed: organization first (its feed in time order), the team as a
        // trailing key column, so a team's feed (its organization known) filters inside the
        // index, without visiting the organization's other teams' rows.
        "CREATE INDEX activity_log_c_tenant_feed ON activity_log_b \
         (organization_id, created_at DESC, id DESC, team_id)"
            .to_owned(),
        "INSERT INTO activity_code_b VALUES (1, 'scope', 'FeatureFlag'), (2, 'activity', 'updated')"
            .into(),
        "INSERT INTO activity_actor_b SELECT DISTINCT usr::text, 'User ' || usr FROM ev".into(),
        format!(
            "INSERT INTO activity_log_b (id, created_at, organization_id, team_id, user_id, \
             was_impersonated, is_system, scope, item_id, activity, detail, request_id, \
             correlation_id) \
             SELECT id, at, org::text, team::text, usr::text, false, false, 1, item::text, 2, \
             {DETAIL_A}, request_id, tx::text FROM ev ORDER BY g"
        ),
        // --- Candidate D: B's codes and dictionaries, fixed-width columns first (no padding),
        // `detail` as compact JSON text `[name, [[field, before, after], …]]` (anything else —
        // short_id, type, trigger, context, a change's type or action when not the default —
        // in an optional third element), `correlation_id` as uuid and NULL when the
        // transaction wrote this entry only (its group is the entry itself: a group read looks
        // up `correlation_id = $1 OR id = $1`), and narrow ascending indexes: a 64-bit hash of
        // the key and `created_at`, 24-byte index tuples, which PostgreSQL splits 90/10 when a
        // group's newest entry lands at the end of a page (nbtsplitloc.c,
        // `_bt_afternewitemoff`) instead of 50/50. The tenant feed's key is the library's
        // tenant key (`o:<organization>`, else `t:<team>`). D2 adds a team feed.
        "CREATE TABLE activity_code_d (code smallint PRIMARY KEY, kind varchar(8) NOT NULL, \
         name varchar(79) NOT NULL, UNIQUE (kind, name))"
            .into(),
        "CREATE TABLE activity_actor_d (user_id varchar(255) PRIMARY KEY, \
         user_name varchar(255))"
            .into(),
        "CREATE TABLE activity_log_d (id uuid NOT NULL, created_at timestamptz NOT NULL, \
         scope smallint NOT NULL, activity smallint NOT NULL, \
         was_impersonated boolean NOT NULL DEFAULT false, \
         is_system boolean NOT NULL DEFAULT false, request_id uuid, correlation_id uuid, \
         organization_id varchar(255), team_id varchar(255), user_id varchar(255), \
         impersonated_by varchar(255), item_id varchar(255), ip_address varchar(64), \
         user_agent varchar(512), client varchar(128), trace_id varchar(32), \
         span_id varchar(16), detail json NOT NULL, \
         CONSTRAINT activity_log_d_pkey PRIMARY KEY (id))"
            .into(),
        format!("CREATE INDEX activity_log_d_item ON activity_log_d ({D_ITEM_KEY}, created_at)"),
        format!(
            "CREATE INDEX activity_log_d_tenant_feed ON activity_log_d ({D_TENANT_KEY}, created_at)"
        ),
        "CREATE INDEX activity_log_d_correlation ON activity_log_d (correlation_id) \
         WHERE correlation_id IS NOT NULL"
            .into(),
        format!(
            "CREATE INDEX activity_log_d_team_feed ON activity_log_d ({D_TEAM_KEY}, created_at) \
             WHERE team_id IS NOT NULL AND organization_id IS NOT NULL"
        ),
        "INSERT INTO activity_code_d VALUES (1, 'scope', 'FeatureFlag'), (2, 'activity', 'updated')"
            .into(),
        "INSERT INTO activity_actor_d SELECT DISTINCT usr::text, 'User ' || usr FROM ev".into(),
        "INSERT INTO activity_log_d (id, created_at, scope, activity, was_impersonated, \
         is_system, request_id, correlation_id, organization_id, team_id, user_id, item_id, \
         detail) \
         SELECT id, at, 1, 2, false, false, request_id, NULL, org::text, team::text, \
         usr::text, item::text, ('[\"' || key || '\",[[\"enabled\",' || before || ',' || after \
         || ']]]')::json FROM ev ORDER BY g"
            .into(),
    ]);
    sql
}

fn layouts() -> Vec<Layout> {
    vec![
        Layout {
            label: "**ours**: `activity_log` (`schema::create_table`)",
            tables: &["activity_log"],
            indexes: Indexes::All,
            lost: None,
        },
        Layout {
            label: "Envers, Hibernate ≥ 6.2 DDL (PK (REV, id)), default REVINFO",
            tables: &["envers_feature_flag_aud", "envers_revinfo"],
            indexes: Indexes::All,
            lost: None,
        },
        Layout {
            label: "Envers, Hibernate 5 DDL (PK (id, REV)), default REVINFO",
            tables: &["envers5_feature_flag_aud", "envers5_revinfo"],
            indexes: Indexes::All,
            lost: None,
        },
        Layout {
            label: "Envers ≥ 6.2 + revision entity (username, request id)",
            tables: &["envers_feature_flag_aud", "envers_user_revinfo"],
            indexes: Indexes::All,
            lost: None,
        },
        Layout {
            label: "django-pghistory (event model + context)",
            tables: &["app_featureflagevent", "pghistory_context"],
            indexes: Indexes::All,
            lost: None,
        },
        Layout {
            label: "paper_trail (`versions`, YAML text, `--with-changes`)",
            tables: &["versions"],
            indexes: Indexes::All,
            lost: None,
        },
        Layout {
            label: "PostHog (`posthog_activitylog`)",
            tables: &["posthog_activitylog"],
            indexes: Indexes::All,
            lost: None,
        },
        Layout {
            label: "Bemi (`changes`)",
            tables: &["changes"],
            indexes: Indexes::All,
            lost: None,
        },
        Layout {
            label: "ours before: the full `detail` stored",
            tables: &["activity_log_a"],
            indexes: Indexes::All,
            lost: Some(
                "none (the previous version's storage): the same indexes, a `detail` ~80 B \
                 longer",
            ),
        },
        Layout {
            label: "candidate B: ours + smallint codes, uuid request id, actor names apart",
            tables: &["activity_log_b", "activity_code_b", "activity_actor_b"],
            indexes: Indexes::Except(&["activity_log_c_tenant_feed"]),
            lost: Some(
                "none: the same five indexes; reads map codes back (a cached dictionary) and \
                 join the actor table for `user_name` (the name now, not the name at the time, \
                 unless the dictionary keeps history); text search over user names joins; a \
                 request id that is not a UUID needs a place of its own",
            ),
        },
        Layout {
            label: "candidate C: B, only PK + item + one tenant feed",
            tables: &["activity_log_b", "activity_code_b", "activity_actor_b"],
            indexes: Indexes::Only(&[
                "activity_log_b_pkey",
                "activity_log_b_item",
                "activity_log_c_tenant_feed",
            ]),
            lost: Some(
                "actor filter (`users`) and erasure by user (`anonymize_user`): no user index \
                 (they scan the organization's feed and filter in the heap); group revert \
                 (`correlation_id`): no index at all; the team feed keeps an index only when \
                 the query names the organization too (team as a trailing key column, \
                 filtered inside the index), a team-only query scans; item page, organization \
                 feed, as-of, detail filters and text search (tenant-bounded) keep theirs",
            ),
        },
        Layout {
            label: "candidate D: C's reads, hashed ascending keys, compact JSON, no lone correlation id",
            tables: &["activity_log_d", "activity_code_d", "activity_actor_d"],
            indexes: Indexes::Except(&["activity_log_d_team_feed"]),
            lost: Some(
                "as C, except that group revert keeps its index (only multi-entry groups are \
                 indexed); the team feed walks its organization's feed and filters the team in \
                 the heap (D2 keeps a team index); every read must add the hash predicates to \
                 use the indexes (the library's SQL changes), and JSON-path filters parse the \
                 `json` text (no jsonb, no GIN)",
            ),
        },
        Layout {
            label: "candidate D2: D + a team feed index",
            tables: &["activity_log_d", "activity_code_d", "activity_actor_d"],
            indexes: Indexes::All,
            lost: Some("as D, with the team feed indexed"),
        },
    ]
}

async fn exec(db: &DatabaseConnection, sql: &str) -> Res<()> {
    db.execute_unprepared(sql)
        .await
        .map_err(|e| format!("{e}\nin: {sql}"))?;
    Ok(())
}

async fn all(db: &DatabaseConnection, sql: &str) -> Res<Vec<sea_orm::QueryResult>> {
    Ok(db
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await?)
}

async fn one_i64(db: &DatabaseConnection, sql: &str) -> Res<i64> {
    all(db, sql)
        .await?
        .first()
        .ok_or("no row")?
        .try_get_by_index::<i64>(0)
        .map_err(Into::into)
}

/// `activity_log`'s secondary indexes (as `create_table` made them), rewritten for `target`.
async fn copied_indexes(db: &DatabaseConnection, target: &str) -> Res<Vec<String>> {
    let mut out = Vec::new();
    for row in all(
        db,
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = current_schema() \
         AND tablename = 'activity_log' AND indexname <> 'activity_log_pkey' ORDER BY 1",
    )
    .await?
    {
        let name: String = row.try_get_by_index(0)?;
        let def: String = row.try_get_by_index(1)?;
        let from = format!("INDEX {name} ON {SCHEMA}.activity_log USING");
        let to = format!(
            "INDEX {} ON {SCHEMA}.{target} USING",
            name.replacen("activity_log", target, 1)
        );
        if !def.contains(&from) {
            return Err(format!("unexpected index definition: {def}").into());
        }
        out.push(def.replacen(&from, &to, 1));
    }
    Ok(out)
}

/// Writes the first `n` events through the library (`log_activity` in `transaction`, with the
/// event's `ActivityContext`) into `lib`'s own `activity_log`, and compares them with the
/// generated rows: every column but the ids and the time, the correlation id's length,
/// `pg_column_size` of `detail` and of the row.
async fn check_library_rows(
    db: &DatabaseConnection,
    lib: &DatabaseConnection,
    n: usize,
) -> Res<()> {
    activity_seaorm::schema::create_table(lib).await?;
    let events = all(
        db,
        &format!(
            "SELECT item, team, org, usr, before, after, key, request_id::text FROM ev \
             WHERE g <= {n} ORDER BY g"
        ),
    )
    .await?;
    for row in events {
        let item: i32 = row.try_get_by_index(0)?;
        let team: i32 = row.try_get_by_index(1)?;
        let org: i32 = row.try_get_by_index(2)?;
        let usr: i32 = row.try_get_by_index(3)?;
        let before: bool = row.try_get_by_index(4)?;
        let after: bool = row.try_get_by_index(5)?;
        let key: String = row.try_get_by_index(6)?;
        let request_id: String = row.try_get_by_index(7)?;
        let ctx =
            ActivityContext::for_user(Actor::new(usr.to_string()).with_name(format!("User {usr}")))
                .with_organization(org.to_string())
                .with_team(team.to_string())
                .with_request_id(request_id);
        let entry = ActivityEntry::new("FeatureFlag", "updated")
            .with_item_id(item.to_string())
            .with_name(key)
            .with_changes(vec![Change::new(
                "FeatureFlag",
                ChangeAction::Changed,
                Some("enabled"),
                serde_json::json!(before),
                serde_json::json!(after),
            )]);
        ActivityContext::scope(
            ctx,
            transaction(lib, move |txn| {
                async move { log_activity(txn, entry).await }.scope_boxed()
            }),
        )
        .await?;
    }
    let rows = all(
        db,
        &format!(
            "SELECT l.item_id, pg_column_size(l.detail), pg_column_size(g.detail), \
             pg_column_size(l.*), pg_column_size(g.*), l.detail = g.detail, \
             (l.organization_id, l.team_id, l.user_id, l.user_name, l.impersonated_by, \
              l.was_impersonated, l.is_system, l.scope, l.item_id, l.activity, l.ip_address, \
              l.user_agent, l.client, l.trace_id, l.span_id) IS NOT DISTINCT FROM \
             (g.organization_id, g.team_id, g.user_id, g.user_name, g.impersonated_by, \
              g.was_impersonated, g.is_system, g.scope, g.item_id, g.activity, g.ip_address, \
              g.user_agent, g.client, g.trace_id, g.span_id), \
             octet_length(l.correlation_id) IS NOT DISTINCT FROM octet_length(g.correlation_id) \
             FROM {LIB_SCHEMA}.activity_log l \
             JOIN {SCHEMA}.activity_log g ON g.request_id = l.request_id ORDER BY 1"
        ),
    )
    .await?;
    if rows.len() != n {
        return Err(format!(
            "{} of {n} library-written entries matched a generated row",
            rows.len()
        )
        .into());
    }
    for row in rows {
        let item: String = row.try_get_by_index(0)?;
        let sizes: [i32; 4] = [
            row.try_get_by_index(1)?,
            row.try_get_by_index(2)?,
            row.try_get_by_index(3)?,
            row.try_get_by_index(4)?,
        ];
        let same: [bool; 3] = [
            row.try_get_by_index(5)?,
            row.try_get_by_index(6)?,
            row.try_get_by_index(7)?,
        ];
        println!(
            "item {item}: library-written `detail` {} B, row {} B; generated `detail` {} B, \
             row {} B; detail equal: {}, other columns equal: {}, correlation id as long: {}",
            sizes[0], sizes[2], sizes[1], sizes[3], same[0], same[1], same[2]
        );
        if same.contains(&false) || sizes[0] != sizes[1] || sizes[2] != sizes[3] {
            return Err("the generated rows differ from the library's".into());
        }
    }
    Ok(())
}

struct Measured {
    label: &'static str,
    heaps: Vec<(String, i64)>,
    indexes: Vec<(String, i64)>,
    row: f64,
}

async fn measure(db: &DatabaseConnection, layout: &Layout) -> Res<Measured> {
    let mut heaps = Vec::new();
    let mut indexes = Vec::new();
    for table in layout.tables {
        heaps.push((
            (*table).to_owned(),
            one_i64(db, &format!("SELECT pg_table_size('{table}'::regclass)")).await?,
        ));
        for row in all(
            db,
            &format!(
                "SELECT c.relname::text, pg_relation_size(c.oid) FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = '{table}'::regclass \
                 ORDER BY 2 DESC, 1"
            ),
        )
        .await?
        {
            let name: String = row.try_get_by_index(0)?;
            if layout.indexes.counts(&name) {
                indexes.push((name, row.try_get_by_index(1)?));
            }
        }
    }
    let main = layout.tables.first().ok_or("no table")?;
    let row = all(
        db,
        &format!("SELECT avg(pg_column_size(t.*))::float8 FROM {main} t"),
    )
    .await?
    .first()
    .ok_or("no row")?
    .try_get_by_index::<f64>(0)?;
    Ok(Measured {
        label: layout.label,
        heaps,
        indexes,
        row,
    })
}

/// The `ours` rows as JSON lines of the API shape (`ActivityEntry`'s serde form, read in
/// primary-key order), compressed by zstd level 9, by zstd as the library's archive writes it
/// (level 9 with long-distance matching over a 16 MiB window) and by gzip's default level:
/// bytes of the JSON and of each.
async fn archived(db: &DatabaseConnection) -> Res<[u64; 4]> {
    use activity_seaorm::ops::archive::{ZSTD_LEVEL, ZSTD_WINDOW_LOG};
    let mut zstd = zstd::stream::Encoder::new(Vec::new(), 9)?;
    let mut ldm = zstd::stream::Encoder::new(Vec::new(), ZSTD_LEVEL)?;
    ldm.long_distance_matching(true)?;
    ldm.window_log(ZSTD_WINDOW_LOG)?;
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut json = 0u64;
    let mut line = Vec::new();
    let mut last: Option<Uuid> = None;
    loop {
        let mut page = activity_log::Entity::find()
            .order_by_asc(activity_log::Column::Id)
            .limit(10_000);
        if let Some(id) = last {
            page = page.filter(activity_log::Column::Id.gt(id));
        }
        let batch = page.all(db).await?;
        let Some(tail) = batch.last() else { break };
        last = Some(tail.id);
        for model in batch {
            line.clear();
            serde_json::to_writer(&mut line, &ActivityEntry::from(model))?;
            line.push(b'\n');
            json += line.len() as u64;
            zstd.write_all(&line)?;
            ldm.write_all(&line)?;
            gzip.write_all(&line)?;
        }
    }
    Ok([
        json,
        zstd.finish()?.len() as u64,
        ldm.finish()?.len() as u64,
        gzip.finish()?.len() as u64,
    ])
}

/// A shape whose reads are timed, and the label prefix of its layout in [`layouts`] (whose
/// counted indexes are the ones the reads may use).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Ours,
    C,
    D,
    D2,
}

impl Shape {
    const ALL: [Shape; 4] = [Shape::Ours, Shape::C, Shape::D, Shape::D2];

    fn name(self) -> &'static str {
        match self {
            Shape::Ours => "ours",
            Shape::C => "C",
            Shape::D => "D",
            Shape::D2 => "D2",
        }
    }

    fn layout(self) -> &'static str {
        match self {
            Shape::Ours => "**ours**",
            Shape::C => "candidate C:",
            Shape::D => "candidate D:",
            Shape::D2 => "candidate D2:",
        }
    }

    /// The log table and (candidates) the actor table `user_name` is joined from.
    fn tables(self) -> (&'static str, &'static str) {
        match self {
            Shape::Ours => ("activity_log", ""),
            Shape::C => ("activity_log_b", "activity_actor_b"),
            Shape::D | Shape::D2 => ("activity_log_d", "activity_actor_d"),
        }
    }
}

/// The read paths the candidates change, in the table's row order.
#[derive(Clone, Copy)]
enum Read {
    ItemPage,
    ItemKeyset,
    OrgFeed,
    TeamFeedInOrg,
    TeamFeed,
    Actor,
    ErasureCount,
    ErasureBatch,
}

impl Read {
    const ALL: [Read; 8] = [
        Read::ItemPage,
        Read::ItemKeyset,
        Read::OrgFeed,
        Read::TeamFeedInOrg,
        Read::TeamFeed,
        Read::Actor,
        Read::ErasureCount,
        Read::ErasureBatch,
    ];
}

/// `load_activity`'s page size, and the erasure's batch (`ops::erasure::ERASURE_BATCH`).
const PAGE: usize = 100;
const ERASURE_BATCH: u64 = activity_seaorm::ops::erasure::ERASURE_BATCH;
/// Executions of each statement before the timed ones (past the plan cache's five custom
/// plans, so the timed runs use the plan PostgreSQL settles on).
const WARM_UP: usize = 10;

/// The columns `load_activity` reads (all but the trace columns), from `activity_log`.
const OURS_COLUMNS: &str = "id, created_at, organization_id, team_id, user_id, user_name, \
     impersonated_by, was_impersonated, is_system, scope, item_id, activity, detail, request_id, \
     correlation_id, ip_address, user_agent, client";
/// The same from a candidate's log table `l`, `user_name` from its actor table `a` (scope and
/// activity stay codes: the client maps them through its cached dictionary).
const COMPACT_COLUMNS: &str = "l.id, l.created_at, l.organization_id, l.team_id, l.user_id, \
     a.user_name, l.impersonated_by, l.was_impersonated, l.is_system, l.scope, l.item_id, \
     l.activity, l.detail, l.request_id, l.correlation_id, l.ip_address, l.user_agent, l.client";

/// The SQL `read` needs against `shape`: what `load_activity` (or `anonymize_user`) sends for
/// `activity_log`, and the same read for a candidate's table: scope as its code, `user_name`
/// joined from the actor table, and on D/D2 the hash predicate of the index beside the exact
/// values it hashes (the recheck: two keys may share a hash). Parameters: item reads `$1` team,
/// `$2` item (keyset: `$3`, `$4` the cursor's time and id); the organization feed `$1`
/// organization; the team feeds `$1` organization and `$2` team, or `$1` team; the actor
/// filter `$1` organization, `$2` user; the erasure reads `$1` user.
fn read_sql(shape: Shape, read: Read) -> String {
    let (log, actor) = shape.tables();
    let hashed = matches!(shape, Shape::D | Shape::D2);
    let scope = if shape == Shape::Ours {
        "'FeatureFlag'"
    } else {
        "1"
    };
    let item = if hashed {
        format!(
            "{D_ITEM_KEY} = hashtextextended($1 || '/{scope}/' || $2, 0) AND team_id = $1 \
             AND scope = {scope} AND item_id = $2"
        )
    } else {
        format!("team_id = $1 AND scope = {scope} AND item_id = $2")
    };
    let org = if hashed {
        format!("{D_TENANT_KEY} = hashtextextended('o:' || $1, 0) AND organization_id = $1")
    } else {
        "organization_id = $1".to_owned()
    };
    let by_user = "(user_id = $1 OR impersonated_by = $1)";
    let (filter, dir, limit) = match read {
        Read::ItemPage => (item, "DESC", PAGE + 1),
        Read::ItemKeyset => (
            format!("{item} AND (created_at, id) < ($3, $4)"),
            "DESC",
            PAGE + 1,
        ),
        Read::OrgFeed => (org, "DESC", PAGE + 1),
        Read::TeamFeedInOrg if shape == Shape::D2 => (
            format!(
                "{D_TEAM_KEY} = hashtextextended($2, 0) AND team_id = $2 \
                 AND organization_id = $1"
            ),
            "DESC",
            PAGE + 1,
        ),
        Read::TeamFeedInOrg => (format!("{org} AND team_id = $2"), "DESC", PAGE + 1),
        Read::TeamFeed => ("team_id = $1".to_owned(), "DESC", PAGE + 1),
        Read::Actor => (format!("{org} AND user_id IN ($2)"), "DESC", PAGE + 1),
        Read::ErasureCount => return format!("SELECT count(*) FROM {log} WHERE user_id = $1"),
        Read::ErasureBatch => (by_user.to_owned(), "ASC", ERASURE_BATCH as usize),
    };
    let cols = if shape == Shape::Ours {
        OURS_COLUMNS
    } else {
        "*"
    };
    let ordered = |filter: &str| {
        format!(
            "SELECT {cols} FROM {log} WHERE {filter} \
             ORDER BY created_at {dir}, id {dir} LIMIT {limit}"
        )
    };
    let rows = match (shape, read) {
        // D2's team feed without its organization: the entries with one through the team
        // index, those without one (tenant key `t:<team>`) through the tenant feed, merged.
        (Shape::D2, Read::TeamFeed) => format!(
            "SELECT * FROM (({}) UNION ALL ({})) AS u \
             ORDER BY created_at {dir}, id {dir} LIMIT {limit}",
            ordered(&format!(
                "organization_id IS NOT NULL AND {D_TEAM_KEY} = hashtextextended($1, 0) \
                 AND team_id = $1"
            )),
            ordered(&format!(
                "organization_id IS NULL AND {D_TENANT_KEY} = hashtextextended('t:' || $1, 0) \
                 AND team_id = $1"
            )),
        ),
        _ => ordered(&filter),
    };
    if shape == Shape::Ours {
        rows
    } else {
        format!(
            "SELECT {COMPACT_COLUMNS} FROM ({rows}) AS l \
             LEFT JOIN {actor} AS a ON a.user_id = l.user_id \
             ORDER BY l.created_at {dir}, l.id {dir}"
        )
    }
}

/// What one read is asked: the item, its team and organization, a user of that organization,
/// the keyset cursor into the item's history and the position it stands for.
struct ReadArgs {
    org: String,
    team: String,
    item: String,
    user: String,
    cursor: (DateTime<Utc>, Uuid),
    cursor_after: i64,
    item_entries: i64,
}

impl ReadArgs {
    fn values(&self, read: Read) -> Vec<Value> {
        let s = |v: &String| Value::from(v.clone());
        match read {
            Read::ItemPage => vec![s(&self.team), s(&self.item)],
            Read::ItemKeyset => vec![
                s(&self.team),
                s(&self.item),
                Value::from(self.cursor.0),
                Value::from(self.cursor.1),
            ],
            Read::OrgFeed => vec![s(&self.org)],
            Read::TeamFeedInOrg => vec![s(&self.org), s(&self.team)],
            Read::TeamFeed => vec![s(&self.team)],
            Read::Actor => vec![s(&self.org), s(&self.user)],
            Read::ErasureCount | Read::ErasureBatch => vec![s(&self.user)],
        }
    }

    fn label(&self, read: Read) -> String {
        match read {
            Read::ItemPage => "(1) item page 1 (the item's 100 newest)".into(),
            Read::ItemKeyset if self.cursor_after == (9 * PAGE) as i64 => {
                "(2) item page 10 (keyset cursor)".into()
            }
            Read::ItemKeyset => format!(
                "(2) item page by keyset cursor, after entry {} (page 10 needs > 900 entries; \
                 the item holds {})",
                self.cursor_after, self.item_entries
            ),
            Read::OrgFeed => "(3) organization feed page 1".into(),
            Read::TeamFeedInOrg => "(4a) team feed page 1, organization known".into(),
            Read::TeamFeed => "(4b) team feed page 1, organization unknown".into(),
            Read::Actor => "(5) actor filter: one user's 100 newest in the organization".into(),
            Read::ErasureCount => {
                "(6) erasure lookup: count one user's entries, every tenant (`user_id`)".into()
            }
            Read::ErasureBatch => format!(
                "(6′) erasure's first batch as `anonymize_user` selects it (`user_id` or \
                 `impersonated_by`, oldest {ERASURE_BATCH})"
            ),
        }
    }
}

/// The first column of every row, as text: the ids a page returned, or the count. Every shape
/// must answer a read with the same ids as `ours`.
fn answer(rows: &[sea_orm::QueryResult]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            r.try_get_by_index::<Uuid>(0)
                .map(|id| id.to_string())
                .or_else(|_| r.try_get_by_index::<i64>(0).map(|n| n.to_string()))
                .unwrap_or_default()
        })
        .collect()
}

/// Median milliseconds of `reps` executions of the prepared statement `sql` with `values` on
/// `db`'s connection (after [`WARM_UP`] ones), and its answer.
async fn time_statement<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<Value>,
    reps: usize,
) -> Res<(f64, Vec<String>)> {
    let stmt = &Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let run = || async move {
        db.query_all_raw(stmt.clone())
            .await
            .map_err(|e| format!("{e}\nin: {sql}"))
    };
    let mut rows = Vec::new();
    for _ in 0..WARM_UP {
        rows = run().await?;
    }
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        run().await?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median = if reps % 2 == 1 {
        times[reps / 2]
    } else {
        (times[reps / 2 - 1] + times[reps / 2]) / 2.0
    };
    Ok((median, answer(&rows)))
}

/// The node types of `sql`'s plan (`EXPLAIN`, same parameters) that scan `table` sequentially.
async fn seq_scans<C: ConnectionTrait>(
    db: &C,
    table: &str,
    sql: &str,
    values: Vec<Value>,
) -> Res<Vec<String>> {
    fn walk(node: &serde_json::Value, table: &str, out: &mut Vec<String>) {
        let kind = node["Node Type"].as_str().unwrap_or_default();
        if node["Relation Name"].as_str() == Some(table) && kind.contains("Seq Scan") {
            out.push(kind.to_owned());
        }
        for child in node["Plans"].as_array().into_iter().flatten() {
            walk(child, table, out);
        }
    }
    let plan = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("EXPLAIN (FORMAT JSON) {sql}"),
            values,
        ))
        .await
        .map_err(|e| format!("{e}\nin: EXPLAIN {sql}"))?
        .first()
        .ok_or("no plan")?
        .try_get_by_index::<serde_json::Value>(0)?;
    let mut out = Vec::new();
    walk(&plan[0]["Plan"], table, &mut out);
    Ok(out)
}

/// One shape's reads: median milliseconds, answer and sequential scans of each, in
/// [`Read::ALL`] order.
async fn time_shape<C: ConnectionTrait>(
    db: &C,
    shape: Shape,
    args: &ReadArgs,
    reps: usize,
) -> Res<Vec<(f64, Vec<String>, Vec<String>)>> {
    let mut out = Vec::new();
    for read in Read::ALL {
        let sql = read_sql(shape, read);
        let (ms, answer) = time_statement(db, &sql, args.values(read), reps).await?;
        let scans = seq_scans(db, shape.tables().0, &sql, args.values(read)).await?;
        out.push((ms, answer, scans));
    }
    Ok(out)
}

/// Superscript digits for a footnote mark.
fn superscript(n: usize) -> String {
    n.to_string()
        .chars()
        .map(|c| {
            c.to_digit(10)
                .and_then(|d| "⁰¹²³⁴⁵⁶⁷⁸⁹".chars().nth(d as usize))
                .unwrap_or(c)
        })
        .collect()
}

/// The reads of `ours` and candidates C, D and D2, timed in SQL, as the Markdown table the run
/// prints last. Each shape reads its own table with the indexes its layout counts: C's and D's
/// uncounted indexes (B's on the shared table, D2's team feed) are dropped in a transaction
/// that is rolled back after their reads.
async fn time_reads(db: &DatabaseConnection, rows: usize) -> Res<String> {
    let reps = env_num("BENCH_READ_REPS", 200).max(1);
    // Item 1234 (or the last one of a smaller run), its team and organization as the events
    // view derives them, and the organization's most recent actor.
    let item = 1234.min(rows.min(2000));
    let team = item % 200 + 1;
    let org = team % 40 + 1;
    let user: String = all(
        db,
        &format!(
            "SELECT user_id FROM activity_log WHERE organization_id = '{org}' \
             ORDER BY created_at DESC, id DESC LIMIT 1"
        ),
    )
    .await?
    .first()
    .ok_or("no entry in the organization")?
    .try_get_by_index(0)?;
    let item_filter = format!(
        "FROM activity_log WHERE team_id = '{team}' AND scope = 'FeatureFlag' \
         AND item_id = '{item}'"
    );
    let item_entries = one_i64(db, &format!("SELECT count(*) {item_filter}")).await?;
    // The cursor of page 10 (after entry 900), or of the item's last full page.
    let cursor_after = ((9 * PAGE) as i64).min(item_entries - PAGE as i64).max(1);
    let row = all(
        db,
        &format!(
            "SELECT created_at, id {item_filter} ORDER BY created_at DESC, id DESC \
             OFFSET {} LIMIT 1",
            cursor_after - 1
        ),
    )
    .await?;
    let row = row.first().ok_or("no entry of the item")?;
    let args = ReadArgs {
        org: org.to_string(),
        team: team.to_string(),
        item: item.to_string(),
        user,
        cursor: (row.try_get_by_index(0)?, row.try_get_by_index(1)?),
        cursor_after,
        item_entries,
    };

    let t = Instant::now();
    let layouts = layouts();
    let mut results = Vec::new();
    for shape in Shape::ALL {
        let layout = layouts
            .iter()
            .find(|l| l.label.starts_with(shape.layout()))
            .ok_or("no layout for a shape")?;
        let table = layout.tables.first().ok_or("no table")?;
        let mut dropped = Vec::new();
        for r in all(
            db,
            &format!(
                "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE i.indrelid = '{table}'::regclass ORDER BY 1"
            ),
        )
        .await?
        {
            let name: String = r.try_get_by_index(0)?;
            if !layout.indexes.counts(&name) {
                dropped.push(name);
            }
        }
        let timed = if dropped.is_empty() {
            time_shape(db, shape, &args, reps).await?
        } else {
            let txn = db.begin().await?;
            for name in &dropped {
                txn.execute_unprepared(&format!("DROP INDEX {name}"))
                    .await?;
            }
            let timed = time_shape(&txn, shape, &args, reps).await;
            txn.rollback().await?;
            timed?
        };
        results.push(timed);
    }

    let mut out = format!(
        "\nReads (DESIGN §7), ms: the median of {reps} executions of each prepared statement \
         (after {WARM_UP}), one connection, rows fetched; item {item} of team {team} in \
         organization {org}, user {}. Each shape reads with the indexes its layout counts \
         (C: pkey, item, tenant feed; D: without the team feed; D2: all); C and D read \
         `user_name` from their actor table, D and D2 add the hash predicate to the exact \
         values ({:.0} s)\n\n| read (ms) | ours | C | D | D2 |\n|---|---:|---:|---:|---:|\n",
        args.user,
        t.elapsed().as_secs_f64()
    );
    let mut notes = Vec::new();
    for (i, read) in Read::ALL.into_iter().enumerate() {
        out.push_str(&format!("| {} |", args.label(read)));
        let expected = &results[0][i].1;
        for (shape, timed) in Shape::ALL.into_iter().zip(&results) {
            let (ms, answer, scans) = &timed[i];
            if answer != expected {
                return Err(format!(
                    "{}: {} answers {} rows, ours {} (or other ids)",
                    args.label(read),
                    shape.name(),
                    answer.len(),
                    expected.len()
                )
                .into());
            }
            out.push_str(&format!(" {ms:.2}"));
            if !scans.is_empty() {
                notes.push(format!(
                    "{} {} on `{}` ({}, {})",
                    superscript(notes.len() + 1),
                    scans.join(" + "),
                    shape.tables().0,
                    shape.name(),
                    args.label(read)
                ));
                out.push_str(&superscript(notes.len()));
            }
            out.push_str(" |");
        }
        out.push('\n');
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes.join("\\\n"));
        out.push('\n');
    }
    Ok(out)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Res<()> {
    let rows = env_num("BENCH_ROWS", 500_000).max(1);
    let (admin, db) = postgres_schema("storage_bench", SCHEMA, 1)
        .await
        .map_err(|e| e.to_string())?;
    let (_, lib) = postgres_schema("storage_bench", LIB_SCHEMA, 1)
        .await
        .map_err(|e| e.to_string())?;
    let result = run(&db, &lib, rows).await;
    drop_schema(&admin, LIB_SCHEMA).await?;
    drop_schema(&admin, SCHEMA).await?;
    result
}

async fn run(db: &DatabaseConnection, lib: &DatabaseConnection, rows: usize) -> Res<()> {
    let t = Instant::now();
    exec(db, &events_view(rows)).await?;
    activity_seaorm::schema::create_table(db).await?;
    exec(
        db,
        &format!(
            "INSERT INTO activity_log (id, created_at, organization_id, team_id, user_id, \
             user_name, was_impersonated, is_system, scope, item_id, activity, detail, \
             request_id, correlation_id) \
             SELECT id, at, org::text, team::text, usr::text, 'User ' || usr, false, false, \
             'FeatureFlag', item::text, 'updated', {DETAIL_A}, request_id::text, tx::text \
             FROM ev ORDER BY g"
        ),
    )
    .await?;
    check_library_rows(db, lib, 3.min(rows)).await?;
    let copy_a = copied_indexes(db, "activity_log_a").await?;
    let copy_b = copied_indexes(db, "activity_log_b").await?;
    for sql in statements(&copy_a, &copy_b) {
        exec(db, &sql).await?;
    }
    let tables: Vec<String> = all(
        db,
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
    )
    .await?
    .iter()
    .map(|r| r.try_get_by_index::<String>(0))
    .collect::<Result<_, _>>()?;
    for table in &tables {
        exec(db, &format!("VACUUM ANALYZE {table}")).await?;
    }
    println!(
        "\n{rows} events stored in {} layouts, generated and vacuumed in {:.0} s\n",
        layouts().len(),
        t.elapsed().as_secs_f64()
    );

    let per = |bytes: i64| bytes as f64 / rows as f64;
    let mut candidates = Vec::new();
    println!("| schema (bytes per entry) | total | heap + TOAST | indexes | avg row |");
    println!("|---|---:|---:|---:|---:|");
    for layout in layouts() {
        let main = layout.tables.first().ok_or("no table")?;
        let count = one_i64(db, &format!("SELECT count(*) FROM {main}")).await?;
        if count != rows as i64 {
            return Err(format!("{main} holds {count} rows, not {rows}").into());
        }
        let m = measure(db, &layout).await?;
        let heap: i64 = m.heaps.iter().map(|(_, b)| b).sum();
        let index: i64 = m.indexes.iter().map(|(_, b)| b).sum();
        println!(
            "| {} | **{:.0}** | {:.0} | {:.0} | {:.0} |",
            m.label,
            per(heap + index),
            per(heap),
            per(index),
            m.row
        );
        if m.heaps.len() > 1 {
            for (name, bytes) in &m.heaps {
                println!("| ↳ heap `{name}` | | {:.1} | | |", per(*bytes));
            }
        }
        for (name, bytes) in &m.indexes {
            println!("| ↳ `{name}` | | | {:.1} | |", per(*bytes));
        }
        if let Some(lost) = layout.lost {
            candidates.push((m.label, per(heap + index), lost));
        }
    }
    println!("\nWhat each candidate costs the reads (DESIGN §7):\n");
    for (label, total, lost) in candidates {
        let verdict = if total <= 250.0 {
            "≤ 250 B"
        } else {
            "> 250 B"
        };
        println!("- {label} ({total:.0} B, {verdict}): {lost}");
    }
    let reads = time_reads(db, rows).await?;

    let t = Instant::now();
    let [json, zstd, ldm, gzip] = archived(db).await?;
    let per = |bytes: u64| bytes as f64 / rows as f64;
    println!(
        "\narchived (`ours` as JSON lines of the API shape, {:.0} B per entry): zstd level 9 \
         {:.1} B, zstd level 9 + long-distance matching (16 MiB window, the library's archive) \
         {:.1} B, gzip (default level) {:.1} B per entry ({:.0} s)",
        per(json),
        per(zstd),
        per(ldm),
        per(gzip),
        t.elapsed().as_secs_f64()
    );

    // The 50/50 page splits of the tenant-led indexes, measured: the same indexes packed.
    let size = "SELECT pg_indexes_size('activity_log'::regclass)";
    let inserted = one_i64(db, size).await?;
    exec(db, "REINDEX TABLE activity_log").await?;
    let packed = one_i64(db, size).await?;
    println!(
        "`ours`' indexes rebuilt by `REINDEX TABLE activity_log` (what a closed month's \
         partition could be packed to): {:.0} B per entry, against {:.0} B as inserted",
        packed as f64 / rows as f64,
        inserted as f64 / rows as f64
    );
    print!("{reads}");
    Ok(())
}
