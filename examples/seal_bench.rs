//! The sealing benchmark on PostgreSQL: sealer throughput, verification of every block, proof
//! size, the offline check of an export, and what a running sealer costs the write path.
//!
//! ```sh
//! BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo run --release -p activity-examples --example seal_bench
//! ```
//!
//! In a schema of its own (`seal_bench`, dropped at the end unless `BENCH_KEEP=1`):
//!
//! 1. `BENCH_ROWS` generated entries (default 1,000,000; 40 organizations) in January 2025,
//!    sealed by one `Sealer::seal` round (blocks of 1,024);
//! 2. `verify` of every tenant over all of them, a tenant at a time and by `verify_all` (one
//!    read in time order), then `verify_export` of one tenant's export (the `activity-verify`
//!    check, in process);
//! 3. one entry's proof: its binary size and its JSON size;
//! 4. the write path: `BENCH_WRITERS` tasks (default 4) each logging single-entry
//!    transactions for `BENCH_SECONDS` (default 5) per phase, alternating phases without and
//!    with a sealer sealing every `BENCH_SEAL_MS` (default 1000) ms, `BENCH_REPS` (default 3)
//!    pairs (the sealer caught up before each phase with it); throughput of each and the ratio;
//! 5. the first half of January archived (zstd) and pruned by `archive_then_prune`, then
//!    checked against the blocks by `archive::verify_sealed`, and the rest by `verify_all` from
//!    the cutoff: archive size per entry and both times.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use activity_examples::bench::{drop_schema, env_num, generated_entries, postgres_schema};
use activity_seaorm::ops::seal::{
    Checkpoint, Sealer, SigningKey, VerifyingKey, export_sealed, prove, tenants, verify,
    verify_all, verify_export,
};
use activity_seaorm::prelude::*;
use activity_seaorm::{ActivityEntry, log_activity};
use sea_orm::{ConnectionTrait, DatabaseConnection};

const SCHEMA: &str = "seal_bench";

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

fn config() -> ActivityConfig {
    ActivityConfig::new()
        .with_erasure_key(b"seal bench erasure key, 32 bytes")
        .with_user_scopes(["User"])
}

#[tokio::main]
async fn main() -> Res<()> {
    let rows = env_num("BENCH_ROWS", 1_000_000);
    let writers = env_num("BENCH_WRITERS", 4);
    let seconds = env_num("BENCH_SECONDS", 5) as u64;
    let reps = env_num("BENCH_REPS", 3);
    let (admin, db) = postgres_schema("seal_bench", SCHEMA, (writers + 2) as u32).await?;
    let result = ActivityConfig::scope(config(), run(&db, rows, writers, seconds, reps)).await;
    drop_schema(&admin, SCHEMA).await?;
    result
}

async fn run(
    db: &DatabaseConnection,
    rows: usize,
    writers: usize,
    seconds: u64,
    reps: usize,
) -> Res<()> {
    activity_seaorm::schema::create_table(db).await?;
    let started = Instant::now();
    db.execute_unprepared(&generated_entries(rows, "2025-01-01 00:00:00+00", 0))
        .await?;
    db.execute_unprepared("ANALYZE activity_log").await?;
    // What a sealer follows new entries by (a BRIN index on PostgreSQL).
    activity_seaorm::schema::create_seal_index(db).await?;
    println!(
        "generated {rows} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let key = SigningKey::from_bytes(&[42; 32]);
    let public = key.verifying_key();
    let sealer = Sealer::new(key).with_grace(Duration::ZERO);
    let started = Instant::now();
    let report = sealer.seal(db).await?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "sealer: {} entries in {} blocks, {took:.2} s ({:.0} entries/s)",
        report.entries,
        report.checkpoints.len(),
        report.entries as f64 / took
    );

    let started = Instant::now();
    let (mut blocks, mut entries, mut problems) = (0, 0, 0);
    let all = tenants(db).await?;
    for tenant in &all {
        let v = verify(db, tenant, .., &public).await?;
        blocks += v.blocks;
        entries += v.entries;
        problems += v.problems.len();
    }
    let took = started.elapsed().as_secs_f64();
    println!(
        "verify, a tenant at a time: {entries} entries in {blocks} blocks of {} tenants, {took:.2} s ({:.0} entries/s), {problems} problems",
        all.len(),
        entries as f64 / took
    );
    let started = Instant::now();
    let v = verify_all(db, .., &public, &[]).await?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "verify_all: {} entries in {} blocks, {took:.2} s ({:.0} entries/s), {} problems",
        v.entries,
        v.blocks,
        v.entries as f64 / took,
        v.problems.len()
    );

    let tenant = all.first().ok_or("no tenant")?;
    let (mut lines, mut cps) = (Vec::new(), Vec::new());
    let started = Instant::now();
    let exported = export_sealed(db, tenant, .., &mut lines, &mut cps).await?;
    let export_took = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let values: Vec<serde_json::Value> = String::from_utf8(lines)?
        .lines()
        .map(activity_seaorm::ops::seal::parse_json)
        .collect::<Result<_, _>>()?;
    let checkpoints: Vec<Checkpoint> = String::from_utf8(cps)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let offline = verify_export(values, &checkpoints, &public)?;
    println!(
        "export of {tenant}: {} entries, {} blocks in {export_took:.2} s; offline check {:.2} s, intact: {}",
        exported.entries,
        exported.blocks,
        started.elapsed().as_secs_f64(),
        offline.is_intact()
    );

    let any: sea_orm::prelude::Uuid = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT id FROM activity_log ORDER BY created_at DESC LIMIT 1 OFFSET 500",
        ))
        .await?
        .ok_or("no entry")?
        .try_get("", "id")?;
    let started = Instant::now();
    let proven = prove(db, any).await?.ok_or("not sealed")?;
    let took = started.elapsed().as_secs_f64() * 1e3;
    proven.proof.verify(&proven.entry, &public)?;
    println!(
        "proof: {} bytes binary ({} hashes), {} bytes as JSON, made in {took:.1} ms",
        proven.proof.encoded_len(),
        proven.proof.path.len(),
        serde_json::to_vec(&proven.proof)?.len()
    );

    floor(db, rows, &serde_json::to_vec(&proven.entry)?).await?;

    // The write path, with and without a sealer running beside it.
    let mut ratios = Vec::new();
    // The machine's busy CPU (client and server alike) per entry written, and per entry sealed
    // by the catch-up round that follows each phase without the sealer, nothing else running.
    let (mut write_cpu, mut write_own, mut written) = (Duration::ZERO, Duration::ZERO, 0u64);
    let (mut seal_cpu, mut seal_own, mut sealed_entries) = (Duration::ZERO, Duration::ZERO, 0u64);
    for rep in 0..reps {
        let before = (busy_cpu(), own_cpu());
        let (plain, count) = writes(db, writers, seconds, None).await?;
        if let (Some(a), Some(b), Some(c), Some(d)) = (before.0, busy_cpu(), before.1, own_cpu()) {
            write_cpu += b.saturating_sub(a);
            write_own += d.saturating_sub(c);
            written += count;
        }
        // Caught up first: the phase measures a sealer keeping pace, not one sealing the
        // previous phase's entries as well.
        let running = sealer.clone().with_grace(Duration::from_secs(1));
        let before = (busy_cpu(), own_cpu());
        let caught = ActivityConfig::scope(config(), running.seal(db)).await?;
        if let (Some(a), Some(b), Some(c), Some(d)) = (before.0, busy_cpu(), before.1, own_cpu()) {
            seal_cpu += b.saturating_sub(a);
            seal_own += d.saturating_sub(c);
            sealed_entries += caught.entries;
        }
        let (sealed, _) = writes(db, writers, seconds, Some(&running)).await?;
        println!(
            "writes rep {rep}: {plain:.0}/s without the sealer, {sealed:.0}/s with it ({:.3}x)",
            plain / sealed
        );
        ratios.push(plain / sealed);
    }
    if written > 0 && sealed_entries > 0 {
        let us = |d: Duration, n: u64| d.as_secs_f64() * 1e6 / n as f64;
        let (w, s) = (us(write_cpu, written), us(seal_cpu, sealed_entries));
        let (w_own, s_own) = (us(write_own, written), us(seal_own, sealed_entries));
        println!(
            "busy CPU per entry: written {w:.1} µs (this process {w_own:.1}, database and \
             kernel {:.1}; {written} entries), sealed {s:.1} µs (this process {s_own:.1}, \
             database and kernel {:.1}; {sealed_entries} entries): the sealer's share {:.2}% \
             (this process {:.2}%, database and kernel {:.2}%)",
            w - w_own,
            s - s_own,
            s / w * 100.0,
            s_own / w_own * 100.0,
            (s - s_own) / (w - w_own) * 100.0
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "write-path cost of a running sealer: median {:.1}% (ratios {ratios:.3?})",
        (ratios[ratios.len() / 2] - 1.0) * 100.0
    );
    archived(db, &public).await
}

/// Phase 5: archive the first half of January, then check the archive and the rest.
async fn archived(db: &DatabaseConnection, public: &VerifyingKey) -> Res<()> {
    use activity_seaorm::ops::archive::{
        ArchiveCodec, ArchiveOptions, archive_then_prune, verify_sealed,
    };
    let cutoff: chrono::DateTime<chrono::Utc> = "2025-01-16T00:00:00Z".parse()?;
    let dir = tempfile::tempdir()?;
    let opts = ArchiveOptions::new(dir.path(), "january-first-half").codec(ArchiveCodec::Zstd);
    let started = Instant::now();
    let done = archive_then_prune(db, &ActivityQuery::unscoped(), cutoff, &opts).await?;
    let took = started.elapsed().as_secs_f64();
    println!(
        "archive (zstd) and prune: {} entries in {took:.1} s, {} bytes ({:.1} bytes per entry)",
        done.manifest.count,
        done.manifest.bytes,
        done.manifest.bytes as f64 / done.manifest.count.max(1) as f64
    );
    let started = Instant::now();
    let v = verify_sealed(db, &[opts.manifest_path()], .., public, &[]).await?;
    println!(
        "verify_sealed: {} entries in {} blocks, {:.2} s, {} problems",
        v.entries,
        v.blocks,
        started.elapsed().as_secs_f64(),
        v.problems.len()
    );
    let started = Instant::now();
    let v = verify_all(db, cutoff.., public, &[]).await?;
    println!(
        "verify_all from the cutoff: {} entries in {} blocks, {:.2} s, {} problems",
        v.entries,
        v.blocks,
        started.elapsed().as_secs_f64(),
        v.problems.len()
    );
    Ok(())
}

/// Logged single-entry transactions per second by `writers` tasks for `seconds`, with
/// `sealer` sealing every `BENCH_SEAL_MS` meanwhile if given.
/// What any verify of these rows costs at least, measured on the same machine: reading them
/// over the socket (every column, in the order verify reads them, nothing decoded: one
/// stream, and two halves on two connections at once), and hashing them (SHA-256 leaves over
/// bytes the size of one canonical entry, in memory).
async fn floor(db: &DatabaseConnection, rows: usize, canonical: &[u8]) -> Res<()> {
    use futures::TryStreamExt;
    use sha2::{Digest, Sha256};
    let pool = db.get_postgres_connection_pool();
    let read = |sql: String| async move {
        let mut stream = sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(sql)).fetch(pool);
        let mut n = 0u64;
        while stream.try_next().await?.is_some() {
            n += 1;
        }
        Ok::<u64, sea_orm::sqlx::Error>(n)
    };
    let all =
        format!("SET search_path TO {SCHEMA}; SELECT * FROM activity_log ORDER BY created_at, id");
    let started = Instant::now();
    let n = read(all).await?;
    let one = started.elapsed().as_secs_f64();
    // The generator's 40 organizations, even ones and odd ones.
    let half = |parity: usize| {
        let orgs: Vec<String> = (0..40)
            .filter(|i| i % 2 == parity)
            .map(|i| format!("'org-{i}'"))
            .collect();
        format!(
            "SET search_path TO {SCHEMA}; SELECT * FROM activity_log \
             WHERE organization_id IN ({}) ORDER BY created_at, id",
            orgs.join(", ")
        )
    };
    let started = Instant::now();
    let (a, b) = tokio::try_join!(read(half(0)), read(half(1)))?;
    let two = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut digest = [0u8; 32];
    for _ in 0..rows {
        let mut h = Sha256::new();
        h.update([0u8]);
        h.update(canonical);
        h.update(digest);
        digest = h.finalize().into();
    }
    let hash = started.elapsed().as_secs_f64();
    println!(
        "verify floor: reading {n} rows (nothing decoded) {one:.2} s on one connection, {:.2} s \
         as two halves at once ({} rows); hashing {rows} leaves of {} bytes {hash:.2} s",
        two,
        a + b,
        canonical.len()
    );
    Ok(())
}

/// The machine's busy CPU time so far, summed over its cores, from `/proc/stat` (Linux; in
/// the kernel's 100 Hz ticks); `None` elsewhere.
fn busy_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: u64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(Duration::from_millis(busy * 10))
}

/// This process's CPU time so far (user and system), from `/proc/self/stat` (Linux; 100 Hz
/// ticks); `None` elsewhere.
fn own_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name's closing parenthesis: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// One phase of `writers` tasks logging for `seconds`: entries a second, and entries written.
async fn writes(
    db: &DatabaseConnection,
    writers: usize,
    seconds: u64,
    sealer: Option<&Sealer>,
) -> Res<(f64, u64)> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (db, stop, done) = (db.clone(), stop.clone(), done.clone());
        let cfg = config();
        tasks.push(tokio::spawn(ActivityConfig::scope(cfg, async move {
            let actor = ActivityContext::for_user(Actor::new(format!("writer-{w}")));
            ActivityContext::scope(actor, async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut entry = ActivityEntry::new("Setting", "updated")
                        .with_item_id(format!("{w}-{i}"))
                        .forced();
                    entry.organization_id = Some(format!("org-{}", w % 4));
                    if log_activity(&db, entry).await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
            .await
        })));
    }
    let seal_stop = Arc::new(AtomicBool::new(false));
    let sealing = sealer.map(|s| {
        let (s, db, seal_stop) = (s.clone(), db.clone(), seal_stop.clone());
        let every = env_num("BENCH_SEAL_MS", 1000) as u64;
        tokio::spawn(ActivityConfig::scope(config(), async move {
            let (mut rounds, mut entries, mut busy) = (0u64, 0u64, Duration::ZERO);
            while !seal_stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match s.seal(&db).await {
                    Ok(report) => entries += report.entries,
                    Err(e) => eprintln!("seal: {e}"),
                }
                busy += started.elapsed();
                rounds += 1;
                tokio::time::sleep(Duration::from_millis(every)).await;
            }
            println!(
                "  sealer: {rounds} rounds, {entries} entries, {:.0} ms in rounds ({:.1} µs an entry)",
                busy.as_secs_f64() * 1e3,
                busy.as_secs_f64() * 1e6 / entries.max(1) as f64
            );
        }))
    });
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    let count = done.load(Ordering::Relaxed);
    let rate = count as f64 / started.elapsed().as_secs_f64();
    seal_stop.store(true, Ordering::Relaxed);
    if let Some(t) = sealing {
        t.await?;
    }
    Ok((rate, count))
}
