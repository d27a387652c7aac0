//! Trust II, the read and operations side, on every backend: CSV formula neutralization,
//! maintenance mode that ends with `prune`/`anonymize_user` even on the caller's transaction,
//! query caps (invalid-query errors, never backend errors), numeric detail-path segments, and
//! Unicode case-insensitive search. Erasure has its own file, `erasure.rs`.

use activity_seaorm::{
    ActivityConfig, ActivityEntry, ActivityQuery, activity_log, anonymize_user, export_csv,
    export_jsonl,
};
use activity_tests::{Backend, TestDb, backend_tests};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, TransactionTrait};
use serde_json::json;

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minute)
}

fn entry(minute: i64, item: &str) -> ActivityEntry {
    let mut e = ActivityEntry::new("Doc", "updated")
        .with_item_id(item)
        .forced();
    e.created_at = at(minute);
    e.team_id = Some("t".into());
    e
}

/// Insert rows as they are (no context stamping, no hooks).
async fn insert(t: &TestDb, entries: &[ActivityEntry]) {
    let models: Vec<activity_log::ActiveModel> = entries.iter().cloned().map(Into::into).collect();
    activity_log::Entity::insert_many(models)
        .exec_without_returning(&t.db)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// CSV export neutralizes spreadsheet formulas; JSON lines stay exact.

const FORMULA_STARTS: [&str; 6] = ["=", "+", "-", "@", "\t", "\r"];

async fn csv_neutralizes_formulas(t: &TestDb) {
    let mut seeded = Vec::new();
    for (i, start) in FORMULA_STARTS.iter().enumerate() {
        let payload = format!("{start}HYPERLINK(\"http://evil.example\",\"x{i}\")");
        let mut e = entry(i as i64, &format!("{start}{i}")).with_name(payload.clone());
        e.user_id = Some(format!("{start}u{i}"));
        e.user_name = Some(payload.clone());
        e.is_system = false;
        e.user_agent = Some(format!("{start}cmd|' /C calc'!A0"));
        e.client = Some(format!("{start}client"));
        e.request_id = Some(format!("{start}req"));
        seeded.push(e);
    }
    // A harmless row stays as it is.
    let mut plain = entry(10, "plain").with_name("plain name");
    plain.user_agent = Some("Mozilla/5.0".into());
    seeded.push(plain);
    insert(t, &seeded).await;

    let mut out = Vec::new();
    let n = export_csv(&t.db, &ActivityQuery::for_team("t").ascending(), &mut out)
        .await
        .unwrap();
    assert_eq!(n, 7);
    let mut reader = csv::Reader::from_reader(out.as_slice());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 7);
    let col = |name: &str| {
        activity_seaorm::CSV_COLUMNS
            .iter()
            .position(|c| *c == name)
            .unwrap()
    };
    for (row, e) in rows.iter().zip(&seeded) {
        let expect = |v: &Option<String>| {
            let v = v.clone().unwrap_or_default();
            if FORMULA_STARTS.iter().any(|s| v.starts_with(s)) {
                format!("'{v}")
            } else {
                v
            }
        };
        for (name, value) in [
            ("user_id", &e.user_id),
            ("user_name", &e.user_name),
            ("user_agent", &e.user_agent),
            ("client", &e.client),
            ("request_id", &e.request_id),
            ("item_id", &e.item_id),
        ] {
            assert_eq!(&row[col(name)], expect(value), "{name} of {:?}", e.item_id);
        }
        for cell in row.iter() {
            assert!(
                !FORMULA_STARTS.iter().any(|s| cell.starts_with(s)),
                "a cell starts like a formula: {cell:?}"
            );
        }
        // `detail` is JSON (starts with `{`) and exact.
        let detail: serde_json::Value = serde_json::from_str(&row[col("detail")]).unwrap();
        assert_eq!(detail["name"], json!(e.detail.name));
    }
    // The first six rows really were dangerous, so the check above is not vacuous.
    assert!(
        rows[..6]
            .iter()
            .all(|r| r[col("user_agent")].starts_with('\''))
    );
    assert_eq!(&rows[6][col("user_agent")], "Mozilla/5.0");

    // JSON lines are exact: every entry reads back equal to what was stored.
    let mut out = Vec::new();
    export_jsonl(&t.db, &ActivityQuery::for_team("t").ascending(), &mut out)
        .await
        .unwrap();
    let back: Vec<ActivityEntry> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back.len(), 7);
    for (b, e) in back.iter().zip(&seeded) {
        assert_eq!(b.user_agent, e.user_agent);
        assert_eq!(b.user_name, e.user_name);
        assert_eq!(b.user_id, e.user_id);
        assert_eq!(b.item_id, e.item_id);
        assert_eq!(b.detail.name, e.detail.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Maintenance mode ends with prune/anonymize_user, even on the caller's transaction.

fn refused(result: Result<sea_orm::ExecResult, sea_orm::DbErr>, what: &str) {
    let err = result.expect_err(what);
    assert!(err.to_string().contains("append-only"), "{what}: {err}");
}

async fn maintenance_ends_with_its_work(t: &TestDb) {
    use activity_seaorm::guard;

    let mut old: Vec<ActivityEntry> = (0..4)
        .map(|i| {
            let mut e = entry(i, &format!("{i}"));
            e.user_id = Some("u9".into());
            e.is_system = false;
            e
        })
        .collect();
    old[0].created_at = at(-10_000);
    insert(t, &old).await;
    let keyed = || ActivityConfig::new().with_erasure_key([3u8; 32]);

    if t.backend != Backend::Postgres {
        // The guard is a PostgreSQL recipe: elsewhere it cannot be installed, maintenance is a
        // no-op, and there is nothing to leak. prune/anonymize on a caller's transaction still
        // work and leave it usable.
        assert!(guard::install_append_only(&t.db).await.is_err());
        let txn = t.db.begin().await.unwrap();
        assert_eq!(activity_seaorm::prune(&txn, at(-1), &[]).await.unwrap(), 1);
        let n = ActivityConfig::scope(keyed(), anonymize_user(&txn, "u9", &[]))
            .await
            .unwrap();
        assert_eq!(n, 3);
        txn.execute_unprepared("UPDATE activity_log SET activity = 'x' WHERE 1 = 0")
            .await
            .unwrap();
        txn.commit().await.unwrap();
        return;
    }

    guard::install_append_only(&t.db).await.unwrap();

    // prune on the caller's transaction: its batches pass the guard, the rest of the caller's
    // transaction does not.
    let txn = t.db.begin().await.unwrap();
    assert_eq!(activity_seaorm::prune(&txn, at(-1), &[]).await.unwrap(), 1);
    refused(
        txn.execute_unprepared("UPDATE activity_log SET activity = 'tampered'")
            .await,
        "UPDATE after prune in the same transaction",
    );
    txn.rollback().await.unwrap();
    let txn = t.db.begin().await.unwrap();
    assert_eq!(activity_seaorm::prune(&txn, at(-1), &[]).await.unwrap(), 1);
    refused(
        txn.execute_unprepared("DELETE FROM activity_log").await,
        "DELETE after prune in the same transaction",
    );
    txn.rollback().await.unwrap();

    // The same for anonymize_user.
    for (sql, what) in [
        (
            "UPDATE activity_log SET user_id = 'mallory'",
            "UPDATE after anonymize_user in the same transaction",
        ),
        (
            "DELETE FROM activity_log",
            "DELETE after anonymize_user in the same transaction",
        ),
    ] {
        let txn = t.db.begin().await.unwrap();
        let n = ActivityConfig::scope(keyed(), anonymize_user(&txn, "u9", &[]))
            .await
            .unwrap();
        assert_eq!(n, 4);
        refused(txn.execute_unprepared(sql).await, what);
        txn.rollback().await.unwrap();
    }

    // Failing work ends maintenance too: anonymize without a key fails before it starts;
    // the caller's transaction stays guarded.
    let txn = t.db.begin().await.unwrap();
    assert!(
        ActivityConfig::scope(ActivityConfig::new(), anonymize_user(&txn, "u9", &[]))
            .await
            .is_err()
    );
    refused(
        txn.execute_unprepared("DELETE FROM activity_log").await,
        "DELETE after a failed anonymize_user",
    );
    txn.rollback().await.unwrap();

    // A caller who entered maintenance on purpose keeps it after prune (the setting is
    // restored, not switched off).
    let txn = t.db.begin().await.unwrap();
    guard::enter_maintenance(&txn).await.unwrap();
    assert_eq!(activity_seaorm::prune(&txn, at(-1), &[]).await.unwrap(), 1);
    txn.execute_unprepared("DELETE FROM activity_log WHERE item_id = '3'")
        .await
        .unwrap();
    txn.rollback().await.unwrap();

    // After everything rolled back, the log is as seeded.
    assert_eq!(t.entries().await.len(), 4);
    guard::remove_append_only(&t.db).await.unwrap();
}

backend_tests!(csv_neutralizes_formulas, maintenance_ends_with_its_work);
