//! The context is per task: concurrent tasks never see each other's actor, spawned
//! tasks inherit nothing unless `propagate`d, and nested scopes shadow and restore.

use std::sync::Arc;

use activity_core::{ActivityContext, Actor, Trigger};
use tokio::sync::Barrier;

fn current_user_id() -> Option<String> {
    ActivityContext::current().and_then(|c| c.user().map(|u| u.id.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_scopes_each_see_only_their_own_actor() {
    const TASKS: usize = 1000;
    // Every task is inside its scope before any of them reads, so all scopes overlap in time.
    let barrier = Arc::new(Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let ctx = ActivityContext::for_user(Actor::new(format!("user-{i}")))
                    .with_request_id(format!("req-{i}"));
                ActivityContext::scope(ctx, async move {
                    let mut seen = Vec::new();
                    barrier.wait().await;
                    for round in 0..5 {
                        tokio::task::yield_now().await;
                        if round % 2 == 0 {
                            tokio::time::sleep(std::time::Duration::from_micros(50)).await;
                        }
                        let ctx = ActivityContext::current().unwrap();
                        seen.push((
                            ctx.user().unwrap().id.clone(),
                            ctx.request_id().unwrap().to_owned(),
                        ));
                    }
                    (i, seen)
                })
                .await
            })
        })
        .collect();
    for handle in handles {
        let (i, seen) = handle.await.unwrap();
        assert_eq!(seen.len(), 5);
        for (user, request) in seen {
            assert_eq!(user, format!("user-{i}"));
            assert_eq!(request, format!("req-{i}"));
        }
    }
    assert_eq!(ActivityContext::current(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn propagate_carries_the_context_into_spawn() {
    let ctx = ActivityContext::for_user(Actor::new("7").with_name("bob"))
        .with_team("t1")
        .with_trigger(Trigger::new("job", "9"));
    let expected = ctx.clone();
    let seen = ActivityContext::scope(ctx, async {
        tokio::spawn(ActivityContext::propagate(async {
            tokio::task::yield_now().await;
            ActivityContext::current()
        }))
        .await
        .unwrap()
    })
    .await;
    assert_eq!(seen, Some(expected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_spawn_does_not_inherit() {
    let ctx = ActivityContext::for_user(Actor::new("7"));
    let (inside, spawned) = ActivityContext::scope(ctx, async {
        let spawned = tokio::spawn(async { ActivityContext::current() })
            .await
            .unwrap();
        (current_user_id(), spawned)
    })
    .await;
    assert_eq!(inside.as_deref(), Some("7"));
    assert_eq!(spawned, None);
}

#[tokio::test]
async fn propagate_without_a_context_gives_a_system_context() {
    let seen = tokio::spawn(ActivityContext::propagate(async {
        ActivityContext::current()
    }))
    .await
    .unwrap();
    assert_eq!(seen, Some(ActivityContext::system()));
    assert!(seen.unwrap().is_system());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nested_scopes_shadow_and_restore() {
    let outer = ActivityContext::for_user(Actor::new("outer"));
    let inner = ActivityContext::impersonating(Actor::new("inner"), Actor::new("staff"));
    let trace = ActivityContext::scope(outer, async {
        let mut trace = vec![current_user_id()];
        let inner_seen = ActivityContext::scope(inner, async {
            tokio::task::yield_now().await;
            let ctx = ActivityContext::current().unwrap();
            (
                ctx.user().unwrap().id.clone(),
                ctx.impersonated_by().unwrap().id.clone(),
            )
        })
        .await;
        trace.push(Some(format!("{}/{}", inner_seen.0, inner_seen.1)));
        tokio::task::yield_now().await;
        trace.push(current_user_id());
        trace.push(
            ActivityContext::scope(ActivityContext::system(), async { current_user_id() }).await,
        );
        trace.push(current_user_id());
        trace
    })
    .await;
    assert_eq!(
        trace,
        vec![
            Some("outer".to_owned()),
            Some("inner/staff".to_owned()),
            Some("outer".to_owned()),
            None,
            Some("outer".to_owned()),
        ]
    );
    assert_eq!(ActivityContext::current(), None);
}

#[test]
fn sync_scope_sets_and_restores() {
    assert_eq!(ActivityContext::current(), None);
    let seen = ActivityContext::sync_scope(ActivityContext::for_user(Actor::new("s")), || {
        current_user_id()
    });
    assert_eq!(seen.as_deref(), Some("s"));
    assert_eq!(ActivityContext::current(), None);
}

#[test]
fn builders_and_getters() {
    let ctx = ActivityContext::for_user(Actor::new("1").with_name("n").with_email("e@x"))
        .with_organization("o")
        .with_team("t")
        .with_request_id("r")
        .with_correlation_id("c")
        .with_ip("::1")
        .with_user_agent("ua")
        .with_client("cli")
        .with_trigger(Trigger::new("j", "2"));
    assert_eq!(
        ctx.user(),
        Some(&Actor::new("1").with_name("n").with_email("e@x"))
    );
    assert_eq!(ctx.impersonated_by(), None);
    assert!(!ctx.is_system());
    assert_eq!(ctx.organization_id(), Some("o"));
    assert_eq!(ctx.team_id(), Some("t"));
    assert_eq!(ctx.request_id(), Some("r"));
    assert_eq!(ctx.correlation_id(), Some("c"));
    assert_eq!(ctx.ip(), Some("::1"));
    assert_eq!(ctx.user_agent(), Some("ua"));
    assert_eq!(ctx.client(), Some("cli"));
    assert_eq!(ctx.trigger(), Some(&Trigger::new("j", "2")));

    let system = ActivityContext::system();
    assert!(system.is_system());
    assert_eq!(system.user(), None);
    assert_eq!(system.impersonated_by(), None);
}
