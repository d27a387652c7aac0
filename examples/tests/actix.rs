//! The actix-web example driven over real HTTP: two workers, concurrent keep-alive connections
//! each carrying requests of several users in turn, on a SQLite file.

use std::collections::{BTreeMap, BTreeSet};

use activity_examples::create_tables;
use activity_seaorm::{ActivityEntry, activity_log};
use actix_web::HttpServer;
use actix_web::dev::Service;
use actix_web::http::header::{HeaderName, HeaderValue};
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::{Value, json};

#[allow(dead_code)] // its `main`
#[path = "../actix_service.rs"]
mod actix_service;

/// Concurrent connections, each a client that keeps one connection alive.
const LANES: usize = 6;
/// Requests each connection sends, one after another.
const PER_LANE: usize = 20;
const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// What the server saw of one request: its status, the client port (one per connection) and
/// the worker thread that served it.
#[derive(Debug)]
struct Seen {
    status: u16,
    peer_port: String,
    worker: String,
}

/// The example's app on two workers, each response marked with the client's port and the
/// serving worker's thread.
fn serve(db: DatabaseConnection) -> (String, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        actix_service::app(db.clone()).wrap_fn(|req, srv| {
            let peer_port = req.peer_addr().map_or(0, |a| a.port());
            let worker = format!("{:?}", std::thread::current().id());
            let fut = srv.call(req);
            async move {
                let mut res = fut.await?;
                let headers = res.headers_mut();
                headers.insert(
                    HeaderName::from_static("x-peer-port"),
                    HeaderValue::from(peer_port),
                );
                headers.insert(
                    HeaderName::from_static("x-worker"),
                    HeaderValue::from_str(&worker).unwrap(),
                );
                Ok(res)
            }
        })
    })
    .workers(2)
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (base, handle)
}

/// `PATCH /flags/{flag}` as `user`: the new filters name the sender, the lane and the sequence
/// number, so each stored entry says which request wrote it.
async fn patch(
    client: &reqwest::Client,
    base: &str,
    flag: i32,
    user: &str,
    lane: usize,
    seq: usize,
) -> Seen {
    let resp = client
        .patch(format!("{base}/flags/{flag}"))
        .header("x-user", user)
        .header("x-request-id", format!("{lane}-{seq}"))
        .json(&json!({"filters": {"by": user, "lane": lane, "seq": seq}}))
        .send()
        .await
        .unwrap();
    let header = |name: &str| resp.headers()[name].to_str().unwrap().to_owned();
    let seen = Seen {
        status: resp.status().as_u16(),
        peer_port: header("x-peer-port"),
        worker: header("x-worker"),
    };
    // Read the body to the end, so the connection goes back to the pool for the next request.
    resp.bytes().await.unwrap();
    seen
}

async fn entries(db: &DatabaseConnection) -> Vec<ActivityEntry> {
    let rows = activity_log::Entity::find().all(db).await.unwrap();
    rows.into_iter().map(Into::into).collect()
}

/// The `after` of an entry's change of `filters`.
fn filters_after(e: &ActivityEntry) -> &Value {
    let change = e
        .detail
        .changes
        .iter()
        .find(|c| c.field.as_deref() == Some("filters"));
    &change
        .unwrap_or_else(|| panic!("no filters change in {e:?}"))
        .after
}

#[actix_web::test]
async fn concurrent_keep_alive_requests_on_two_workers_log_their_own_user() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    let db = sea_orm::Database::connect(url).await.unwrap();
    create_tables(&db).await.unwrap();
    let flag = actix_service::seed_flag(&db).await.unwrap();
    let (base, server) = serve(db.clone());

    // LANES connections at once; on each, the users take turns, so consecutive requests on
    // one connection (and interleaved ones on one worker thread) come from different users.
    let lanes = (0..LANES).map(|lane| {
        let base = base.clone();
        async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut seen = Vec::new();
            for seq in 0..PER_LANE {
                let user = USERS[(lane + seq) % USERS.len()];
                seen.push(patch(&client, &base, flag, user, lane, seq).await);
            }
            (client, seen)
        }
    });
    let lanes = spawn_all(lanes).await;

    // The scenario happened: every request succeeded, each lane used one connection, and
    // both workers served.
    let mut workers = BTreeSet::new();
    for (lane, (_, seen)) in lanes.iter().enumerate() {
        assert!(
            seen.iter().all(|s| s.status == 200),
            "lane {lane}: {seen:?}"
        );
        let ports: BTreeSet<_> = seen.iter().map(|s| &s.peer_port).collect();
        assert_eq!(
            ports.len(),
            1,
            "lane {lane} was not one keep-alive connection: {seen:?}"
        );
        workers.extend(seen.iter().map(|s| s.worker.clone()));
    }
    assert_eq!(workers.len(), 2, "both workers serve: {workers:?}");

    // Every update wrote one entry, whose actor is the user who sent it.
    let updates: Vec<_> = entries(&db)
        .await
        .into_iter()
        .filter(|e| e.activity == "updated")
        .collect();
    assert_eq!(updates.len(), LANES * PER_LANE);
    let mut by_request = BTreeMap::new();
    for e in &updates {
        let after = filters_after(e);
        let (sender, lane, seq) = (&after["by"], &after["lane"], &after["seq"]);
        assert_eq!(e.user_id.as_deref(), sender.as_str(), "{e:?}");
        assert_eq!(e.request_id, Some(format!("{lane}-{seq}")), "{e:?}");
        assert_eq!(e.ip_address.as_deref(), Some("127.0.0.1"));
        assert!(!e.is_system);
        by_request.insert((lane.as_u64(), seq.as_u64()), sender.as_str());
    }
    assert_eq!(by_request.len(), LANES * PER_LANE, "one entry per request");
    let senders: BTreeSet<_> = by_request.values().copied().flatten().collect();
    assert_eq!(senders, BTreeSet::from(USERS));

    // An empty user id is refused before the handler runs, on a connection that served others:
    // no change, no entry. The next request on that client logs as its own user.
    let (client, _) = &lanes[0];
    let refused = patch(client, &base, flag, "", 0, PER_LANE).await;
    assert_eq!(refused.status, 400);
    let after_refusal = patch(client, &base, flag, "frank", 0, PER_LANE + 1).await;
    assert_eq!(after_refusal.status, 200);
    let all = entries(&db).await;
    assert_eq!(
        all.len(),
        1 + LANES * PER_LANE + 1,
        "the seed, the updates, frank's"
    );
    assert!(all.iter().all(|e| e.user_id.as_deref() != Some("")));
    assert!(
        !all.iter()
            .any(|e| e.activity == "updated" && filters_after(e)["by"] == "")
    );
    let last = all
        .iter()
        .find(|e| e.request_id == Some(format!("0-{}", PER_LANE + 1)))
        .unwrap();
    assert_eq!(last.user_id.as_deref(), Some("frank"));
    assert_eq!(filters_after(last)["seq"], json!(PER_LANE + 1));

    // The feed route: newest first, frank's update on top.
    let page: Value = reqwest::get(format!("{base}/activity?limit=3"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["results"].as_array().unwrap().len(), 3, "{page}");
    assert_eq!(page["results"][0]["user_id"], json!("frank"), "{page}");

    server.stop(true).await;
}

/// Runs the futures concurrently (as tasks of this thread's runtime), and returns their outputs
/// in order.
async fn spawn_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + 'static,
{
    let handles: Vec<_> = futs.map(actix_web::rt::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}
