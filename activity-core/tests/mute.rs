//! Muting is per task, never process-wide, and nested mutes restore the outer state.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use activity_core::{MuteGuard, is_muted, mute_scopes, mute_signals, mute_signals_in};
use tokio::sync::Barrier;

const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<MuteGuard>();
    assert_send::<activity_core::Muted<std::future::Ready<()>>>();
};

#[tokio::test]
async fn nothing_is_muted_by_default() {
    assert!(!is_muted("A"));
    assert!(!tokio::spawn(async { is_muted("A") }).await.unwrap());
}

#[tokio::test]
async fn nested_guards_restore_the_outer_state() {
    assert!(!is_muted("A"));
    let outer = mute_signals();
    assert!(is_muted("A"));
    {
        let inner = mute_signals();
        assert!(is_muted("A"));
        drop(inner);
    }
    assert!(
        is_muted("A"),
        "dropping the inner guard keeps the outer one"
    );
    drop(outer);
    assert!(!is_muted("A"));
}

#[tokio::test]
async fn guards_dropped_out_of_order_neither_unmute_early_nor_leak() {
    let first = mute_signals();
    let second = mute_signals();
    drop(first);
    assert!(is_muted("A"), "the second guard is still held");
    drop(second);
    assert!(!is_muted("A"), "no guard is left");
}

#[tokio::test]
async fn guard_inside_mute_scopes_restores_the_scoped_state() {
    let trace = mute_scopes(&["A"], async {
        let mut trace = vec![(is_muted("A"), is_muted("B"))];
        {
            let _all = mute_signals();
            trace.push((is_muted("A"), is_muted("B")));
        }
        trace.push((is_muted("A"), is_muted("B")));
        trace
    })
    .await;
    assert_eq!(trace, vec![(true, false), (true, true), (true, false)]);
    assert!(!is_muted("A"));
}

#[tokio::test]
async fn mute_scopes_mutes_only_those_scopes() {
    let seen = mute_scopes(&["A"], async {
        tokio::task::yield_now().await;
        (is_muted("A"), is_muted("B"), is_muted("a"))
    })
    .await;
    assert_eq!(seen, (true, false, false));
    assert!(!is_muted("A"));
}

#[tokio::test]
async fn nested_mute_scopes_accumulate_then_restore() {
    let trace = mute_scopes(&["A"], async {
        let inner = mute_scopes(&["B", "C"], async {
            tokio::task::yield_now().await;
            (is_muted("A"), is_muted("B"), is_muted("C"), is_muted("D"))
        })
        .await;
        (inner, (is_muted("A"), is_muted("B"), is_muted("C")))
    })
    .await;
    assert_eq!(trace, ((true, true, true, false), (true, false, false)));
    assert_eq!((is_muted("A"), is_muted("B")), (false, false));
}

#[tokio::test]
async fn mute_signals_in_mutes_everything_then_restores() {
    let inside = mute_signals_in(async {
        tokio::task::yield_now().await;
        (is_muted("A"), is_muted("Anything"))
    })
    .await;
    assert_eq!(inside, (true, true));
    assert!(!is_muted("A"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn muted_task_beside_an_unmuted_one() {
    // Both tasks run at the same time: the muted one holds its guard while the other checks.
    let barrier = Arc::new(Barrier::new(2));
    let muted = {
        let barrier = Arc::clone(&barrier);
        tokio::spawn(async move {
            let _guard = mute_signals();
            let before = is_muted("A");
            barrier.wait().await; // guard held: the other task checks now
            barrier.wait().await; // the other task has checked
            tokio::time::sleep(Duration::from_millis(5)).await;
            (before, is_muted("A"))
        })
    };
    let unmuted = {
        let barrier = Arc::clone(&barrier);
        tokio::spawn(async move {
            barrier.wait().await;
            let seen = (is_muted("A"), is_muted("B"));
            barrier.wait().await;
            seen
        })
    };
    assert_eq!(muted.await.unwrap(), (true, true));
    assert_eq!(unmuted.await.unwrap(), (false, false));
    assert!(!is_muted("A"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_alternate_muted_and_unmuted() {
    let barrier = Arc::new(Barrier::new(200));
    let handles: Vec<_> = (0..200)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let guard = (i % 2 == 0).then(mute_signals);
                barrier.wait().await;
                let mut seen = Vec::new();
                for _ in 0..5 {
                    tokio::task::yield_now().await;
                    seen.push(is_muted("A"));
                }
                drop(guard);
                seen.push(is_muted("A"));
                (i, seen)
            })
        })
        .collect();
    for handle in handles {
        let (i, seen) = handle.await.unwrap();
        let m = i % 2 == 0;
        assert_eq!(seen, vec![m, m, m, m, m, false], "task {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guard_held_across_awaits_follows_the_task_across_threads() {
    let (always_muted, threads) = tokio::spawn(async {
        let guard = mute_signals();
        let mut always_muted = true;
        let mut threads = HashSet::new();
        for i in 0..200 {
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            } else {
                tokio::task::yield_now().await;
            }
            // Keep the other workers busy so this task gets stolen now and then.
            if i % 50 == 0 {
                for _ in 0..8 {
                    tokio::spawn(async { std::thread::sleep(Duration::from_millis(2)) });
                }
            }
            threads.insert(std::thread::current().id());
            always_muted &= is_muted("A");
        }
        drop(guard);
        let after = is_muted("A");
        (always_muted && !after, threads.len())
    })
    .await
    .unwrap();
    assert!(
        always_muted,
        "muted until the guard was dropped, unmuted after"
    );
    // Migration is up to the scheduler; the check above holds either way.
    eprintln!("guarded task ran on {threads} worker thread(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mute_signals_in_does_not_mute_a_joined_sibling() {
    let (muted, sibling) = tokio::join!(
        mute_signals_in(async {
            let mut seen = Vec::new();
            for _ in 0..5 {
                seen.push(is_muted("A"));
                tokio::task::yield_now().await;
            }
            seen
        }),
        async {
            let mut seen = Vec::new();
            for _ in 0..5 {
                seen.push(is_muted("A"));
                tokio::task::yield_now().await;
            }
            seen
        }
    );
    assert_eq!(muted, vec![true; 5]);
    assert_eq!(sibling, vec![false; 5]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mute_scopes_in_a_spawned_join() {
    let (a, b) = tokio::spawn(async {
        tokio::join!(
            mute_scopes(&["A"], async {
                tokio::task::yield_now().await;
                (is_muted("A"), is_muted("B"))
            }),
            mute_scopes(&["B"], async {
                tokio::task::yield_now().await;
                (is_muted("A"), is_muted("B"))
            }),
        )
    })
    .await
    .unwrap();
    assert_eq!(a, (true, false));
    assert_eq!(b, (false, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guard_held_across_awaits_inside_mute_scopes() {
    // The inner guard must survive the wrapper's restore at the end of each poll.
    let trace = tokio::spawn(mute_scopes(&["A"], async {
        let mut trace = Vec::new();
        {
            let _all = mute_signals();
            tokio::time::sleep(Duration::from_millis(1)).await;
            trace.push((is_muted("A"), is_muted("B")));
            tokio::task::yield_now().await;
            trace.push((is_muted("A"), is_muted("B")));
        }
        trace.push((is_muted("A"), is_muted("B")));
        tokio::task::yield_now().await;
        trace.push((is_muted("A"), is_muted("B")));
        trace
    }))
    .await
    .unwrap();
    assert_eq!(
        trace,
        vec![(true, true), (true, true), (true, false), (true, false)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn muting_does_not_leak_into_spawned_tasks() {
    let _guard = mute_signals();
    assert!(is_muted("A"));
    let spawned = tokio::spawn(async { is_muted("A") }).await.unwrap();
    assert!(!spawned);
    let spawned_from_muted = tokio::spawn(mute_signals_in(async {
        tokio::spawn(async { is_muted("A") }).await.unwrap()
    }))
    .await
    .unwrap();
    assert!(!spawned_from_muted);
}

#[test]
fn guard_outside_a_runtime_mutes_the_thread() {
    let guard = mute_signals();
    assert!(is_muted("A"));
    let other_thread = std::thread::spawn(|| is_muted("A")).join().unwrap();
    assert!(!other_thread);
    drop(guard);
    assert!(!is_muted("A"));
}

#[tokio::test]
async fn guard_restores_on_panic() {
    let result = tokio::spawn(async {
        let _guard = mute_signals();
        tokio::task::yield_now().await;
        panic!("boom");
    })
    .await;
    assert!(result.is_err());
    assert!(!is_muted("A"));
    // And in the same task, unwinding through a guard restores the outer state.
    let outer = mute_scopes(&["A"], async {
        let caught = std::panic::catch_unwind(|| {
            let _guard = mute_signals();
            panic!("inner");
        });
        assert!(caught.is_err());
        (is_muted("A"), is_muted("B"))
    })
    .await;
    assert_eq!(outer, (true, false));
}
