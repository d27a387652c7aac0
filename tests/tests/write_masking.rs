//! Masked values (`mask`, `mask_keys`, masked `name`/`short_id`, snapshots) never reach any
//! column of `activity_log` nor any `ActivityRecorded` event, on every backend (a property
//! test over random secrets and write paths).
//!
//! Global settings (failure policy, hooks) are left alone: tests here run in parallel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use activity_seaorm::entry::ChangeAction;
use activity_seaorm::events::subscribe;
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityEntry, transaction};
use activity_tests::models::{feature_flag, vault};
use activity_tests::{Backend, TestDb, create_entity_table};
use activity_tests::{proptest_config as config, proptest_runtime as runtime};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use scoped_futures::ScopedFutureExt;
use sea_orm::{ActiveModelTrait, DbErr, IntoActiveModel, ModelTrait, NotSet, Set};
use serde_json::{Value, json};

/// Every committed event since the collector started (all tests of this binary).
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    fn start() -> (Events, tokio::task::JoinHandle<()>) {
        let events = Events::default();
        let sink = events.clone();
        let mut rx = subscribe();
        let task = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(ev) => {
                        let text = format!(
                            "{:?}\n{}",
                            ev.entry,
                            serde_json::to_string(&*ev.entry).unwrap_or_default()
                        );
                        sink.0.lock().unwrap().push(text);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        sink.0.lock().unwrap().push(format!("LAGGED {n}"));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        (events, task)
    }

    fn find(&self, needle: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.contains(needle) || e.starts_with("LAGGED"))
            .cloned()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Masked values never leak.

/// Printable ASCII or any printable (non-control) unicode, 8–64 characters.
fn secret_tail() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{8,64}", "\\PC{8,64}"]
}

#[derive(Debug, Clone)]
struct Secrets {
    tails: Vec<String>,
    tracked: bool,
    in_transaction: bool,
}

fn secrets() -> impl Strategy<Value = Secrets> {
    (
        prop::collection::vec(secret_tail(), 14),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(tails, tracked, in_transaction)| Secrets {
            tails,
            tracked,
            in_transaction,
        })
}

static CASE: AtomicU64 = AtomicU64::new(0);

/// Write secrets through every masked path, then search the table and the events.
async fn masked_case(t: &TestDb, events: &Events, input: &Secrets) -> Result<(), String> {
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    let unique = uuid::Uuid::now_v7().simple().to_string();
    // The marker starts every secret; the flag's key (its unmasked name) must not contain it.
    let marker = format!("MRK{case:05}Q{}", &unique[24..]);
    let flag_key = format!("flag-{case:05}-{}", &unique[20..24]);
    let s: Vec<String> = input
        .tails
        .iter()
        .enumerate()
        .map(|(i, tail)| format!("{marker}{i:02}{tail}"))
        .collect();
    let db = &t.db;
    let config_before = json!({"token": s[1], "url": s[2], "nested": {"k": s[3]}, "list": [s[4]]});
    let config_after = json!({"token": s[6], "url": s[2], "nested": {"k": s[7]}, "list": [s[4]]});

    let work = async {
        let flag = feature_flag::ActiveModel {
            id: NotSet,
            team_id: Set(5),
            key: Set(flag_key.clone()),
            active: Set(false),
            filters: Set(json!({})),
            webhook_secret: Set(s[0].clone()),
            config: Set(config_before.clone()),
            description: Set(None),
            cached_count: Set(0),
            last_accessed_at: Set(None),
        }
        .insert(db)
        .await?;
        let flag = if input.tracked {
            let mut tracked = track(flag);
            tracked.webhook_secret = Set(s[5].clone());
            tracked.config = Set(config_after.clone());
            tracked.description = Set(Some("plain".into()));
            tracked.update(db).await?
        } else {
            let mut am = flag.into_active_model();
            am.webhook_secret = Set(s[5].clone());
            am.config = Set(config_after.clone());
            am.description = Set(Some("plain".into()));
            am.update(db).await?
        };
        let v = vault::ActiveModel {
            id: NotSet,
            team_id: Set(5),
            label: Set(s[8].clone()),
            token: Set(s[9].clone()),
            creds: Set(json!({"user": s[10], "password": s[11]})),
            note: Set(Some(s[12].clone())),
        }
        .insert(db)
        .await?;
        let mut am = v.into_active_model();
        am.label = Set(s[13].clone());
        am.note = Set(None);
        let v = am.update(db).await?;
        v.delete(db).await?;
        flag.delete(db).await?;
        Ok::<_, DbErr>(())
    };
    let result = if input.in_transaction {
        transaction(db, |txn| {
            let s = s.clone();
            let (flag_key, config_before, config_after) = (
                flag_key.clone(),
                config_before.clone(),
                config_after.clone(),
            );
            async move {
                let flag = feature_flag::ActiveModel {
                    id: NotSet,
                    team_id: Set(5),
                    key: Set(flag_key),
                    active: Set(false),
                    filters: Set(json!({})),
                    webhook_secret: Set(s[0].clone()),
                    config: Set(config_before),
                    description: Set(None),
                    cached_count: Set(0),
                    last_accessed_at: Set(None),
                }
                .insert(txn)
                .await?;
                let mut tracked = track(flag);
                tracked.webhook_secret = Set(s[5].clone());
                tracked.config = Set(config_after);
                tracked.description = Set(Some("plain".into()));
                let flag = tracked.update(txn).await?;
                let v = vault::ActiveModel {
                    id: NotSet,
                    team_id: Set(5),
                    label: Set(s[8].clone()),
                    token: Set(s[9].clone()),
                    creds: Set(json!({"user": s[10], "password": s[11]})),
                    note: Set(Some(s[12].clone())),
                }
                .insert(txn)
                .await?;
                let mut am = v.into_active_model();
                am.label = Set(s[13].clone());
                am.note = Set(None);
                let v = am.update(txn).await?;
                v.delete(txn).await?;
                flag.delete(txn).await?;
                Ok::<_, DbErr>(())
            }
            .scope_boxed()
        })
        .await
    } else {
        work.await
    };
    result.map_err(|e| format!("writing failed: {e}"))?;

    // Exact shapes: the flag's update, the vault's snapshot and masked name/short id.
    let entries = t.entries().await;
    let flag_update = entries
        .iter()
        .find(|e| e.detail.name.as_deref() == Some(flag_key.as_str()) && e.activity == "updated")
        .ok_or("no flag update entry")?;
    let expected = vec![
        Change::new(
            "FeatureFlag",
            ChangeAction::Changed,
            Some("webhook_secret"),
            json!("masked"),
            json!("masked"),
        ),
        Change::new(
            "FeatureFlag",
            ChangeAction::Changed,
            Some("config"),
            json!({"token": "masked", "url": "masked", "nested": "masked", "list": "masked"}),
            json!({"token": "changed", "url": "masked", "nested": "changed", "list": "masked"}),
        ),
        Change::new(
            "FeatureFlag",
            ChangeAction::Created,
            Some("description"),
            Value::Null,
            json!("plain"),
        ),
    ];
    if flag_update.detail.changes != expected {
        return Err(format!(
            "flag update entry: {:#?}",
            flag_update.detail.changes
        ));
    }

    // Nothing anywhere holds a secret: every column of every row, and every event.
    let dump = t.dump().await;
    if let Some(at) = dump.find(&marker) {
        return Err(format!(
            "a secret leaked into activity_log: ...{}...",
            &dump[dump.floor_char_boundary(at.saturating_sub(200))
                ..dump.ceil_char_boundary((at + 200).min(dump.len()))]
        ));
    }
    for e in &entries {
        let text = serde_json::to_string(e).unwrap_or_default();
        for secret in &s {
            if text.contains(&marker) || strings_of(e).iter().any(|v| v.contains(secret.as_str())) {
                return Err(format!("a secret leaked into an entry: {e:?}"));
            }
        }
    }
    if let Some(event) = events.find(&marker) {
        return Err(format!("a secret leaked into an event: {event}"));
    }
    Ok(())
}

/// Every string in an entry: columns, JSON keys and values (unescaped).
fn strings_of(e: &ActivityEntry) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            Value::Object(o) => o.iter().for_each(|(k, v)| {
                out.push(k.clone());
                walk(v, out);
            }),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&serde_json::to_value(e).unwrap_or_default(), &mut out);
    out
}

fn masked_values_never_leak(backend: Backend) {
    let rt = runtime();
    let t = rt.block_on(TestDb::new(backend));
    rt.block_on(create_entity_table(&t.db, vault::Entity));
    let (events, collector) = rt.block_on(async { Events::start() });
    let mut runner = TestRunner::new(config(32));
    let result = runner.run(&secrets(), |input| {
        rt.block_on(masked_case(&t, &events, &input))
            .map_err(TestCaseError::fail)
    });
    if let Err(e) = &result {
        collector.abort();
        panic!("{backend:?}: {e}");
    }
    let entries = rt.block_on(t.entries());
    // Every case wrote 6 entries: the flag's and the vault's created, updated, deleted.
    assert_eq!(entries.len(), 32 * 6, "entries written");
    for e in entries.iter().filter(|e| e.scope == "Vault") {
        assert_eq!(e.detail.name.as_deref(), Some("masked"), "{e:?}");
        assert_eq!(e.detail.short_id.as_deref(), Some("masked"), "{e:?}");
        for c in e
            .detail
            .changes
            .iter()
            .filter(|c| c.field.as_deref() != Some("team_id"))
        {
            for v in [&c.before, &c.after] {
                match v {
                    Value::Null => {}
                    Value::String(s) => assert!(s == "masked" || s == "changed", "{e:?}"),
                    Value::Object(o) => assert!(
                        o.values()
                            .all(|v| *v == json!("masked") || *v == json!("changed")),
                        "{e:?}"
                    ),
                    other => panic!("unmasked snapshot value {other}: {e:?}"),
                }
            }
        }
    }
    println!(
        "[{backend:?}] masked_values_never_leak: 32 cases, {} entries and {} events searched, 0 leaks",
        entries.len(),
        events.len()
    );
    collector.abort();
    rt.block_on(t.cleanup());
}

mod masked {
    use activity_tests::Backend;

    #[test]
    fn sqlite() {
        super::masked_values_never_leak(Backend::Sqlite);
    }

    #[test]
    #[cfg_attr(
        not(activity_postgres),
        ignore = "ACTIVITY_TEST_POSTGRES_URL is not set"
    )]
    fn postgres() {
        super::masked_values_never_leak(Backend::Postgres);
    }

    #[test]
    #[cfg_attr(not(activity_mysql), ignore = "ACTIVITY_TEST_MYSQL_URL is not set")]
    fn mysql() {
        super::masked_values_never_leak(Backend::MySql);
    }
}
