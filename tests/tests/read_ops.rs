//! Trust II, the read and operations side, on every backend: CSV formula neutralization,
//! maintenance mode that ends with `prune`/`anonymize_user` even on the caller's transaction,
//! query caps (invalid-query errors, never backend errors), numeric detail-path segments, and
//! Unicode case-insensitive search. Erasure has its own file, `erasure.rs`.

use activity_seaorm::{ActivityEntry, ActivityQuery, activity_log, export_csv, export_jsonl};
use activity_tests::{TestDb, backend_tests};
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::EntityTrait;
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

backend_tests!(csv_neutralizes_formulas);
