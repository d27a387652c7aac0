//! Sealed history on every backend: a sealed log verifies; altering one value, deleting one
//! entry, inserting a forged one, deleting the newest entries (with their blocks) and
//! recomputing every hash without the signing key are each detected, by `verify` and by the
//! offline check of an export; erasing a user leaves every block and proof valid.

use activity_seaorm::ops::erasure::anonymize_user;
use activity_seaorm::ops::seal::{
    self, Checkpoint, Problem, Sealer, SigningKey, VerifyingKey, export_sealed, prove, verify,
    verify_export, verify_trusting,
};
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityEntry, activity_log, log_activity};
use activity_tests::{TestDb, backend_tests};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};

const KEY: &[u8; 32] = b"erasure test key: 32 bytes long!";
const ACME: &str = "o:acme";

fn config() -> ActivityConfig {
    ActivityConfig::new()
        .with_erasure_key(KEY)
        .with_user_scopes(["User"])
}

fn signing() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap() + Duration::minutes(minute)
}

/// 30 entries of organization `acme` by alice and bob (with address and browser), some about
/// the user alice herself; three of team `5`; two of no tenant.
async fn seed(t: &TestDb) -> Vec<ActivityEntry> {
    let mut written = Vec::new();
    for i in 0..35i64 {
        let mut e = if i % 7 == 3 {
            ActivityEntry::new("User", "updated")
                .with_item_id("alice")
                .with_name("Alice Liddell")
        } else {
            ActivityEntry::new("FeatureFlag", "updated")
                .with_item_id(format!("flag-{i}"))
                .with_name(format!("flag {i}"))
        }
        .forced();
        e.detail.changes.push(Change::new(
            "FeatureFlag",
            ChangeAction::Changed,
            Some("enabled"),
            serde_json::json!(i % 2 == 0),
            serde_json::json!(i % 2 == 1),
        ));
        if i % 7 == 3 {
            e.detail.changes.push(Change::new(
                "User",
                ChangeAction::Changed,
                Some("display_name"),
                serde_json::json!("Alice Liddell"),
                serde_json::json!("Alice L."),
            ));
        }
        e.created_at = at(i);
        match i {
            30..=32 => e.team_id = Some("5".into()),
            33.. => {}
            _ => e.organization_id = Some("acme".into()),
        }
        let (user, name) = if i % 3 == 0 {
            ("bob", "Bob")
        } else {
            ("alice", "Alice Liddell")
        };
        e.user_id = Some(user.into());
        e.user_name = Some(name.into());
        e.is_system = false;
        e.ip_address = Some(format!("10.1.0.{i}"));
        e.user_agent = Some(format!("Browser/{i}"));
        written.push(e.clone());
        log_activity(&t.db, e).await.unwrap();
    }
    written
}

/// Every tenant's problems, by `verify` one tenant at a time; `seal::verify_all` (one read in
/// time order) must report exactly the same.
async fn verify_all(t: &TestDb, key: &VerifyingKey) -> Vec<Problem> {
    let (mut problems, mut blocks, mut entries) = (Vec::new(), 0, 0);
    for tenant in ["", ACME, "t:5"] {
        let report = verify(&t.db, tenant, .., key).await.unwrap();
        problems.extend(report.problems);
        (blocks, entries) = (blocks + report.blocks, entries + report.entries);
    }
    let all = seal::verify_all(&t.db, .., key, &[]).await.unwrap();
    assert_eq!(all.problems, problems, "verify_all and verify disagree");
    assert_eq!((all.blocks, all.entries), (blocks, entries));
    problems
}

/// The export of `tenant` and its checkpoints, checked offline.
async fn offline(t: &TestDb, tenant: &str, key: &VerifyingKey) -> Vec<Problem> {
    let (mut entries, mut checkpoints) = (Vec::new(), Vec::new());
    export_sealed(&t.db, tenant, .., &mut entries, &mut checkpoints)
        .await
        .unwrap();
    offline_lines(&entries, &checkpoints, key)
}

fn offline_lines(entries: &[u8], checkpoints: &[u8], key: &VerifyingKey) -> Vec<Problem> {
    let entries = String::from_utf8(entries.to_vec()).unwrap();
    let checkpoints = String::from_utf8(checkpoints.to_vec()).unwrap();
    let entries = entries
        .lines()
        .map(|l| activity_seaorm::ops::seal::parse_json(l).unwrap())
        .collect::<Vec<serde_json::Value>>();
    let checkpoints = checkpoints
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect::<Vec<Checkpoint>>();
    verify_export(entries, &checkpoints, key).unwrap().problems
}

fn is_mismatch(problems: &[Problem], tenant: &str) -> bool {
    problems
        .iter()
        .any(|p| matches!(p, Problem::Mismatch { tenant: t, .. } if t == tenant))
}

async fn sealed(t: &TestDb) -> (Vec<ActivityEntry>, Vec<Checkpoint>) {
    let written = seed(t).await;
    let sealer = Sealer::new(signing())
        .with_grace(std::time::Duration::ZERO)
        .with_block_size(8);
    let report = sealer.seal(&t.db).await.unwrap();
    assert_eq!(report.entries, 35);
    // acme: 30 entries in blocks of 8 (8, 8, 8, 6); team 5: 3; no tenant: 2.
    let mut per_tenant = std::collections::BTreeMap::<String, Vec<u64>>::new();
    for cp in &report.checkpoints {
        per_tenant
            .entry(cp.header.tenant.clone())
            .or_default()
            .push(cp.header.entries);
    }
    assert_eq!(per_tenant[ACME], [8, 8, 8, 6]);
    assert_eq!(per_tenant["t:5"], [3]);
    assert_eq!(per_tenant[""], [2]);
    // A second round finds nothing new.
    let again = sealer.seal(&t.db).await.unwrap();
    assert!(again.checkpoints.is_empty(), "{again:?}");
    (written, report.checkpoints)
}

async fn a_sealed_log_verifies_and_proves_each_entry(t: &TestDb) {
    config()
        .scope(async {
            let (written, _) = sealed(t).await;
            let key = signing().verifying_key();
            assert_eq!(verify_all(t, &key).await, []);
            let report = verify(&t.db, ACME, .., &key).await.unwrap();
            assert_eq!((report.blocks, report.entries), (4, 30));
            for tenant in [ACME, "t:5", ""] {
                assert_eq!(offline(t, tenant, &key).await, [], "{tenant}");
            }
            // Every entry has a proof under 1 KiB that checks with the public key alone, and
            // the canonical entry it proves names nobody.
            let mut largest = 0;
            for e in &written {
                let proven = prove(&t.db, e.id).await.unwrap().expect("sealed");
                proven.proof.verify(&proven.entry, &key).unwrap();
                largest = largest.max(proven.proof.encoded_len());
                let text = proven.entry.to_string();
                for personal in ["alice", "Alice", "bob", "Bob", "10.1.0.", "Browser/"] {
                    assert!(!text.contains(personal), "{personal} in {text}");
                }
                let mut forged = proven.entry.clone();
                forged["activity"] = "deleted".into();
                assert!(proven.proof.verify(&forged, &key).is_err());
                let other = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
                assert!(proven.proof.verify(&proven.entry, &other).is_err());
            }
            assert!(largest <= 1024, "largest proof {largest} bytes");
            assert!(prove(&t.db, uuid::Uuid::now_v7()).await.unwrap().is_none());
        })
        .await;
}

async fn erasure_keeps_every_block_valid(t: &TestDb) {
    config()
        .scope(async {
            let (written, trusted) = sealed(t).await;
            let key = signing().verifying_key();
            let before = prove(&t.db, written[3].id).await.unwrap().unwrap();
            let n = anonymize_user(&t.db, "alice").await.unwrap();
            assert!(n > 10, "{n}");
            let dump = t.dump().await;
            for personal in ["alice", "Alice Liddell", "10.1.0.1\"", "Browser/1\""] {
                assert!(!dump.contains(personal), "{personal} left: {dump}");
            }
            intact_everywhere(t, &key, &trusted).await;
            // The proof made before the erasure still holds, for the same canonical entry.
            let after = prove(&t.db, written[3].id).await.unwrap().unwrap();
            assert_eq!(after.entry, before.entry);
            before.proof.verify(&after.entry, &key).unwrap();
            // The erasure's own record is sealed by the next round like any entry.
            seal_round_then_verify(t, &key).await;
            // The whole erasure of another user (rows, archives, copies), as an application
            // calls it: still intact, with its record sealed too.
            let report = activity_seaorm::ops::lifecycle::Lifecycle::new()
                .erase_user(&t.db, "bob")
                .await
                .unwrap();
            assert!(report.entry_ids.len() >= 10, "{}", report.entry_ids.len());
            assert!(!t.dump().await.contains("\"bob\""));
            assert_eq!(verify_all(t, &key).await, []);
            seal_round_then_verify(t, &key).await;
        })
        .await;
}

/// Rows written in the full stored form (as earlier versions wrote them) and sealed, then
/// converted by `schema::compact_details`: every block still verifies, online and offline,
/// proofs made before hold for the same canonical entries, the entries read back unchanged,
/// an erasure afterwards keeps it so, and an alteration of a converted row is still caught.
async fn sealed_rows_converted_to_the_compact_form_stay_intact(t: &TestDb) {
    config()
        .with_compact_detail(false)
        .scope(async {
            let (written, trusted) = sealed(t).await;
            let key = signing().verifying_key();
            let before = prove(&t.db, written[3].id).await.unwrap().unwrap();
            assert!(t.dump().await.contains("short_id"));
            let n = activity_seaorm::schema::compact_details(&t.db)
                .await
                .unwrap();
            assert_eq!(n, 35);
            assert!(!t.dump().await.contains("short_id"));
            intact_everywhere(t, &key, &trusted).await;
            let after = prove(&t.db, written[3].id).await.unwrap().unwrap();
            assert_eq!(after.entry, before.entry);
            before.proof.verify(&after.entry, &key).unwrap();
            for e in &written {
                let row = activity_log::Entity::find_by_id(e.id)
                    .one(&t.db)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(ActivityEntry::from(row).detail, e.detail);
            }
            // Erasure over converted rows, then a round: intact.
            anonymize_user(&t.db, "alice").await.unwrap();
            seal_round_then_verify(t, &key).await;
            // A converted row altered: caught.
            let row = activity_log::Entity::find_by_id(written[1].id)
                .one(&t.db)
                .await
                .unwrap()
                .unwrap();
            let mut altered = row.clone().into_active_model();
            let mut detail = row.detail.clone();
            detail["changes"][0]["after"] = serde_json::json!(false);
            altered.detail = Set(detail);
            altered.update(&t.db).await.unwrap();
            assert!(is_mismatch(&verify_all(t, &key).await, ACME));
        })
        .await;
}

/// The whole log verifies, each tenant against the trusted checkpoints too, and offline.
async fn intact_everywhere(t: &TestDb, key: &VerifyingKey, trusted: &[Checkpoint]) {
    assert_eq!(verify_all(t, key).await, []);
    for tenant in [ACME, "t:5", ""] {
        let report = verify_trusting(&t.db, tenant, .., key, trusted)
            .await
            .unwrap();
        assert_eq!(report.problems, [], "{tenant}");
        assert_eq!(offline(t, tenant, key).await, [], "{tenant}");
    }
}

/// One more sealing round (no grace), after which the whole log verifies.
async fn seal_round_then_verify(t: &TestDb, key: &VerifyingKey) {
    Sealer::new(signing())
        .with_grace(std::time::Duration::ZERO)
        .seal(&t.db)
        .await
        .unwrap();
    assert_eq!(verify_all(t, key).await, []);
}

async fn every_tampering_is_detected(t: &TestDb) {
    config()
        .scope(async {
            let (written, trusted) = sealed(t).await;
            let key = signing().verifying_key();
            let row = |id| async move {
                activity_log::Entity::find_by_id(id)
                    .one(&t.db)
                    .await
                    .unwrap()
                    .unwrap()
            };

            // Altering one value (the browser of an entry, before any erasure).
            let victim = row(written[5].id).await;
            let mut am = victim.clone().into_active_model();
            am.user_agent = Set(Some("Browser/evil".into()));
            am.update(&t.db).await.unwrap();
            let problems = verify_all(t, &key).await;
            assert!(is_mismatch(&problems, ACME), "{problems:?}");
            assert!(is_mismatch(&offline(t, ACME, &key).await, ACME));
            let mut am = victim.clone().into_active_model();
            am.user_agent = Set(victim.user_agent.clone());
            am.update(&t.db).await.unwrap();
            assert_eq!(verify_all(t, &key).await, [], "restored");

            // Every other personal field, and a key added to the stored detail (which the
            // library's own readers would not even show).
            let victim = row(written[3].id).await;
            let mut extra = victim.detail.clone();
            extra["approved_by"] = "mallory".into();
            for alter in 0..4 {
                let mut am = victim.clone().into_active_model();
                match alter {
                    0 => am.user_name = Set(Some("Mallory".into())),
                    1 => am.ip_address = Set(Some("10.9.9.9".into())),
                    2 => am.item_id = Set(Some("mallory".into())),
                    _ => am.detail = Set(extra.clone()),
                }
                am.update(&t.db).await.unwrap();
                let problems = verify_all(t, &key).await;
                assert!(is_mismatch(&problems, ACME), "{alter}: {problems:?}");
                assert!(is_mismatch(&offline(t, ACME, &key).await, ACME), "{alter}");
                victim
                    .clone()
                    .into_active_model()
                    .reset_all()
                    .update(&t.db)
                    .await
                    .unwrap();
                assert_eq!(verify_all(t, &key).await, [], "restored {alter}");
            }

            // Deleting one entry.
            let gone = row(written[12].id).await;
            activity_log::Entity::delete_by_id(gone.id)
                .exec(&t.db)
                .await
                .unwrap();
            let problems = verify_all(t, &key).await;
            assert!(
                problems.contains(&Problem::Mismatch {
                    tenant: ACME.into(),
                    seq: 2,
                    sealed: 8,
                    found: 7
                }),
                "{problems:?}"
            );
            assert!(is_mismatch(&offline(t, ACME, &key).await, ACME));
            activity_log::Entity::insert(gone.clone().into_active_model())
                .exec_without_returning(&t.db)
                .await
                .unwrap();
            assert_eq!(verify_all(t, &key).await, [], "restored");

            // A forged entry inside a sealed window, and one after the last block of its
            // tenant but before the horizon.
            let mut forged = row(written[20].id).await;
            forged.id = uuid::Uuid::now_v7();
            forged.created_at = at(20) + Duration::seconds(1);
            activity_log::Entity::insert(forged.clone().into_active_model())
                .exec_without_returning(&t.db)
                .await
                .unwrap();
            let problems = verify_all(t, &key).await;
            assert!(is_mismatch(&problems, ACME), "{problems:?}");
            activity_log::Entity::delete_by_id(forged.id)
                .exec(&t.db)
                .await
                .unwrap();
            let mut late = row(written[31].id).await;
            late.id = uuid::Uuid::now_v7();
            late.created_at = at(32) + Duration::seconds(30);
            activity_log::Entity::insert(late.clone().into_active_model())
                .exec_without_returning(&t.db)
                .await
                .unwrap();
            let problems = verify(&t.db, "t:5", .., &key).await.unwrap().problems;
            assert_eq!(
                problems,
                [Problem::Unsealed {
                    tenant: "t:5".into(),
                    id: late.id,
                    created_at: late.created_at
                }]
            );
            activity_log::Entity::delete_by_id(late.id)
                .exec(&t.db)
                .await
                .unwrap();
            assert_eq!(verify_all(t, &key).await, [], "restored");

            // Recomputing every stored hash without the signing key: alter an entry, then
            // re-seal the whole history with another key (blocks, roots, chain all
            // consistent).
            let victim = row(written[1].id).await;
            let mut am = victim.clone().into_active_model();
            am.activity = Set("deleted".into());
            am.update(&t.db).await.unwrap();
            let saved = seal_rows(t).await;
            activity_seaorm::schema::seal::activity_block::Entity::delete_many()
                .exec(&t.db)
                .await
                .unwrap();
            Sealer::new(SigningKey::from_bytes(&[9u8; 32]))
                .with_grace(std::time::Duration::ZERO)
                .with_block_size(8)
                .seal(&t.db)
                .await
                .unwrap();
            let problems = verify_all(t, &key).await;
            assert!(
                problems
                    .iter()
                    .any(|p| matches!(p, Problem::BadSignature { .. })),
                "{problems:?}"
            );
            assert!(
                offline(t, ACME, &key)
                    .await
                    .iter()
                    .any(|p| matches!(p, Problem::BadSignature { .. }))
            );
            restore_seal_rows(t, saved).await;
            let mut am = victim.clone().into_active_model();
            am.activity = Set(victim.activity.clone());
            am.update(&t.db).await.unwrap();
            assert_eq!(verify_all(t, &key).await, [], "restored");

            // Deleting the newest entries: seen by their block; deleting their block too is
            // seen against a checkpoint kept outside the database.
            let newest: Vec<_> = written[24..30].iter().map(|e| e.id).collect();
            activity_log::Entity::delete_many()
                .filter(activity_log::Column::Id.is_in(newest.clone()))
                .exec(&t.db)
                .await
                .unwrap();
            let problems = verify(&t.db, ACME, .., &key).await.unwrap().problems;
            assert!(
                problems.contains(&Problem::Mismatch {
                    tenant: ACME.into(),
                    seq: 4,
                    sealed: 6,
                    found: 0
                }),
                "{problems:?}"
            );
            activity_seaorm::schema::seal::activity_block::Entity::delete_many()
                .filter(activity_seaorm::schema::seal::activity_block::Column::Tenant.eq(ACME))
                .filter(activity_seaorm::schema::seal::activity_block::Column::Seq.eq(4))
                .exec(&t.db)
                .await
                .unwrap();
            let report = verify_trusting(&t.db, ACME, .., &key, &trusted)
                .await
                .unwrap();
            assert_eq!(
                report.problems,
                [Problem::Truncated {
                    tenant: ACME.into(),
                    seq: 4
                }]
            );
            // A whole tenant's entries and blocks deleted: only the kept checkpoints know it
            // existed, and `verify_all` reports each of them.
            activity_log::Entity::delete_many()
                .filter(activity_log::Column::TeamId.eq("5"))
                .exec(&t.db)
                .await
                .unwrap();
            activity_seaorm::schema::seal::activity_block::Entity::delete_many()
                .filter(activity_seaorm::schema::seal::activity_block::Column::Tenant.eq("t:5"))
                .exec(&t.db)
                .await
                .unwrap();
            let all = seal::verify_all(&t.db, .., &key, &trusted).await.unwrap();
            assert_eq!(
                all.problems,
                [
                    Problem::Truncated {
                        tenant: ACME.into(),
                        seq: 4
                    },
                    Problem::Truncated {
                        tenant: "t:5".into(),
                        seq: 1
                    }
                ]
            );
            // Offline: the trusted checkpoints say what the export must hold.
            let (mut entries, mut ignored) = (Vec::new(), Vec::new());
            export_sealed(&t.db, ACME, .., &mut entries, &mut ignored)
                .await
                .unwrap();
            let mut kept = Vec::new();
            for cp in trusted.iter().filter(|c| c.header.tenant == ACME) {
                serde_json::to_writer(&mut kept, cp).unwrap();
                kept.push(b'\n');
            }
            let problems = offline_lines(&entries, &kept, &key);
            assert!(
                problems.contains(&Problem::Mismatch {
                    tenant: ACME.into(),
                    seq: 4,
                    sealed: 6,
                    found: 0
                }),
                "{problems:?}"
            );
        })
        .await;
}

async fn seal_rows(t: &TestDb) -> Vec<seal_row::Model> {
    seal_row::Entity::find().all(&t.db).await.unwrap()
}

async fn restore_seal_rows(t: &TestDb, rows: Vec<seal_row::Model>) {
    seal_row::Entity::delete_many().exec(&t.db).await.unwrap();
    for row in rows {
        seal_row::Entity::insert(row.into_active_model())
            .exec_without_returning(&t.db)
            .await
            .unwrap();
    }
}

use activity_seaorm::schema::seal::activity_block as seal_row;

/// Tenants and checkpoints read back as stored, with the sealer's index in place.
async fn tenants_are_listed(t: &TestDb) {
    // The index a sealer follows new entries by: created without blocking, idempotent.
    activity_seaorm::schema::create_seal_index(&t.db)
        .await
        .unwrap();
    activity_seaorm::schema::create_seal_index(&t.db)
        .await
        .unwrap();
    config()
        .scope(async {
            sealed(t).await;
            assert_eq!(seal::tenants(&t.db).await.unwrap(), ["", "o:acme", "t:5"]);
            assert_eq!(seal::checkpoints(&t.db, ACME).await.unwrap().len(), 4);
        })
        .await;
    if t.db.get_database_backend() == sea_orm::DbBackend::Postgres {
        // ~3 MB of entries: page ranges (1 MB each) the BRIN index has not summarized, which
        // every query by time would recheck row by row until autovacuum came by.
        t.db.execute_unprepared(
            "INSERT INTO activity_log (id, created_at, organization_id, scope, activity, detail, \
             was_impersonated, is_system) SELECT gen_random_uuid(), \
             now() - interval '1 minute' + g * interval '1 microsecond', 'bulk', 'Bulk', \
             'created', jsonb_build_object('name', repeat('x', 400)), false, false \
             FROM generate_series(1, 6000) g",
        )
        .await
        .unwrap();
        config()
            .scope(async {
                // (Stamped before the last round's horizon: this round seals none of them.)
                Sealer::new(signing())
                    .with_grace(std::time::Duration::ZERO)
                    .seal(&t.db)
                    .await
                    .unwrap();
            })
            .await;
        // The round summarized them first, and the index summarizes itself as ranges fill:
        // nothing is left unsummarized.
        let row =
            t.db.query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) AS brin, \
                 count(*) FILTER (WHERE c.reloptions::text LIKE '%autosummarize=on%') AS auto, \
                 coalesce(sum(brin_summarize_new_values(c.oid)), 0)::bigint AS unsummarized \
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 JOIN pg_am am ON am.oid = c.relam WHERE am.amname = 'brin' AND c.relkind = 'i' \
                 AND (i.indrelid = 'activity_log'::regclass OR i.indrelid IN \
                 (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'activity_log'::regclass))",
            ))
            .await
            .unwrap()
            .unwrap();
        let brin: i64 = row.try_get("", "brin").unwrap();
        let auto: i64 = row.try_get("", "auto").unwrap();
        let unsummarized: i64 = row.try_get("", "unsummarized").unwrap();
        assert!(brin >= 1, "no BRIN index on activity_log");
        assert_eq!((auto, unsummarized), (brin, 0));
    }
    // The newest horizon is read from an index on every round; creating the table again
    // (every start) keeps it and does not fail.
    activity_seaorm::schema::create_table(&t.db).await.unwrap();
    use sea_orm::ConnectionTrait;
    let backend = t.db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT indexdef AS def FROM pg_indexes WHERE schemaname = current_schema() \
             AND indexname = 'activity_block_sealed'"
        }
        sea_orm::DbBackend::MySql => {
            "SELECT COLUMN_NAME AS def FROM information_schema.STATISTICS WHERE \
             TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'activity_block_sealed'"
        }
        _ => "SELECT sql AS def FROM sqlite_master WHERE name = 'activity_block_sealed'",
    };
    let row =
        t.db.query_one_raw(sea_orm::Statement::from_string(backend, sql))
            .await
            .unwrap()
            .expect("index activity_block_sealed");
    let def: String = row.try_get("", "def").unwrap();
    assert!(def.contains("sealed_through"), "{def}");
}

/// An archive names the sealed blocks it ends in — of its own tenant only — and after its
/// entries are gone the rest of the history still verifies from the cutoff on.
async fn archives_carry_their_tenants_checkpoints(t: &TestDb) {
    use activity_seaorm::ActivityQuery;
    use activity_seaorm::ops::archive::{ArchiveOptions, archive_then_prune};
    config()
        .scope(async {
            let (_, stored) = sealed(t).await;
            let dir = tempfile::tempdir().unwrap();
            let opts = ArchiveOptions::new(dir.path(), "team-5");
            let done = archive_then_prune(&t.db, &ActivityQuery::for_team("5"), at(40), &opts)
                .await
                .unwrap();
            assert_eq!(done.manifest.count, 3);
            let team5: Vec<&Checkpoint> =
                stored.iter().filter(|c| c.header.tenant == "t:5").collect();
            assert_eq!(done.manifest.sealed.iter().collect::<Vec<_>>(), team5);
            let key = signing().verifying_key();
            // Its entries are gone: the whole range shows it, the range after the cutoff not.
            assert!(is_mismatch(
                &verify(&t.db, "t:5", .., &key).await.unwrap().problems,
                "t:5"
            ));
            assert_eq!(
                verify(&t.db, "t:5", at(40).., &key).await.unwrap().problems,
                []
            );
            assert_eq!(verify(&t.db, ACME, .., &key).await.unwrap().problems, []);
        })
        .await;
}

/// What archives hold is checked against the chain after their rows are gone: intact with the
/// database's rows beside them (the block straddling the cutoff included) and after an erasure
/// rewrote them; each tampering — a line altered, removed or forged with the manifest made to
/// match, the oldest lines removed, an archive left out, a forged row before the cutoff, the
/// block a manifest ends in deleted — is reported as such.
async fn archived_history_verifies_against_the_chain(t: &TestDb) {
    use activity_seaorm::ActivityQuery;
    use activity_seaorm::ops::archive::{ArchiveCodec, ArchiveOptions, archive_then_prune};
    config()
        .scope(async {
            let (written, _) = sealed(t).await;
            let key = signing().verifying_key();
            let dir = tempfile::tempdir().unwrap();
            // Two archives: acme's entries 0–4, then 5–11 (zstd). acme's block 1 holds
            // entries 0–7, its block 2 entries 8–15.
            let oldest = ArchiveOptions::new(dir.path(), "oldest");
            let done = archive_then_prune(&t.db, &ActivityQuery::unscoped(), at(5), &oldest)
                .await
                .unwrap();
            assert_eq!(done.manifest.count, 5);
            let early = ArchiveOptions::new(dir.path(), "early").codec(ArchiveCodec::Zstd);
            let done = archive_then_prune(&t.db, &ActivityQuery::unscoped(), at(12), &early)
                .await
                .unwrap();
            assert_eq!((done.manifest.count, done.deleted), (7, 7));
            let both = [oldest.manifest_path(), early.manifest_path()];
            let check = || async {
                activity_seaorm::ops::archive::verify_sealed(&t.db, &both, .., &key, &[])
                    .await
                    .unwrap()
            };
            // Blocks starting before the cutoff: acme 1 and 2, and the first (only) block of
            // team 5 and of no tenant; 16 + 3 + 2 entries.
            let report = check().await;
            assert_eq!(report.problems, [], "archives + database");
            assert_eq!((report.blocks, report.entries), (4, 21));
            // The rest, from the cutoff on, is `verify_all`'s.
            let rest = seal::verify_all(&t.db, at(12).., &key, &[]).await.unwrap();
            assert_eq!((rest.problems.len(), rest.blocks), (0, 2));
            // Without the archives acme's first blocks have lost entries; without the older
            // archive its block 1 has.
            assert!(is_mismatch(&verify_all_problems(t, &key).await, ACME));
            let problems = activity_seaorm::ops::archive::verify_sealed(
                &t.db,
                &[early.manifest_path()],
                ..,
                &key,
                &[],
            )
            .await
            .unwrap()
            .problems;
            assert_eq!(problems, [mismatch(1, 8, 3)]);

            // An erasure rewrites the archives with the pseudonyms the blocks were sealed with.
            let erased = activity_seaorm::ops::lifecycle::Lifecycle::new()
                .with_archives(dir.path())
                .erase_user(&t.db, "alice")
                .await
                .unwrap();
            assert!(erased.is_complete(), "{erased:?}");
            let text = std::fs::read_to_string(oldest.data_path()).unwrap();
            assert!(!text.contains("\"alice\"") && !text.contains("Alice Liddell"));
            assert_eq!(check().await.problems, [], "after the erasure");

            // Each tampering of the plain archive (entries 0–4), its manifest made to match the
            // file (a careful forger).
            let (data, manifest) = (oldest.data_path(), oldest.manifest_path());
            let original = std::fs::read_to_string(&data).unwrap();
            let original_manifest = std::fs::read_to_string(&manifest).unwrap();
            let lines: Vec<String> = original.lines().map(str::to_owned).collect();
            let mut altered = lines.clone();
            altered[2] = altered[2].replace("\"updated\"", "\"deleted\"");
            assert_ne!(altered, lines);
            let mut removed = lines.clone();
            removed.remove(3);
            let oldest_removed = lines[2..].to_vec();
            let mut forged = lines.clone();
            let mut extra: serde_json::Value = serde_json::from_str(&lines[3]).unwrap();
            extra["id"] = uuid::Uuid::now_v7().to_string().into();
            forged.insert(4, extra.to_string());
            let mut added_key = lines.clone();
            let mut with_key: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
            with_key["detail"]["note"] = "added".into();
            added_key[1] = with_key.to_string();
            for (what, lines, found) in [
                ("altered", altered, 8),
                ("removed", removed, 7),
                ("the oldest removed", oldest_removed, 6),
                ("forged", forged, 9),
                ("a detail key added", added_key, 8),
            ] {
                rewrite_archive(&manifest, &data, &lines);
                assert_eq!(check().await.problems, [mismatch(1, 8, found)], "{what}");
                std::fs::write(&data, &original).unwrap();
                std::fs::write(&manifest, &original_manifest).unwrap();
            }
            // Altered without a new manifest: the archive itself is refused.
            std::fs::write(&data, original.replace("\"updated\"", "\"deleted\"")).unwrap();
            let refused = activity_seaorm::ops::archive::verify_sealed(&t.db, &both, .., &key, &[])
                .await
                .unwrap_err();
            assert!(refused.to_string().contains("checksum"), "{refused}");
            std::fs::write(&data, &original).unwrap();
            assert_eq!(check().await.problems, []);

            // An archived entry still in the database (archived, not yet pruned) counts once;
            // if the two copies differ, both count.
            log_activity(&t.db, written[0].clone()).await.unwrap();
            assert_eq!(check().await.problems, [], "the same entry in both");
            let mut row = activity_log::Entity::find_by_id(written[0].id)
                .one(&t.db)
                .await
                .unwrap()
                .unwrap()
                .into_active_model();
            row.activity = Set("deleted".into());
            row.update(&t.db).await.unwrap();
            assert_eq!(check().await.problems, [mismatch(1, 8, 9)]);
            activity_log::Entity::delete_by_id(written[0].id)
                .exec(&t.db)
                .await
                .unwrap();

            // A row forged before the cutoff, of a tenant no block covers.
            let mut forged = ActivityEntry::new("Invoice", "paid").forced();
            forged.organization_id = Some("newco".into());
            forged.created_at = at(3);
            let forged_id = forged.id;
            log_activity(&t.db, forged).await.unwrap();
            assert_eq!(
                check().await.problems,
                [Problem::Unsealed {
                    tenant: "o:newco".into(),
                    id: forged_id,
                    created_at: at(3)
                }]
            );
            activity_log::Entity::delete_by_id(forged_id)
                .exec(&t.db)
                .await
                .unwrap();

            // The block the manifests end in deleted from the database: truncated there.
            seal_row::Entity::delete_many()
                .filter(seal_row::Column::Tenant.eq(ACME))
                .filter(seal_row::Column::Seq.eq(1))
                .exec(&t.db)
                .await
                .unwrap();
            let problems = check().await.problems;
            assert!(
                problems.contains(&Problem::Truncated {
                    tenant: ACME.into(),
                    seq: 1
                }),
                "{problems:?}"
            );
        })
        .await;
}

/// acme's block `seq` of `sealed` entries found with `found`.
fn mismatch(seq: u64, sealed: u64, found: u64) -> Problem {
    Problem::Mismatch {
        tenant: ACME.into(),
        seq,
        sealed,
        found,
    }
}

/// Every tenant's problems by `verify_all`.
async fn verify_all_problems(t: &TestDb, key: &VerifyingKey) -> Vec<Problem> {
    seal::verify_all(&t.db, .., key, &[])
        .await
        .unwrap()
        .problems
}

/// Replace an archive's data with `lines` and make its manifest match (count, checksum, time
/// range).
fn rewrite_archive(manifest: &std::path::Path, data: &std::path::Path, lines: &[String]) {
    use sha2::Digest;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(data, &text).unwrap();
    let times: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["created_at"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    m["sha256"] = hex::encode(sha2::Sha256::digest(text.as_bytes())).into();
    m["bytes"] = text.len().into();
    m["count"] = lines.len().into();
    m["first_created_at"] = times.iter().min().cloned().into();
    m["last_created_at"] = times.iter().max().cloned().into();
    std::fs::write(manifest, m.to_string()).unwrap();
}

/// A job's transaction stays open across a sealing round (with no grace): the round seals
/// nothing stamped after that transaction began, so once the job commits, the next round
/// seals its entries and every block verifies. Before, the round sealed the entries around
/// the job's, and its entries, committed afterwards inside that block's window, were reported
/// as an alteration of an honest log.
async fn a_long_transaction_is_sealed_after_it_commits(t: &TestDb) {
    use sea_orm::TransactionTrait;
    config()
        .scope(async {
            let entry = |activity: &str, ago: i64| {
                let mut e = ActivityEntry::new("Job", activity).forced();
                e.organization_id = Some("acme".into());
                e.created_at = Utc::now() - Duration::seconds(ago);
                e
            };
            log_activity(&t.db, entry("before", 5)).await.unwrap();
            let job = t.another_pool(2).await;
            let txn = job.begin().await.unwrap();
            log_activity(&txn, entry("job", 0)).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            log_activity(&t.db, entry("after", 0)).await.unwrap();
            // InnoDB serves `innodb_trx` from a cache it refreshes at most every 0.1 s, and
            // other tests' rounds read it meanwhile: with no grace, wait that long (a real
            // sealer's grace is far longer).
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;

            let sealer = Sealer::new(signing()).with_grace(std::time::Duration::ZERO);
            let round = sealer.seal(&t.db).await.unwrap();
            assert_eq!(
                round.entries, 1,
                "only what was stamped before the job began"
            );
            txn.commit().await.unwrap();
            // InnoDB refreshes `innodb_trx` at most every 0.1 s.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let round = sealer.seal(&t.db).await.unwrap();
            assert_eq!(round.entries, 2, "the job's entry and the one after it");
            let v = verify(&t.db, ACME, .., &sealer.verifying_key())
                .await
                .unwrap();
            assert!(v.problems.is_empty(), "{:?}", v.problems);
            assert_eq!(v.entries, 3);
        })
        .await;
}

activity_tests::tests_on!(open_transactions: a_long_transaction_is_sealed_after_it_commits on postgres, mysql);

/// Checking a block needs the erasure key it was sealed under: under another one every
/// pseudonym differs, which is reported as the key change, never as tampering; a proof or an
/// export (which would not match the block) is refused.
async fn another_erasure_key_is_reported_as_such(t: &TestDb) {
    let (written, _) = config().scope(sealed(t)).await;
    let key = signing().verifying_key();
    let rotated = ActivityConfig::new()
        .with_erasure_key(b"another erasure key, 32 bytes ok")
        .with_user_scopes(["User"]);
    rotated
        .scope(async {
            let report = seal::verify_all(&t.db, .., &key, &[]).await.unwrap();
            assert_eq!((report.blocks, report.entries), (6, 35));
            let mut blocks: Vec<(String, u64)> = report
                .problems
                .iter()
                .map(|p| match p {
                    Problem::ErasureKeyChanged { tenant, seq } => (tenant.clone(), *seq),
                    other => panic!("not a key change: {other:?}"),
                })
                .collect();
            blocks.sort();
            let expected: Vec<(String, u64)> = [
                ("", 1),
                (ACME, 1),
                (ACME, 2),
                (ACME, 3),
                (ACME, 4),
                ("t:5", 1),
            ]
            .iter()
            .map(|(t, s)| (t.to_string(), *s))
            .collect();
            assert_eq!(blocks, expected);
            assert_eq!(
                verify(&t.db, ACME, .., &key).await.unwrap().problems.len(),
                4
            );
            let refused = prove(&t.db, written[0].id).await.unwrap_err().to_string();
            assert!(refused.contains("another erasure key"), "{refused}");
            let (mut entries, mut checkpoints) = (Vec::new(), Vec::new());
            let refused = export_sealed(&t.db, ACME, .., &mut entries, &mut checkpoints)
                .await
                .unwrap_err();
            assert!(refused.to_string().contains("another erasure key"));
        })
        .await;
    // Under the key it was sealed with, all is intact.
    config()
        .scope(async { assert_eq!(verify_all(t, &key).await, []) })
        .await;
}

/// A scope added to the user scopes after its entries were sealed, then a person of it erased:
/// the block can no longer be checked, which is reported as such (by `verify`, `verify_all`
/// and offline), never as an alteration; blocks without such an entry still verify.
async fn a_user_scope_added_after_sealing_is_reported_as_such(t: &TestDb) {
    let write = |scope: &str, item: &str, minute: i64| {
        let mut e = ActivityEntry::new(scope, "updated")
            .with_item_id(item)
            .with_name("Carol")
            .forced();
        e.organization_id = Some("acme".into());
        e.created_at = at(minute);
        e
    };
    let key = signing().verifying_key();
    config()
        .scope(async {
            log_activity(&t.db, write("Member", "carol", 0))
                .await
                .unwrap();
            log_activity(&t.db, write("Project", "p1", 1))
                .await
                .unwrap();
            log_activity(&t.db, write("Project", "p2", 2))
                .await
                .unwrap();
            Sealer::new(signing())
                .with_grace(std::time::Duration::ZERO)
                .with_block_size(2)
                .seal(&t.db)
                .await
                .unwrap();
            assert_eq!(verify_all(t, &key).await, []);
        })
        .await;
    let later = ActivityConfig::new()
        .with_erasure_key(KEY)
        .with_user_scopes(["User", "Member"]);
    later
        .scope(async {
            anonymize_user(&t.db, "carol").await.unwrap();
            assert!(!t.dump().await.contains("carol"));
            let expected = [Problem::UserScopeAdded {
                tenant: ACME.into(),
                seq: 1,
                scope: "Member".into(),
            }];
            assert_eq!(verify_all(t, &key).await, expected);
            assert_eq!(offline(t, ACME, &key).await, expected);
            // Where `Member` is not a user scope now, no erasure under it explains the
            // pseudonym: an alteration.
            config()
                .scope(async {
                    let problems = verify_all(t, &key).await;
                    assert!(is_mismatch(&problems, ACME), "{problems:?}");
                })
                .await;
            // It covers that block only: an alteration of the next one is still a mismatch.
            let p2 = activity_log::Entity::find()
                .filter(activity_log::Column::ItemId.eq("p2"))
                .one(&t.db)
                .await
                .unwrap()
                .unwrap();
            let mut altered = p2.clone().into_active_model();
            altered.activity = Set("deleted".into());
            altered.update(&t.db).await.unwrap();
            let next = Problem::Mismatch {
                tenant: ACME.into(),
                seq: 2,
                sealed: 1,
                found: 1,
            };
            assert_eq!(
                verify_all(t, &key).await,
                [expected[0].clone(), next.clone()]
            );
            assert_eq!(offline(t, ACME, &key).await, [expected[0].clone(), next]);
            p2.into_active_model()
                .reset_all()
                .update(&t.db)
                .await
                .unwrap();
            // An erasure changes no count: an entry deleted from that block is a mismatch.
            activity_log::Entity::delete_many()
                .filter(activity_log::Column::ItemId.eq("p1"))
                .exec(&t.db)
                .await
                .unwrap();
            let gone = [Problem::Mismatch {
                tenant: ACME.into(),
                seq: 1,
                sealed: 2,
                found: 1,
            }];
            assert_eq!(verify_all(t, &key).await, gone);
            assert_eq!(offline(t, ACME, &key).await, gone);
        })
        .await;
}

/// A stored detail that serde_json's own `Value` parser reads as another value (with its
/// `raw_value` feature, which sqlx turns on, an object whose one key is its private raw-value
/// marker is read as the JSON text in its value — content a JSON column an application logs
/// may hold): sealed as stored and checked as stored, on every backend, for an ordinary item
/// and a person (whose detail is pseudonymized before hashing); replacing it by what that
/// parser reads is an alteration, found by `verify` and offline.
async fn stored_json_is_hashed_as_json_defines_it(t: &TestDb) {
    const MARKER: &str = "$serde_json::private::RawValue";
    config()
        .scope(async {
            let mut written = Vec::new();
            for (i, (scope, item)) in [("Setting", "s-1"), ("User", "alice")].iter().enumerate() {
                let mut e = ActivityEntry::new(*scope, "updated")
                    .with_item_id(*item)
                    .with_name("Alice Liddell")
                    .forced();
                e.created_at = at(i as i64);
                e.organization_id = Some("acme".into());
                e.detail.context = Some(serde_json::json!({ "wrapped": { MARKER: "[1]" } }));
                written.push(e.clone());
                log_activity(&t.db, e).await.unwrap();
            }
            let report = Sealer::new(signing())
                .with_grace(std::time::Duration::ZERO)
                .seal(&t.db)
                .await
                .unwrap();
            assert_eq!(report.entries, 2);
            let key = signing().verifying_key();
            assert_eq!(verify_all(t, &key).await, []);
            assert_eq!(offline(t, ACME, &key).await, []);
            for entry in &written {
                let proven = prove(&t.db, entry.id).await.unwrap().unwrap();
                proven.proof.verify(&proven.entry, &key).unwrap();
                assert_eq!(
                    proven.entry["detail"]["context"]["wrapped"][MARKER],
                    serde_json::json!("[1]")
                );
            }
            for entry in &written {
                let stored = activity_log::Entity::find_by_id(entry.id)
                    .one(&t.db)
                    .await
                    .unwrap()
                    .unwrap();
                // (Read through sqlx, `stored.detail` is already what that parser makes of
                // it: the original is written back from a value built, not parsed.)
                let mut unwrapped = stored.detail.clone();
                unwrapped["context"]["wrapped"] = serde_json::json!([1]);
                let mut original = stored.detail.clone();
                original["context"]["wrapped"] = serde_json::json!({ MARKER: "[1]" });
                let mut am = stored.clone().into_active_model();
                am.detail = Set(unwrapped);
                am.update(&t.db).await.unwrap();
                let problems = verify_all(t, &key).await;
                assert!(
                    is_mismatch(&problems, ACME),
                    "{}: {problems:?}",
                    entry.scope
                );
                assert!(is_mismatch(&offline(t, ACME, &key).await, ACME));
                let mut am = stored.into_active_model();
                am.detail = Set(original);
                am.update(&t.db).await.unwrap();
                assert_eq!(verify_all(t, &key).await, [], "restored");
            }
        })
        .await;
}

backend_tests!(
    stored_json_is_hashed_as_json_defines_it,
    a_user_scope_added_after_sealing_is_reported_as_such,
    another_erasure_key_is_reported_as_such,
    archived_history_verifies_against_the_chain,
    archives_carry_their_tenants_checkpoints,
    a_sealed_log_verifies_and_proves_each_entry,
    erasure_keeps_every_block_valid,
    sealed_rows_converted_to_the_compact_form_stay_intact,
    every_tampering_is_detected,
    tenants_are_listed,
);

/// Checkpoints reach JetStream (a stream of their own), a failed publication is caught up
/// later, and the stream's newest checkpoint is what shows the deletion of the newest entries
/// together with their block.
async fn checkpoints_leave_the_database(t: &TestDb) {
    use activity_nats::seal::Checkpoints;
    let s = activity_tests::nats::TestStream::new("seal").await;
    let cps = Checkpoints::new(s.client.clone()).with_stream(s.stream.clone(), s.prefix.clone());
    cps.ensure_stream().await.unwrap();
    config()
        .scope(async {
            // Sealed while the stream was not being published to.
            let (written, stored) = sealed(t).await;
            assert_eq!(cps.latest(ACME).await.unwrap(), None);
            assert_eq!(cps.catch_up(&t.db).await.unwrap(), stored.len() as u64);
            assert_eq!(cps.catch_up(&t.db).await.unwrap(), 0, "nothing left");
            let newest = cps.latest(ACME).await.unwrap().unwrap();
            assert_eq!(newest.header.seq, 4);
            assert_eq!(
                Some(&newest),
                stored.iter().rfind(|c| c.header.tenant == ACME)
            );
            // More entries, sealed and published by the running loop: it catches up first
            // (nothing new), then publishes each round's checkpoints itself. (Stamped now, and
            // a grace of 100 ms: an entry stamped behind a round's horizon before it committed
            // would be reported unsealed, as a forged one is.)
            let sealer = Sealer::new(signing()).with_grace(std::time::Duration::from_millis(100));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let seq = || async { cps.latest(ACME).await.unwrap().map(|c| c.header.seq) };
            let mut new_ids = Vec::new();
            let writer = async {
                for (i, expect) in [(1, 5), (2, 6)] {
                    let mut e = written[i].clone();
                    e.id = uuid::Uuid::now_v7();
                    e.created_at = Utc::now();
                    new_ids.push(e.id);
                    log_activity(&t.db, e).await.unwrap();
                    for _ in 0..200 {
                        if seq().await == Some(expect) {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    assert_eq!(seq().await, Some(expect), "published by the loop");
                }
                let _ = stop.send(());
            };
            let stop = async {
                let _ = stopped.await;
            };
            tokio::join!(
                cps.run(&t.db, &sealer, std::time::Duration::from_millis(20), stop),
                writer
            );
            let newest = cps.latest(ACME).await.unwrap().unwrap();
            assert_eq!((newest.header.seq, newest.header.entries), (6, 1));
            assert_eq!(
                seal::checkpoints(&t.db, ACME).await.unwrap().last(),
                Some(&newest)
            );
            // The newest entries and their blocks deleted: the database alone cannot tell,
            // the stream's checkpoint does.
            let key = signing().verifying_key();
            activity_log::Entity::delete_many()
                .filter(activity_log::Column::Id.is_in(new_ids.clone()))
                .exec(&t.db)
                .await
                .unwrap();
            seal_row::Entity::delete_many()
                .filter(seal_row::Column::Seq.gte(5))
                .exec(&t.db)
                .await
                .unwrap();
            assert_eq!(verify(&t.db, ACME, .., &key).await.unwrap().problems, []);
            let report = verify_trusting(&t.db, ACME, .., &key, &[newest])
                .await
                .unwrap();
            assert_eq!(
                report.problems,
                [Problem::Truncated {
                    tenant: ACME.into(),
                    seq: 6
                }]
            );
        })
        .await;
    s.delete().await;
}

activity_tests::nats_backend_tests!(db: checkpoints_leave_the_database);
