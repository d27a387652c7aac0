//! The yearly archive: every entry of a year (one organization, or all of them) goes to a
//! gzip-compressed JSON-lines file with a manifest, is verified by reading it back, and only
//! then is deleted from the database. Safe to re-run after any failure: it resumes.
//!
//! Run with `cargo run -p activity-examples --example archive -- [OPTIONS]`:
//!
//! ```text
//! --year YEAR          archive entries older than YEAR+1-01-01 (default: last year)
//! --dir DIR            where the files go (default: ./activity-archive)
//! --organization ID    only this organization's entries (default: every tenant)
//! --plain              no gzip
//! --seed N             first write N demo entries spread over the year (demo database only)
//! ```
//!
//! `DATABASE_URL` names the database (default: a demo SQLite file in the temp dir).

use std::path::PathBuf;

use activity_seaorm::ops::archive::{ArchiveOptions, archive_then_prune};
use activity_seaorm::{ActivityEntry, ActivityQuery};
use chrono::{Datelike, Duration, TimeZone, Utc};
use sea_orm::{Database, EntityTrait};

#[derive(Debug)]
struct Args {
    year: i32,
    dir: PathBuf,
    organization: Option<String>,
    gzip: bool,
    seed: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        year: Utc::now().year() - 1,
        dir: PathBuf::from("activity-archive"),
        organization: None,
        gzip: true,
        seed: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--year" => args.year = value()?.parse().map_err(|e| format!("--year: {e}"))?,
            "--dir" => args.dir = PathBuf::from(value()?),
            "--organization" => args.organization = Some(value()?),
            "--plain" => args.gzip = false,
            "--seed" => args.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        let path = std::env::temp_dir().join("activity-archive-demo.db");
        format!("sqlite://{}?mode=rwc", path.display())
    });
    let db = Database::connect(&url).await?;
    activity_seaorm::schema::create_table(&db).await?;

    let start = Utc
        .with_ymd_and_hms(args.year, 1, 1, 0, 0, 0)
        .single()
        .ok_or("bad year")?;
    let cutoff = Utc
        .with_ymd_and_hms(args.year + 1, 1, 1, 0, 0, 0)
        .single()
        .ok_or("bad year")?;
    if args.seed > 0 {
        let span = (cutoff - start).num_seconds();
        let rows: Vec<_> = (0..args.seed)
            .map(|i| {
                let mut e = ActivityEntry::new("Invoice", "sent").with_item_id(i.to_string());
                e.created_at = start + Duration::seconds(span * i as i64 / args.seed as i64);
                e.organization_id = Some(format!("org-{}", i % 3));
                activity_seaorm::activity_log::ActiveModel::from(e)
            })
            .collect();
        for chunk in rows.chunks(1_000) {
            activity_seaorm::activity_log::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&db)
                .await?;
        }
        println!("seeded {} entries over {}", args.seed, args.year);
    }

    let query = match &args.organization {
        Some(org) => ActivityQuery::for_organization(org.as_str()),
        None => ActivityQuery::unscoped(),
    };
    let name = match &args.organization {
        Some(org) => format!("activity-{}-{org}", args.year),
        None => format!("activity-{}", args.year),
    };
    let opts = ArchiveOptions::new(&args.dir, name).compressed(args.gzip);
    let done = archive_then_prune(&db, &query, cutoff, &opts).await?;
    println!(
        "{} {} entries ({} bytes, sha256 {}) to {}; deleted {} rows{}",
        if done.resumed { "found" } else { "archived" },
        done.manifest.count,
        done.manifest.bytes,
        done.manifest.sha256,
        done.data_path.display(),
        done.deleted,
        if done.resumed {
            " (resumed an earlier run)"
        } else {
            ""
        },
    );
    println!("manifest: {}", done.manifest_path.display());
    Ok(())
}
