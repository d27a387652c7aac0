//! Long identifiers: up to 255 characters stored exactly on every backend, longer
//! ones refused with a typed error naming the column (never truncated), descriptive text cut at
//! a character boundary, and older tables with narrow columns widened by `schema::upgrade`.
//!
//! `failed_writes` is process-wide: the fail-open test takes [`COUNTER`] so its backends do not
//! count each other's losses.

use activity_seaorm::config::failed_writes;
use activity_seaorm::failure::{ChangeState, IdentifierTooLong};
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityEntry, LogWriteFailure, log_activity, transaction};
use activity_tests::models::setting;
use activity_tests::{Backend, TestDb, backend_tests};
use scoped_futures::ScopedFutureExt;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, Set};
use tokio::sync::Mutex;

static COUNTER: Mutex<()> = Mutex::const_new(());

/// An OIDC-like subject of exactly `chars` characters, multi-byte in places (so its byte length
/// exceeds 255 well before its character count does), distinct per `tag`.
fn subject(tag: &str, chars: usize) -> String {
    let mut s = format!("https://idp.example.com/realms/é-{tag}|");
    while s.chars().count() < chars {
        s.push(if s.len() % 3 == 0 { 'ü' } else { 'a' });
    }
    while s.chars().count() > chars {
        s.pop();
    }
    s
}

/// A string primary key of `chars` ASCII characters (the model table's charset is the server's).
fn key(tag: &str, chars: usize) -> String {
    let mut s = format!("setting/{tag}/");
    s.extend(std::iter::repeat_n('k', chars - s.len()));
    s
}

fn new_setting(key: &str) -> setting::ActiveModel {
    setting::ActiveModel {
        key: Set(key.to_owned()),
        value: Set("v".to_owned()),
    }
}

fn long_context(user: &str) -> ActivityContext {
    ActivityContext::impersonating(
        Actor::new(user).with_name("Long Subject"),
        Actor::new(subject("support", 200)),
    )
    .with_team(subject("team", 200))
    .with_organization(subject("org", 200))
}

async fn insert_in_transaction(t: &TestDb, key: String) -> Result<(), DbErr> {
    transaction(&t.db, |txn| {
        async move {
            new_setting(&key).insert(txn).await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
}

async fn setting_exists(t: &TestDb, key: &str) -> bool {
    setting::Entity::find_by_id(key.to_owned())
        .one(&t.db)
        .await
        .unwrap()
        .is_some()
}

/// 200-character actor, impersonator, team, organization, correlation id and string primary
/// key: the change commits and every one reads back byte for byte, inside `transaction`, in
/// autocommit and through `log_activity`.
async fn identifiers_up_to_255_are_stored_exactly(t: &TestDb) {
    let user = subject("user", 200);
    assert_eq!(user.chars().count(), 200);
    assert!(user.len() > 255, "multi-byte: {} bytes", user.len());
    let in_txn = key("txn", 200);
    let autocommit = key("auto", 200);
    let correlation = subject("corr", 200);
    let ctx = long_context(&user).with_correlation_id(correlation.clone());
    ActivityContext::scope(ctx, async {
        insert_in_transaction(t, in_txn.clone()).await.unwrap();
        new_setting(&autocommit).insert(&t.db).await.unwrap();
        let max = "m".repeat(255);
        log_activity(
            &t.db,
            ActivityEntry::new("Export", "exported").with_item_id(max),
        )
        .await
        .unwrap();
    })
    .await;
    assert!(setting_exists(t, &in_txn).await);
    assert!(setting_exists(t, &autocommit).await);

    let entries = t.entries().await;
    assert_eq!(entries.len(), 3, "{entries:#?}");
    let items: Vec<_> = entries.iter().map(|e| e.item_id.clone().unwrap()).collect();
    assert_eq!(items, [in_txn, autocommit, "m".repeat(255)]);
    for e in &entries {
        assert_eq!(e.user_id.as_deref(), Some(user.as_str()));
        assert_eq!(
            e.impersonated_by.as_deref(),
            Some(subject("support", 200).as_str())
        );
        assert!(e.was_impersonated);
        assert_eq!(e.team_id.as_deref(), Some(subject("team", 200).as_str()));
        assert_eq!(
            e.organization_id.as_deref(),
            Some(subject("org", 200).as_str())
        );
        assert_eq!(e.correlation_id.as_deref(), Some(correlation.as_str()));
    }
}

/// A 256-character actor id inside `transaction`: refused before any INSERT with the typed
/// error naming `user_id`, the transaction rolled back (fail-closed), nothing written. In
/// autocommit the change has committed before its entry, as for any failed log write, and the
/// error says so. `log_activity` with a 256-character item id is refused naming `item_id`.
async fn identifier_over_255_is_refused_fail_closed(t: &TestDb) {
    let user = subject("user", 256);
    let in_txn = key("txn", 200);
    let err = ActivityContext::scope(
        long_context(&user),
        insert_in_transaction(t, in_txn.clone()),
    )
    .await
    .unwrap_err();
    let refused = IdentifierTooLong::of(&err).unwrap_or_else(|| panic!("not typed: {err}"));
    assert_eq!(
        (refused.column, refused.chars, refused.max),
        ("user_id", 256, 255)
    );
    let failure = LogWriteFailure::of(&err).unwrap();
    assert_eq!(failure.change, ChangeState::RolledBack);
    assert_eq!(failure.entries, 1);
    let text = err.to_string();
    assert!(
        text.contains("user_id is 256 characters, longer than the 255"),
        "{text}"
    );
    assert!(text.contains("activity log write failed"), "{text}");
    assert!(!setting_exists(t, &in_txn).await, "rolled back");
    assert!(t.entries().await.is_empty());

    // Several entries, one too long: the whole write is refused, nothing half-written.
    let (a, b) = (key("a", 10), key("b", 10));
    let err = transaction(&t.db, |txn| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            new_setting(&a).insert(txn).await?;
            let ctx = long_context(&subject("user", 300));
            ActivityContext::scope(ctx, new_setting(&b).insert(txn)).await?;
            Ok::<_, DbErr>(())
        }
        .scope_boxed()
    })
    .await
    .unwrap_err();
    assert_eq!(IdentifierTooLong::of(&err).map(|r| r.chars), Some(300));
    assert_eq!(LogWriteFailure::of(&err).map(|f| f.entries), Some(2));
    assert!(!setting_exists(t, &a).await && !setting_exists(t, &b).await);
    assert!(t.entries().await.is_empty());

    // Autocommit: the change stands, without an entry, and the error says so.
    let auto = key("auto", 20);
    let err = ActivityContext::scope(long_context(&user), new_setting(&auto).insert(&t.db))
        .await
        .unwrap_err();
    assert_eq!(
        IdentifierTooLong::of(&err).map(|r| r.column),
        Some("user_id")
    );
    assert_eq!(
        LogWriteFailure::of(&err).map(|f| f.change),
        Some(ChangeState::Committed)
    );
    assert!(setting_exists(t, &auto).await);

    let entry = ActivityEntry::new("Export", "exported").with_item_id("i".repeat(256));
    let err = log_activity(&t.db, entry).await.unwrap_err();
    assert_eq!(
        IdentifierTooLong::of(&err).map(|r| (r.column, r.chars)),
        Some(("item_id", 256))
    );
    assert!(t.entries().await.is_empty());
    // The caller's own errors are not mistaken for refusals.
    assert_eq!(IdentifierTooLong::of(&DbErr::RecordNotUpdated), None);
}

/// Fail-open: the change commits, the refused entry is not written, and the loss is counted.
async fn identifier_over_255_fail_open_keeps_the_change(t: &TestDb) {
    let _serial = COUNTER.lock().await;
    let user = subject("user", 256);
    let in_txn = key("txn", 200);
    let open = ActivityConfig::new().with_failure_policy(FailurePolicy::FailOpen);
    let before = failed_writes();
    ActivityConfig::scope(
        open,
        ActivityContext::scope(long_context(&user), async {
            insert_in_transaction(t, in_txn.clone()).await.unwrap();
            new_setting(&key("auto", 30)).insert(&t.db).await.unwrap();
        }),
    )
    .await;
    assert_eq!(failed_writes(), before + 2);
    assert!(setting_exists(t, &in_txn).await);
    assert!(setting_exists(t, &key("auto", 30)).await);
    assert!(t.entries().await.is_empty());
}

/// Descriptive text longer than its column is cut on a character boundary (two-byte 'é'), by
/// characters as the backends count them: user name to 255, user agent to 512, request id and
/// client to 128, IP to 64.
async fn descriptive_text_is_cut_at_a_character_boundary(t: &TestDb) {
    let ctx =
        ActivityContext::for_user(Actor::new("u-1").with_name(format!("N{}", "é".repeat(299))))
            .with_user_agent(format!("Mozilla/5.0 {}", "é".repeat(600)))
            .with_request_id("é".repeat(300))
            .with_client("é".repeat(300))
            .with_ip("é".repeat(300));
    ActivityContext::scope(ctx, insert_in_transaction(t, key("ua", 20)))
        .await
        .unwrap();
    let entries = t.entries().await;
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    let name = e.user_name.as_deref().unwrap();
    assert_eq!(name.chars().count(), 255);
    assert_eq!(name, format!("N{}", "é".repeat(254)));
    let ua = e.user_agent.as_deref().unwrap();
    assert_eq!(ua.chars().count(), 512);
    assert_eq!(ua, format!("Mozilla/5.0 {}", "é".repeat(500)));
    assert_eq!(e.request_id.as_deref(), Some("é".repeat(128).as_str()));
    assert_eq!(e.client.as_deref(), Some("é".repeat(128).as_str()));
    assert_eq!(e.ip_address.as_deref(), Some("é".repeat(64).as_str()));
}

/// A table with the old widths refuses a 200-character actor id at the database (on the
/// servers); `WidenIdentifiers` (the migration) widens exactly the six narrow identifier
/// columns, keeping MySQL's NO PAD binary collation; a second `upgrade` changes nothing; then the
/// 200-character ids are stored exactly.
async fn upgrade_widens_an_old_table(t: &TestDb) {
    use activity_seaorm::schema::migration::WidenIdentifiers;
    use sea_orm_migration::{MigrationTrait, SchemaManager};
    activity_seaorm::schema::drop_table(&t.db).await.unwrap();
    for sql in activity_tests::old_activity_log_sql(t.backend) {
        t.db.execute_unprepared(&sql).await.unwrap();
    }
    let user = subject("user", 200);
    let before = ActivityContext::scope(
        long_context(&user),
        insert_in_transaction(t, key("old", 200)),
    )
    .await;
    match t.backend {
        // SQLite never enforced the width.
        Backend::Sqlite => before.unwrap(),
        _ => {
            let err = before.unwrap_err();
            assert!(LogWriteFailure::of(&err).is_some(), "{err}");
            assert!(!setting_exists(t, &key("old", 200)).await);
        }
    }

    WidenIdentifiers
        .up(&SchemaManager::new(&t.db))
        .await
        .unwrap();
    let again = activity_seaorm::schema::upgrade(&t.db).await.unwrap();
    assert!(again.is_empty(), "idempotent: {again:?}");
    if t.backend == Backend::MySql {
        let row =
            t.db.query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::MySql,
                "SELECT COLLATION_NAME AS c, CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) AS n, \
                 IS_NULLABLE AS nullable FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'activity_log' \
                 AND COLUMN_NAME = 'user_id'",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<String>("", "c").unwrap(), "utf8mb4_nopad_bin");
        assert_eq!(row.try_get::<i64>("", "n").unwrap(), 255);
        assert_eq!(row.try_get::<String>("", "nullable").unwrap(), "YES");
    }

    let widened_key = key("new", 200);
    ActivityContext::scope(
        long_context(&user),
        insert_in_transaction(t, widened_key.clone()),
    )
    .await
    .unwrap();
    let entries = t.entries().await;
    let last = entries.last().unwrap();
    assert_eq!(last.item_id.as_deref(), Some(widened_key.as_str()));
    assert_eq!(last.user_id.as_deref(), Some(user.as_str()));
    assert_eq!(last.team_id.as_deref(), Some(subject("team", 200).as_str()));
}

/// `upgrade` names the columns it widened: the six identifiers on the servers, none on SQLite
/// (which does not enforce widths), none on a table `create_table` made.
async fn upgrade_reports_what_it_widened(t: &TestDb) {
    assert!(
        activity_seaorm::schema::upgrade(&t.db)
            .await
            .unwrap()
            .is_empty()
    );
    activity_seaorm::schema::drop_table(&t.db).await.unwrap();
    for sql in activity_tests::old_activity_log_sql(t.backend) {
        t.db.execute_unprepared(&sql).await.unwrap();
    }
    let mut widened = activity_seaorm::schema::upgrade(&t.db).await.unwrap();
    widened.sort_unstable();
    // The trace columns are added (the old table has none); the identifiers widened.
    let expected: &[&str] = match t.backend {
        Backend::Sqlite => &["span_id", "trace_id"],
        _ => &[
            "correlation_id",
            "impersonated_by",
            "item_id",
            "organization_id",
            "span_id",
            "team_id",
            "trace_id",
            "user_id",
        ],
    };
    assert_eq!(widened, expected);
    // create_table on the upgraded table changes nothing either.
    activity_seaorm::schema::create_table(&t.db).await.unwrap();
    assert!(
        activity_seaorm::schema::upgrade(&t.db)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A MySQL table created before the exact collation compares ids case-insensitively: a read
/// for team `ACME` finds team `acme`'s entries. `upgrade` gives every identifier column the
/// exact collation (and only those), once.
async fn upgrade_makes_old_mysql_identifiers_exact(t: &TestDb) {
    t.db.execute_unprepared(
        "ALTER TABLE activity_log \
         MODIFY COLUMN team_id varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL, \
         MODIFY COLUMN user_id varchar(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL, \
         MODIFY COLUMN user_agent varchar(512) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NULL",
    )
    .await
    .unwrap();
    let mut entry = ActivityEntry::new("Job", "ran").with_item_id("1");
    entry.team_id = Some("acme".into());
    activity_seaorm::log_activity(&t.db, entry).await.unwrap();
    let other_team = async || {
        let q = ActivityQuery::for_team("ACME ");
        activity_seaorm::load_activity(&t.db, &q)
            .await
            .unwrap()
            .results
            .len()
    };
    assert_eq!(other_team().await, 1, "the old table's hole");
    let mut upgraded = activity_seaorm::schema::upgrade(&t.db).await.unwrap();
    upgraded.sort_unstable();
    assert_eq!(upgraded, ["team_id", "user_id"], "identifiers only");
    assert_eq!(other_team().await, 0);
    assert!(
        activity_seaorm::schema::upgrade(&t.db)
            .await
            .unwrap()
            .is_empty()
    );
}

activity_tests::tests_on!(old_mysql_collation: upgrade_makes_old_mysql_identifiers_exact on mysql);

backend_tests!(
    identifiers_up_to_255_are_stored_exactly,
    identifier_over_255_is_refused_fail_closed,
    identifier_over_255_fail_open_keeps_the_change,
    descriptive_text_is_cut_at_a_character_boundary,
    upgrade_widens_an_old_table,
    upgrade_reports_what_it_widened,
);
