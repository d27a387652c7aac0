//! `before_append` (patch or veto), `after_append` and `subscribe()`: the last two only for
//! committed entries. Hooks are process-wide, so this binary runs its backends one at a time.

use std::sync::{Arc, Mutex as StdMutex};

use activity_seaorm::config::{ActivityHooks, AppendDecision};
use activity_seaorm::events::subscribe;
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityConfig, transaction};
use activity_tests::models::feature_flag;
use activity_tests::{Backend, TestDb};
use scoped_futures::ScopedFutureExt;
use sea_orm::{ActiveModelTrait, DbErr, NotSet, Set};
use serde_json::json;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

#[derive(Debug, Default)]
struct Recorder {
    appended: StdMutex<Vec<String>>,
}

impl ActivityHooks for Recorder {
    fn before_append(&self, entry: &mut ActivityEntry) -> AppendDecision {
        if entry.detail.name.as_deref() == Some("veto-me") {
            return AppendDecision::Veto;
        }
        entry.detail.context = Some(json!({"patched": true}));
        AppendDecision::Keep
    }

    fn after_append(&self, entry: &ActivityEntry) {
        let name = entry.detail.name.clone().unwrap_or_default();
        self.appended.lock().unwrap().push(name);
    }
}

fn flag(key: &str) -> feature_flag::ActiveModel {
    feature_flag::ActiveModel {
        id: NotSet,
        team_id: Set(1),
        key: Set(key.to_owned()),
        active: Set(true),
        filters: Set(json!({})),
        webhook_secret: Set(String::new()),
        config: Set(json!({})),
        description: Set(None),
        cached_count: Set(0),
        last_accessed_at: Set(None),
    }
}

async fn hooks_and_events(backend: Backend) {
    let _serial = SERIAL.lock().await;
    let t = TestDb::new(backend).await;
    let recorder = Arc::new(Recorder::default());
    let config = ActivityConfig::new().with_hooks(recorder.clone());
    config
        .scope(async {
            let mut events = subscribe();

            let rolled_back: Result<(), DbErr> = transaction(&t.db, |txn| {
                async move {
                    flag("ev-rolled-back").insert(txn).await?;
                    Err(DbErr::Custom("abort".into()))
                }
                .scope_boxed()
            })
            .await;
            assert!(rolled_back.is_err());
            transaction(&t.db, |txn| {
                async move {
                    flag("veto-me").insert(txn).await?;
                    flag("ev-kept").insert(txn).await?;
                    Ok::<_, DbErr>(())
                }
                .scope_boxed()
            })
            .await
            .unwrap();
            flag("ev-autocommit").insert(&t.db).await.unwrap();

            let mut seen = Vec::new();
            while seen.len() < 2 {
                let event = events.recv().await.unwrap();
                seen.push(event.entry.detail.name.clone().unwrap_or_default());
            }
            assert_eq!(seen, vec!["ev-kept", "ev-autocommit"]);
            assert_eq!(
                *recorder.appended.lock().unwrap(),
                vec!["ev-kept", "ev-autocommit"]
            );

            let stored = t.entries().await;
            let names: Vec<_> = stored
                .iter()
                .map(|e| e.detail.name.clone().unwrap_or_default())
                .collect();
            assert_eq!(
                names,
                vec!["ev-kept", "ev-autocommit"],
                "vetoed and rolled-back entries are not stored"
            );
            assert!(
                stored
                    .iter()
                    .all(|e| e.detail.context == Some(json!({"patched": true})))
            );
        })
        .await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    hooks_and_events(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(activity_postgres),
    ignore = "ACTIVITY_TEST_POSTGRES_URL is not set"
)]
async fn postgres() {
    hooks_and_events(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(activity_mysql), ignore = "ACTIVITY_TEST_MYSQL_URL is not set")]
async fn mysql() {
    hooks_and_events(Backend::MySql).await;
}
