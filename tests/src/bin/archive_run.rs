//! Child process of the archive test (`tests/ops_archive.rs`): one `archive_then_prune` of a
//! team's entries that stops after writing its temp file, prints `written`, and waits there to
//! be killed.
//!
//! `archive_run <database-url> <schema or -> <dir> <name> <team>`

use std::io::Write;
use std::time::Duration;

use activity_seaorm::ActivityQuery;
use activity_seaorm::ops::archive::{ArchiveOptions, ArchiveStep, archive_then_prune};
use chrono::TimeZone;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, schema, dir, name, team] = &args[..] else {
        panic!("usage: archive_run <database-url> <schema or -> <dir> <name> <team>");
    };
    let schema = (schema != "-").then_some(schema.as_str());
    let db = activity_tests::connect_sized(url, schema, 2).await;
    let opts = ArchiveOptions::new(dir, name.as_str()).on_step(|step| {
        if step == ArchiveStep::Written {
            println!("written");
            let _ = std::io::stdout().flush();
            std::thread::sleep(Duration::from_secs(120));
        }
        Ok(())
    });
    let cutoff = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    archive_then_prune(&db, &ActivityQuery::for_team(team.as_str()), cutoff, &opts)
        .await
        .expect("archive");
}
