//! Archive, then prune: old entries go to a JSON-lines file with a manifest, are verified by
//! reading the file back, and only then are deleted — by id, and only the ids in the file.
//!
//! The steps and their crash safety are documented on [`archive_then_prune`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use activity_core::{ActivityEntry, ActivityQuery, Order};
use chrono::{DateTime, Duration, Utc};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionSession, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::errors::Error;
use crate::ops::erasure::ErasureRequest;
use crate::schema::table::activity_log::{Column, Entity};

/// Ids per `DELETE .. WHERE id IN (..)` by default: short statements and short locks, well under
/// every backend's bind-parameter limit.
pub const ARCHIVE_DELETE_BATCH: usize = 1_000;

/// The manifest format written by this version for plain and gzip archives
/// ([`ArchiveManifest::version`]).
pub const MANIFEST_VERSION: u32 = 1;

/// The manifest format of a zstd archive: a version older libraries refuse by name, where
/// they would read `compressed: true` as gzip.
pub const MANIFEST_VERSION_ZSTD: u32 = 2;

/// The zstd level archives are written at, with long-distance matching over a
/// 2^[`ZSTD_WINDOW_LOG`]-byte window: 35 bytes per entry on the benchmarks' rows (level 9
/// alone: 39; gzip: 48), faster than level 9 alone and in less memory (≈ 60 MB).
pub const ZSTD_LEVEL: i32 = 9;

/// The window of [`ZSTD_LEVEL`]'s long-distance matching, as a power of two (16 MiB): within
/// what every zstd decoder accepts by default (2^27).
pub const ZSTD_WINDOW_LOG: u32 = 24;

/// How an archive's data file is compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ArchiveCodec {
    /// JSON lines as they are (`.jsonl`).
    #[default]
    Plain,
    /// Gzip (`.jsonl.gz`).
    Gzip,
    /// Zstandard at [`ZSTD_LEVEL`] (`.jsonl.zst`): the smallest.
    Zstd,
}

impl ArchiveCodec {
    fn extension(self) -> &'static str {
        match self {
            ArchiveCodec::Plain => "jsonl",
            ArchiveCodec::Gzip => "jsonl.gz",
            ArchiveCodec::Zstd => "jsonl.zst",
        }
    }

    /// A reader of the decompressed lines of `file`.
    fn reader<'a>(self, file: impl Read + 'a) -> io::Result<Box<dyn BufRead + 'a>> {
        Ok(match self {
            ArchiveCodec::Plain => Box::new(BufReader::new(file)),
            ArchiveCodec::Gzip => Box::new(BufReader::new(GzDecoder::new(BufReader::new(file)))),
            ArchiveCodec::Zstd => Box::new(BufReader::new(zstd::stream::read::Decoder::new(file)?)),
        })
    }

    /// A writer compressing into `file`.
    fn writer(self, file: File) -> io::Result<Out> {
        Ok(match self {
            ArchiveCodec::Plain => Out::Plain(io::BufWriter::new(file)),
            ArchiveCodec::Gzip => Out::Gz(GzEncoder::new(file, Compression::default())),
            ArchiveCodec::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(file, ZSTD_LEVEL)?;
                encoder.long_distance_matching(true)?;
                encoder.window_log(ZSTD_WINDOW_LOG)?;
                Out::Zstd(encoder)
            }
        })
    }
}

/// A point in [`archive_then_prune`] at which the [`ArchiveOptions::on_step`] hook runs, right
/// after the step named has finished.
///
/// The hook exists for progress reporting, and so tests can stop the run at each step to show
/// that a crash there loses nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveStep {
    /// The temp file holds every entry and is synced; it is not yet published.
    Written,
    /// The data file is published under its final name; it is not yet verified and has no
    /// manifest.
    Published,
    /// The published file was read back and verified; the manifest is not yet written.
    Verified,
    /// The manifest is written: the archive is complete. Nothing is deleted yet.
    ManifestWritten,
    /// One batch of archived ids was deleted and committed.
    BatchDeleted {
        /// Rows deleted by this run so far.
        deleted: u64,
    },
}

/// The callback type of [`ArchiveOptions::on_step`].
pub type StepHook = Arc<dyn Fn(ArchiveStep) -> io::Result<()> + Send + Sync>;

/// Where and how [`archive_then_prune`] writes an archive.
#[derive(Clone)]
pub struct ArchiveOptions {
    dir: PathBuf,
    name: String,
    codec: ArchiveCodec,
    delete_batch: usize,
    on_step: Option<StepHook>,
}

impl std::fmt::Debug for ArchiveOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveOptions")
            .field("dir", &self.dir)
            .field("name", &self.name)
            .field("codec", &self.codec)
            .field("delete_batch", &self.delete_batch)
            .field("on_step", &self.on_step.is_some())
            .finish()
    }
}

impl ArchiveOptions {
    /// An archive called `name` (e.g. `activity-2025`) in `dir`: the files are
    /// `<name>.jsonl` (or `<name>.jsonl.gz`) and `<name>.manifest.json`. The name identifies
    /// the archive across re-runs, so use one name per cutoff.
    pub fn new(dir: impl Into<PathBuf>, name: impl Into<String>) -> Self {
        ArchiveOptions {
            dir: dir.into(),
            name: name.into(),
            codec: ArchiveCodec::Plain,
            delete_batch: ARCHIVE_DELETE_BATCH,
            on_step: None,
        }
    }

    /// The same options for the archive called `name`.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The directory the archive is written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Gzip the JSON-lines file (`.jsonl.gz`), or not; the checksum is of the compressed
    /// bytes. See [`codec`](Self::codec) for zstd.
    pub fn compressed(mut self, compress: bool) -> Self {
        self.codec = if compress {
            ArchiveCodec::Gzip
        } else {
            ArchiveCodec::Plain
        };
        self
    }

    /// How to compress the JSON-lines file (default plain). [`ArchiveCodec::Zstd`] is the
    /// smallest; its manifest is version [`MANIFEST_VERSION_ZSTD`].
    pub fn codec(mut self, codec: ArchiveCodec) -> Self {
        self.codec = codec;
        self
    }

    /// Ids per DELETE statement (default [`ARCHIVE_DELETE_BATCH`]; at least 1).
    pub fn delete_batch(mut self, ids: usize) -> Self {
        self.delete_batch = ids.max(1);
        self
    }

    /// Call `hook` after each [`ArchiveStep`]; an error from it stops the run there, as a crash
    /// would, and is returned as [`Error::Io`].
    pub fn on_step(
        mut self,
        hook: impl Fn(ArchiveStep) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.on_step = Some(Arc::new(hook));
        self
    }

    /// The data file's path.
    pub fn data_path(&self) -> PathBuf {
        self.dir
            .join(format!("{}.{}", self.name, self.codec.extension()))
    }

    /// The manifest's path.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest.json", self.name))
    }

    /// The lock a run holds while it works (see [`archive_then_prune`]).
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join(format!("{}.lock", self.name))
    }

    fn step(&self, step: ArchiveStep) -> Result<(), Error> {
        tracing::debug!(?step, archive = %self.name, "archive step done");
        match &self.on_step {
            Some(hook) => Ok(hook(step)?),
            None => Ok(()),
        }
    }
}

/// What an archive holds: written last, so its presence means the data file is complete.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ArchiveManifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// The data file's name, in the manifest's directory.
    pub file: String,
    /// Whether the data file is compressed (gzip, unless [`codec`](Self::codec) says zstd).
    pub compressed: bool,
    /// The compression when it is not what `compressed` alone says (zstd); see
    /// [`ArchiveManifest::data_codec`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<ArchiveCodec>,
    /// How many entries (lines) the data file holds.
    pub count: u64,
    /// Size of the data file in bytes.
    pub bytes: u64,
    /// SHA-256 of the data file's bytes, lowercase hex.
    pub sha256: String,
    /// `created_at` of the oldest archived entry (`None` when empty).
    pub first_created_at: Option<DateTime<Utc>>,
    /// `created_at` of the newest archived entry (`None` when empty).
    pub last_created_at: Option<DateTime<Utc>>,
    /// The cutoff: every archived entry is strictly older.
    pub before: DateTime<Utc>,
    /// The query's filters, for the reader of the manifest.
    pub query: serde_json::Value,
    /// The [sealed history](crate::ops::seal) this archive ends in: for each tenant it holds
    /// entries of, the newest checkpoint whose block ended before the cutoff. Once the archived entries are dropped,
    /// the chain still runs through these (signed) blocks, and the archive's entries can be
    /// checked against them offline. Empty when nothing is sealed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sealed: Vec<crate::ops::seal::Checkpoint>,
}

impl ArchiveManifest {
    /// How the data file is compressed.
    pub fn data_codec(&self) -> ArchiveCodec {
        match (self.codec, self.compressed) {
            (Some(codec), _) => codec,
            (None, true) => ArchiveCodec::Gzip,
            (None, false) => ArchiveCodec::Plain,
        }
    }
}

/// What [`archive_then_prune`] did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ArchiveOutcome {
    /// The verified archive's manifest.
    pub manifest: ArchiveManifest,
    /// Where the data file is.
    pub data_path: PathBuf,
    /// Where the manifest is.
    pub manifest_path: PathBuf,
    /// Whether a complete archive from an earlier run was found (and verified) instead of
    /// written.
    pub resumed: bool,
    /// Rows this run deleted (archived ids an earlier run already deleted count 0).
    pub deleted: u64,
}

/// Archive every entry matching `query` with `created_at < before` to a JSON-lines file (one
/// [`ActivityEntry`] per line, as [`export_jsonl`](crate::ops::export::export_jsonl) writes it) plus a
/// manifest, verify the file, then delete exactly the archived ids in batches. Re-run with the
/// same options after a failure and it finishes the job.
///
/// The steps, and why a crash at any of them loses nothing:
///
/// 1. **Write** every matching entry (ascending, one page at a time) to a temp file beside the
///    archive (random name `.<file>.<random>.tmp`, created exclusively, mode 0600), then `fsync`
///    it. A crash leaves a temp file that the next run removes; nothing was deleted.
/// 2. **Publish**: rename the temp file to `<name>.jsonl[.gz]` and `fsync` the directory. A crash
///    leaves a data file without a manifest, which the next run does not trust: it writes the
///    archive again from the database, where every row still is.
/// 3. **Verify**: read the published file back — SHA-256 of its bytes, the entry count, every
///    line parses, the ids are the ones written, each is older than the cutoff.
/// 4. **Manifest** last: `<name>.manifest.json` (count, checksum, time range, cutoff, query),
///    written to a temp file like the data, synced and renamed. Its presence is the one sign that an archive
///    is complete.
/// 5. **Delete** the ids read from the verified file, in batches, each batch its own short
///    transaction (through the append-only guard's maintenance mode, like
///    [`prune`](crate::ops::retention::prune)). A crash between batches leaves some rows archived and not yet
///    deleted; the next run finds the manifest, verifies the file again and deletes the rest
///    (ids already gone delete nothing).
///
/// The files are private to their owner (0600), and every file operation (writes, compression,
/// `fsync`, renames, the SHA-256 of the whole file) runs on tokio's blocking threads, never on
/// the runtime's workers. One run per archive name holds an OS lock on `<name>.lock`; it ends
/// with the run however it ends, a killed process included.
///
/// A re-run with a manifest present never writes the file again: it verifies it against the
/// manifest and goes on deleting. If the file is missing or does not match its manifest, the run
/// stops with [`Error::Archive`] before deleting anything. Rows never listed in a verified
/// archive are never deleted, including rows older than the cutoff written after the archive
/// (a later archive with another name takes them).
///
/// Nor are entries the relay has yet to publish: while the [outbox](crate::outbox) lists an
/// entry older than the cutoff (any tenant's), no archive is made ([`Error::Archive`] before
/// anything is written); an archived entry listed since (written with an old time meanwhile)
/// stays in the log and the run ends with [`Error::Archive`] once the rest is deleted. Run
/// again once the relay has caught up: every committed entry reaches the stream.
///
/// The query is tenant-checked like [`load_activity`](crate::load_activity) (a tenant, or
/// `unscoped()` to archive all tenants). Its `to` is tightened to the cutoff; its order and
/// cursor are ignored.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), activity_seaorm::Error> {
/// use activity_seaorm::ActivityQuery;
/// use activity_seaorm::ops::archive::{ArchiveOptions, archive_then_prune};
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// activity_seaorm::schema::create_table(&db).await?;
/// let dir = std::env::temp_dir().join(format!("doc-archive-{}", std::process::id()));
/// let cutoff = "2026-01-01T00:00:00Z".parse().unwrap_or_default();
/// let opts = ArchiveOptions::new(&dir, "activity-2025").compressed(true);
/// let done = archive_then_prune(&db, &ActivityQuery::unscoped(), cutoff, &opts).await?;
/// assert_eq!((done.manifest.count, done.deleted), (0, 0));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
pub async fn archive_then_prune<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    query: &ActivityQuery,
    before: DateTime<Utc>,
    opts: &ArchiveOptions,
) -> Result<ArchiveOutcome, Error> {
    let Archived {
        manifest,
        ids,
        resumed,
        manifest_path,
        lock: _lock,
    } = archive(db, query, None, before, opts).await?;
    let (mut deleted, mut unrelayed) = (0u64, 0usize);
    for chunk in ids.chunks(opts.delete_batch) {
        let (went, kept) = delete_ids(db, chunk).await?;
        deleted += went;
        unrelayed += kept;
        opts.step(ArchiveStep::BatchDeleted { deleted })?;
    }
    if unrelayed > 0 {
        return Err(archive_error(
            &manifest_path,
            format!(
                "{unrelayed} archived entries are not relayed yet and stay in the log (the \
                 rest was deleted): run again once the relay has caught up, the archive is \
                 resumed"
            ),
        ));
    }
    // The manifest names the file (a resumed run may have been asked for another extension).
    let data_path = opts.dir.join(&manifest.file);
    tracing::info!(count = manifest.count, deleted, resumed, path = %data_path.display(),
        "archived and pruned activity log entries");
    Ok(ArchiveOutcome {
        manifest,
        data_path,
        manifest_path,
        resumed,
        deleted,
    })
}

/// A verified archive on disk, its ids, and the run's lock (held until the caller has removed
/// the rows it archived).
pub(crate) struct Archived {
    pub(crate) manifest: ArchiveManifest,
    pub(crate) ids: Vec<Uuid>,
    pub(crate) resumed: bool,
    pub(crate) manifest_path: PathBuf,
    pub(crate) lock: RunLock,
}

/// Steps 1–4 of [`archive_then_prune`] under the archive's lock, or the verification of the
/// archive an earlier run completed: after it, every id returned is in a verified file.
/// `partition`: the entries are the whole of that partition table (PostgreSQL), read in
/// primary-key order; `query` only describes them.
pub(crate) async fn archive<C: ConnectionTrait>(
    db: &C,
    query: &ActivityQuery,
    partition: Option<&str>,
    before: DateTime<Utc>,
    opts: &ArchiveOptions,
) -> Result<Archived, Error> {
    query.check_tenant()?;
    query.check_bounds()?;
    refuse_unrelayed(db, before, &opts.manifest_path()).await?;
    // One run per archive name at a time: two overlapping runs (a cron job that overlaps
    // itself, two replicas) could otherwise each publish a file, one of them missing what the
    // other had already deleted, and the second overwrite the first.
    let manifest_path = opts.manifest_path();
    let (lock, existing) = {
        let (dir, lock_path, manifest_path) =
            (opts.dir.clone(), opts.lock_path(), manifest_path.clone());
        let data_name = file_name(&opts.data_path());
        blocking(move || {
            fs::create_dir_all(&dir)?;
            let lock = RunLock::take(lock_path)?;
            remove_stale_temps(&dir, &[&data_name, &file_name(&manifest_path)])?;
            finish_erasure(&manifest_path)?;
            let existing = if manifest_path.exists() {
                Some(read_manifest(&manifest_path)?)
            } else {
                None
            };
            Ok((lock, existing))
        })
        .await?
    };
    let mut query_json = describe_query(query);
    if let (Some(table), Some(map)) = (partition, query_json.as_object_mut()) {
        map.insert("partition".into(), table.into());
    }
    let (manifest, ids, resumed) = if let Some(manifest) = existing {
        if manifest.before != before || manifest.query != query_json {
            return Err(archive_error(
                &manifest_path,
                format!(
                    "it was written for another cutoff or query (cutoff {}, query {}); \
                     use another archive name",
                    manifest.before, manifest.query
                ),
            ));
        }
        let ids = {
            let (path, manifest) = (manifest_path.clone(), manifest.clone());
            blocking(move || verify_against(&path, &manifest)).await?
        };
        tracing::info!(path = %manifest_path.display(), count = manifest.count,
            "archive already complete and verified; resuming deletion");
        (manifest, ids, true)
    } else {
        let (manifest, ids) = write_archive(db, query, partition, before, opts, query_json).await?;
        (manifest, ids, false)
    };

    Ok(Archived {
        manifest,
        ids,
        resumed,
        manifest_path,
        lock,
    })
}

/// The archives in `dir`: the manifests `archive_then_prune` wrote there, by path.
pub(crate) fn manifests_in(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut found = Vec::new();
    for item in fs::read_dir(dir)? {
        let path = item?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(MANIFEST_SUFFIX))
        {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

const MANIFEST_SUFFIX: &str = ".manifest.json";

/// `path` with `.erasing` appended: where an erasure writes the next version of a file.
fn erasing_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".erasing");
    PathBuf::from(name)
}

/// Complete an erasure of this archive that stopped midway. Its new manifest is written only
/// once its new data file is complete and synced, so a pending manifest means the pair is
/// whole: publish both (data first). A pending data file without one is discarded.
fn finish_erasure(manifest_path: &Path) -> Result<(), Error> {
    let pending_manifest = erasing_path(manifest_path);
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    if pending_manifest.exists() {
        let manifest = read_manifest(&pending_manifest)?;
        let data_path = dir.join(&manifest.file);
        let pending_data = erasing_path(&data_path);
        if pending_data.exists() {
            fs::rename(&pending_data, &data_path)?;
        }
        fs::rename(&pending_manifest, manifest_path)?;
        sync_dir(dir)?;
        tracing::info!(path = %manifest_path.display(), "archive: finished an interrupted erasure");
    } else if let Ok(manifest) = read_manifest(manifest_path) {
        let pending_data = erasing_path(&dir.join(&manifest.file));
        if pending_data.exists() {
            fs::remove_file(&pending_data)?;
        }
    }
    Ok(())
}

/// Apply `request` to the archive whose manifest is `manifest_path`: every entry by or about
/// the user is rewritten as the log's rows were, every other line is kept byte for byte, and
/// the data file and its manifest are replaced atomically (new files written and synced beside
/// them, then renamed: data, then manifest; an interrupted erasure is finished by the next
/// one, or by the next [`archive_then_prune`] of that name). Holds the archive's lock, so it
/// never races a run of `archive_then_prune`. Returns how many entries it rewrote (0: the
/// archive was left untouched). The values the archive knows the user by are added to
/// `request` first, so names the log no longer holds are erased too.
pub(crate) fn erase_archive(
    manifest_path: &Path,
    request: &mut ErasureRequest,
) -> Result<u64, Error> {
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let _lock = RunLock::take(lock_path_of(manifest_path))?;
    finish_erasure(manifest_path)?;
    let manifest = read_manifest(manifest_path)?;
    let ids = verify_against(manifest_path, &manifest)?;
    let data_path = dir.join(&manifest.file);
    let lines = read_lines(&data_path, manifest.data_codec())?;

    let mut touched = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let entry: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            archive_error(&data_path, format!("line {} does not parse: {e}", n + 1))
        })?;
        if request.touches(&entry) {
            request.learn(&entry);
            touched.push((n, entry));
        }
    }
    if touched.is_empty() {
        return Ok(0);
    }
    let mut rewritten = lines;
    let mut changed = 0u64;
    for (n, mut entry) in touched {
        if request.erase(&mut entry) {
            // Through the entry type, so the line keeps the field order every line has.
            let typed: ActivityEntry = serde_json::from_value(entry)?;
            rewritten[n] = serde_json::to_string(&typed)?;
            changed += 1;
        }
    }
    if changed == 0 {
        return Ok(0);
    }

    let pending_data = erasing_path(&data_path);
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    let file = private(&mut options).open(&pending_data)?;
    let mut out = manifest.data_codec().writer(file)?;
    write_lines(&mut out, &rewritten)?;
    let file = out.finish()?;
    file.sync_all()?;
    drop(file);
    let read = read_data(&pending_data, manifest.data_codec())?;
    if read.ids != ids {
        return Err(archive_error(
            &pending_data,
            "the rewritten archive does not hold the same entries".into(),
        ));
    }
    let next = ArchiveManifest {
        bytes: read.bytes,
        sha256: read.sha256,
        ..manifest
    };
    let pending_manifest = erasing_path(manifest_path);
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    let mut file = private(&mut options).open(&pending_manifest)?;
    serde_json::to_writer_pretty(&mut file, &next)?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    drop(file);
    sync_dir(dir)?;
    fs::rename(&pending_data, &data_path)?;
    fs::rename(&pending_manifest, manifest_path)?;
    sync_dir(dir)?;
    verify_against(manifest_path, &next)?;
    tracing::info!(path = %data_path.display(), entries = changed, "archive: erased a user's entries");
    Ok(changed)
}

/// The data file's lines, decompressed.
fn read_lines(path: &Path, codec: ArchiveCodec) -> Result<Vec<String>, Error> {
    let reader = codec.reader(File::open(path)?)?;
    Ok(reader.lines().collect::<Result<_, _>>()?)
}

fn write_lines(out: &mut Out, lines: &[String]) -> Result<(), Error> {
    for line in lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Verify an archive on disk against its manifest (checksum, count, time range, unique ids,
/// every entry older than the cutoff) and return the manifest. Touches no database.
pub fn verify_archive(manifest_path: impl AsRef<Path>) -> Result<ArchiveManifest, Error> {
    let manifest_path = manifest_path.as_ref();
    let manifest = read_manifest(manifest_path)?;
    verify_against(manifest_path, &manifest)?;
    Ok(manifest)
}

/// Check archives against the [sealed history](crate::ops::seal): what an archived and pruned
/// stretch held is still what was sealed. Give every archive of the stretch (`manifests`: their
/// manifest paths). Every block whose window starts in `range` (`..` for all) and before the
/// newest cutoff is checked, from the tenant's first block on:
///
/// - each archive against its manifest first (as [`verify_archive`]; a file that does not
///   match is an [`Error::Archive`], as is an archive with an erasure pending);
/// - each tenant's whole chain of stored checkpoints (signatures, links), and each checkpoint
///   a manifest names ([`ArchiveManifest::sealed`]) or `trusted` holds still stored exactly,
///   else [`Problem::Truncated`](crate::ops::seal::Problem::Truncated);
/// - each block against the archived entries in its window **together with** the entries the
///   database still holds there: the block that straddles the cutoff, an archive of part of a
///   tenant (a filtered query), an archive whose rows are not pruned yet all check out, while
///   an archived line altered (its manifest recomputed, or not), an entry missing from both, or
///   one inserted in either is a [`Problem::Mismatch`](crate::ops::seal::Problem::Mismatch);
/// - every entry before the cutoff, archived or stored, that no block covers although the
///   newest horizon passed it: [`Problem::Unsealed`](crate::ops::seal::Problem::Unsealed).
///
/// An archive an erasure rewrote checks out like the log: the pseudonyms it wrote are the
/// sealed form. Needs the erasure key the blocks were sealed with (configured in the current
/// [`ActivityConfig`](crate::ActivityConfig) scope). The blocks after the cutoff are
/// [`verify_all`](crate::ops::seal::verify_all)'s from the cutoff on (`cutoff..`): the two
/// together check the whole history. A block whose window reaches into an archive not given
/// is a `Mismatch`: give them all, or start `range` after them.
///
/// Reads only: no lock is taken and nothing is written, so a read-only copy of the archives
/// can be checked. Each data file is read once, into memory as it is stored (compressed or
/// not), and the manifest's checks run on the very bytes that are parsed. Keeps about 90 bytes
/// per archived entry and per entry the database holds in the checked windows, and the headers
/// of the blocks checked (the stored chains are read a page at a time, not held).
pub async fn verify_sealed<C: ConnectionTrait>(
    db: &C,
    manifests: &[impl AsRef<Path>],
    range: impl RangeBounds<DateTime<Utc>>,
    key: &crate::ops::seal::VerifyingKey,
    trusted: &[crate::ops::seal::Checkpoint],
) -> Result<crate::ops::seal::Verification, Error> {
    // The manifests first (small): the newest cutoff and the checkpoints they name decide
    // which blocks are kept while the stored chains are read, once.
    let read: Vec<(PathBuf, ArchiveManifest)> = {
        let paths: Vec<PathBuf> = manifests.iter().map(|m| m.as_ref().to_path_buf()).collect();
        blocking(move || {
            paths
                .into_iter()
                .map(|manifest_path| {
                    if erasing_path(&manifest_path).exists() {
                        return Err(pending_erasure(&manifest_path));
                    }
                    let manifest = read_manifest(&manifest_path)?;
                    Ok((manifest_path, manifest))
                })
                .collect()
        })
        .await?
    };
    let Some(cutoff) = read.iter().map(|(_, m)| m.before).max() else {
        return Ok(crate::ops::seal::Verification::default());
    };
    let kept = read.iter().flat_map(|(_, m)| &m.sealed).chain(trusted);
    let mut check = crate::ops::seal::ArchiveCheck::new(db, cutoff, &range, key, kept).await?;
    for (manifest_path, manifest) in read {
        check = blocking(move || {
            if erasing_path(&manifest_path).exists() {
                return Err(pending_erasure(&manifest_path));
            }
            let data_path = data_file(&manifest_path, &manifest)?;
            let bytes = fs::read(&data_path)?;
            let mut read = ReadBack::of(hex::encode(Sha256::digest(&bytes)), bytes.len() as u64);
            let reader = manifest.data_codec().reader(&bytes[..])?;
            for (n, line) in reader.lines().enumerate() {
                let line = line?;
                let entry: ActivityEntry = serde_json::from_str(&line).map_err(|e| {
                    archive_error(
                        &data_path,
                        format!("line {} is not an activity entry: {e}", n + 1),
                    )
                })?;
                // The line's own `detail` text, not its decoded shape: a key added to it is
                // hashed, and it is read as the sealer read the stored text (`parse_json`).
                let detail: LineDetail<'_> = serde_json::from_str(&line).map_err(|e| {
                    archive_error(&data_path, format!("line {} does not parse: {e}", n + 1))
                })?;
                read.add(&entry);
                let mut stored =
                    activity_core::seal::StoredEntry::of(&entry, &serde_json::Value::Null);
                stored.detail = activity_core::seal::StoredDetail::Text(detail.detail.get());
                check.add(&stored);
            }
            matches_manifest(&data_path, &manifest, &read)?;
            Ok(check)
        })
        .await?;
    }
    check.finish(db, range).await
}

/// An archive [`verify_sealed`] cannot check yet: its erasure did not finish.
fn pending_erasure(manifest_path: &Path) -> Error {
    archive_error(
        manifest_path,
        "an erasure of this archive is pending: run the erasure again (or \
         `archive_then_prune` of this archive) before checking it"
            .into(),
    )
}

/// `<name>.lock` beside the manifest `<name>.manifest.json`.
fn lock_path_of(manifest_path: &Path) -> PathBuf {
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let name = file_name(manifest_path);
    let name = name.strip_suffix(MANIFEST_SUFFIX).unwrap_or(&name);
    dir.join(format!("{name}.lock"))
}

/// Steps 1–4: write, publish, verify, manifest. Returns the manifest and the archived ids.
async fn write_archive<C: ConnectionTrait>(
    db: &C,
    query: &ActivityQuery,
    partition: Option<&str>,
    before: DateTime<Utc>,
    opts: &ArchiveOptions,
    query_json: serde_json::Value,
) -> Result<(ArchiveManifest, Vec<Uuid>), Error> {
    let data_path = opts.data_path();
    let dir = opts.dir.clone();
    // 1. Write to a temp file (private, random name, in the archive's directory so the
    //    rename is atomic). Stored timestamps have microsecond precision, so `< before` is
    //    `<= before - 1µs` (the query's `to` is inclusive).
    let mut q = query.clone();
    q.order = Order::Ascending;
    q.cursor = None;
    let last = before - Duration::microseconds(1);
    q.to = Some(q.to.map_or(last, |to| to.min(last)));
    let (tmp, file) = {
        let (dir, name) = (dir.clone(), file_name(&data_path));
        blocking(move || {
            let tmp = private_temp(&dir, &name)?;
            let file = tmp.as_file().try_clone()?;
            Ok((tmp, file))
        })
        .await?
    };
    let out = opts.codec.writer(file)?;
    let mut written = WrittenEntries::default();
    let out = match partition {
        Some(table) => written.write_table(db, table, out).await?,
        None => written.write_all(db, &q, out).await?,
    };
    blocking(move || {
        let file = out.finish()?;
        file.sync_all()?;
        Ok(())
    })
    .await?;
    opts.step(ArchiveStep::Written)?;

    // 2. Publish under the final name.
    {
        let (data_path, dir) = (data_path.clone(), dir.clone());
        blocking(move || {
            tmp.persist(&data_path).map_err(|e| e.error)?;
            sync_dir(&dir)
        })
        .await?;
    }
    opts.step(ArchiveStep::Published)?;

    // 3. Read it back.
    let read = {
        let (data_path, codec) = (data_path.clone(), opts.codec);
        blocking(move || read_data(&data_path, codec)).await?
    };
    if read.ids != written.ids {
        return Err(archive_error(
            &data_path,
            format!(
                "reading it back gave {} entries, not the {} written, or other ids",
                read.ids.len(),
                written.ids.len()
            ),
        ));
    }
    check_entries(&data_path, &read, before)?;
    opts.step(ArchiveStep::Verified)?;

    // 4. The manifest, last.
    let manifest = ArchiveManifest {
        version: match opts.codec {
            ArchiveCodec::Zstd => MANIFEST_VERSION_ZSTD,
            _ => MANIFEST_VERSION,
        },
        file: file_name(&data_path),
        compressed: opts.codec != ArchiveCodec::Plain,
        codec: (opts.codec == ArchiveCodec::Zstd).then_some(ArchiveCodec::Zstd),
        count: read.ids.len() as u64,
        bytes: read.bytes,
        sha256: read.sha256.clone(),
        first_created_at: read.first,
        last_created_at: read.last,
        before,
        query: query_json,
        sealed: crate::ops::seal::ending_before(
            db,
            read.tenants.iter().map(String::as_str),
            before,
        )
        .await?,
    };
    {
        let (manifest, manifest_path, dir) = (manifest.clone(), opts.manifest_path(), dir.clone());
        blocking(move || {
            let tmp = private_temp(&dir, &file_name(&manifest_path))?;
            let mut file = tmp.as_file();
            serde_json::to_writer_pretty(&mut file, &manifest)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            tmp.persist(&manifest_path).map_err(|e| e.error)?;
            sync_dir(&dir)
        })
        .await?;
    }
    opts.step(ArchiveStep::ManifestWritten)?;
    Ok((manifest, read.ids))
}

/// Ids and time range of what was written, in order.
#[derive(Default)]
struct WrittenEntries {
    ids: Vec<Uuid>,
}

impl WrittenEntries {
    /// Write every entry of `query` to `out`, a page at a time: each page is serialized here
    /// and written (and compressed) on a blocking thread. Returns the writer.
    async fn write_all<C: ConnectionTrait>(
        &mut self,
        db: &C,
        query: &ActivityQuery,
        mut out: Out,
    ) -> Result<Out, Error> {
        // Everything the range holds goes to the archive, whatever a read policy hides from
        // people: what is pruned must have been archived.
        let mut q = query
            .clone()
            .limit(activity_core::query::MAX_PAGE_SIZE)
            .reader(activity_core::Reader::auditor());
        loop {
            let page = crate::load_activity(db, &q).await?;
            let mut buf = Vec::new();
            for e in &page.results {
                serde_json::to_writer(&mut buf, e)?;
                buf.push(b'\n');
                self.ids.push(e.id);
            }
            out = blocking(move || {
                out.write_all(&buf)?;
                Ok(out)
            })
            .await?;
            match page.next_cursor {
                Some(cursor) => q.cursor = Some(cursor),
                None => break,
            }
        }
        Ok(out)
    }
}

impl WrittenEntries {
    /// Write every entry of the partition `table` to `out`, in primary-key order, a keyset page
    /// at a time: each page is one range scan of the partition's key, where the time order a
    /// query reads in would sort the whole month for every page.
    async fn write_table<C: ConnectionTrait>(
        &mut self,
        db: &C,
        table: &str,
        mut out: Out,
    ) -> Result<Out, Error> {
        use sea_orm::FromQueryResult;
        let page = activity_core::query::MAX_PAGE_SIZE;
        let mut after: Option<Uuid> = None;
        loop {
            let (sql, values): (String, Vec<sea_orm::Value>) = match after {
                None => (
                    format!("SELECT * FROM \"{table}\" ORDER BY id LIMIT {page}"),
                    Vec::new(),
                ),
                Some(id) => (
                    format!("SELECT * FROM \"{table}\" WHERE id > $1 ORDER BY id LIMIT {page}"),
                    vec![id.into()],
                ),
            };
            let rows = db
                .query_all_raw(sea_orm::Statement::from_sql_and_values(
                    sea_orm::DbBackend::Postgres,
                    sql,
                    values,
                ))
                .await?;
            let mut buf = Vec::new();
            for row in &rows {
                let entry: ActivityEntry =
                    crate::schema::activity_log::Model::from_query_result(row, "")?.into();
                serde_json::to_writer(&mut buf, &entry)?;
                buf.push(b'\n');
                self.ids.push(entry.id);
                after = Some(entry.id);
            }
            out = blocking(move || {
                out.write_all(&buf)?;
                Ok(out)
            })
            .await?;
            if rows.len() < page {
                return Ok(out);
            }
        }
    }
}

/// The archive's writer, over its file (see [`ArchiveCodec::writer`]).
enum Out {
    Gz(GzEncoder<File>),
    Zstd(zstd::stream::write::Encoder<'static, File>),
    Plain(io::BufWriter<File>),
}

impl Out {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Out::Gz(w) => w.write_all(buf),
            Out::Zstd(w) => w.write_all(buf),
            Out::Plain(w) => w.write_all(buf),
        }
    }

    /// Flush everything, and hand back the file.
    fn finish(self) -> io::Result<File> {
        match self {
            Out::Gz(w) => w.finish(),
            Out::Zstd(w) => w.finish(),
            Out::Plain(w) => w.into_inner().map_err(io::IntoInnerError::into_error),
        }
    }
}

/// Run blocking file work (writes, fsync, renames, SHA-256 of a whole file) on tokio's
/// blocking threads, never on the runtime's workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        Error::from(io::Error::other(format!(
            "archive work did not finish: {e}"
        )))
    })?
}

/// Remove the temp files a killed run of this archive left (`.<name>.<random>.tmp`), under
/// the lock: no other run is writing them.
fn remove_stale_temps(dir: &Path, names: &[&str]) -> Result<(), Error> {
    for item in fs::read_dir(dir)? {
        let item = item?;
        let file = item.file_name();
        let file = file.to_string_lossy();
        if file.ends_with(".tmp") && names.iter().any(|n| file.starts_with(&format!(".{n}."))) {
            tracing::info!(path = %item.path().display(), "archive: removed a killed run's temp file");
            fs::remove_file(item.path())?;
        }
    }
    Ok(())
}

/// A new temp file in `dir` for the file `name`: private to its owner (0600), with a random
/// name (`.<name>.<random>.tmp`), created exclusively, removed if dropped unpersisted.
fn private_temp(dir: &Path, name: &str) -> io::Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
}

/// What reading a data file back found.
struct ReadBack {
    ids: Vec<Uuid>,
    sha256: String,
    bytes: u64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    /// Every entry's `created_at`, to check against the cutoff.
    times: Vec<DateTime<Utc>>,
    /// The tenant keys of the entries (whose sealed history the manifest names).
    tenants: std::collections::BTreeSet<String>,
}

/// An archived line's `detail` as written, borrowed from the line.
#[derive(serde::Deserialize)]
struct LineDetail<'a> {
    #[serde(borrow)]
    detail: &'a serde_json::value::RawValue,
}

fn read_data(path: &Path, codec: ArchiveCodec) -> Result<ReadBack, Error> {
    let (sha256, bytes) = checksum(path)?;
    let reader = codec.reader(File::open(path)?)?;
    let mut read = ReadBack::of(sha256, bytes);
    for (n, line) in reader.lines().enumerate() {
        let line = line?;
        let entry: ActivityEntry = serde_json::from_str(&line).map_err(|e| {
            archive_error(
                path,
                format!("line {} is not an activity entry: {e}", n + 1),
            )
        })?;
        read.add(&entry);
    }
    Ok(read)
}

impl ReadBack {
    /// Nothing read yet from a file of these bytes.
    fn of(sha256: String, bytes: u64) -> Self {
        ReadBack {
            ids: Vec::new(),
            sha256,
            bytes,
            first: None,
            last: None,
            times: Vec::new(),
            tenants: std::collections::BTreeSet::new(),
        }
    }

    /// The next line's entry.
    fn add(&mut self, entry: &ActivityEntry) {
        self.ids.push(entry.id);
        self.times.push(entry.created_at);
        self.first = Some(
            self.first
                .map_or(entry.created_at, |f| f.min(entry.created_at)),
        );
        self.last = Some(
            self.last
                .map_or(entry.created_at, |l| l.max(entry.created_at)),
        );
        self.tenants.insert(activity_core::seal::tenant_key(
            entry.organization_id.as_deref(),
            entry.team_id.as_deref(),
        ));
    }
}

/// Unique ids, all older than the cutoff.
fn check_entries(path: &Path, read: &ReadBack, before: DateTime<Utc>) -> Result<(), Error> {
    let unique: std::collections::HashSet<&Uuid> = read.ids.iter().collect();
    if unique.len() != read.ids.len() {
        return Err(archive_error(path, "it lists an id twice".into()));
    }
    if let Some(late) = read.times.iter().find(|t| **t >= before) {
        return Err(archive_error(
            path,
            format!("it holds an entry of {late}, not older than the cutoff {before}"),
        ));
    }
    Ok(())
}

/// Verify the data file named by `manifest`; its ids.
fn verify_against(manifest_path: &Path, manifest: &ArchiveManifest) -> Result<Vec<Uuid>, Error> {
    let data_path = data_file(manifest_path, manifest)?;
    let read = read_data(&data_path, manifest.data_codec())?;
    matches_manifest(&data_path, manifest, &read)?;
    Ok(read.ids)
}

/// The data file `manifest` names, once the manifest's version is known and the file exists.
fn data_file(manifest_path: &Path, manifest: &ArchiveManifest) -> Result<PathBuf, Error> {
    if manifest.version != MANIFEST_VERSION && manifest.version != MANIFEST_VERSION_ZSTD {
        return Err(archive_error(
            manifest_path,
            format!("unknown manifest version {}", manifest.version),
        ));
    }
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let data_path = dir.join(&manifest.file);
    if !data_path.exists() {
        return Err(archive_error(&data_path, "the data file is missing".into()));
    }
    Ok(data_path)
}

/// What was read back from `data_path` is what `manifest` says: checksum, size, count, time
/// range, unique ids, all older than the cutoff.
fn matches_manifest(
    data_path: &Path,
    manifest: &ArchiveManifest,
    read: &ReadBack,
) -> Result<(), Error> {
    if read.sha256 != manifest.sha256 || read.bytes != manifest.bytes {
        return Err(archive_error(
            data_path,
            format!(
                "checksum {} ({} bytes) does not match the manifest's {} ({} bytes)",
                read.sha256, read.bytes, manifest.sha256, manifest.bytes
            ),
        ));
    }
    if read.ids.len() as u64 != manifest.count
        || read.first != manifest.first_created_at
        || read.last != manifest.last_created_at
    {
        return Err(archive_error(
            data_path,
            format!(
                "it holds {} entries ({:?}..{:?}), the manifest says {} ({:?}..{:?})",
                read.ids.len(),
                read.first,
                read.last,
                manifest.count,
                manifest.first_created_at,
                manifest.last_created_at
            ),
        ));
    }
    check_entries(data_path, read, manifest.before)
}

fn read_manifest(path: &Path) -> Result<ArchiveManifest, Error> {
    let text = fs::read_to_string(path)?;
    serde_json::from_str(&text)
        .map_err(|e| archive_error(path, format!("the manifest does not parse: {e}")))
}

/// Archives are made to be pruned: none is made while the outbox lists entries before its
/// cutoff (committed, not yet relayed), which would leave the log before the relay publishes
/// them. Conservative: any tenant's such entry stops an archive of any query.
async fn refuse_unrelayed<C: ConnectionTrait>(
    db: &C,
    before: DateTime<Utc>,
    manifest_path: &Path,
) -> Result<(), Error> {
    let unrelayed = crate::outbox::unrelayed(db).await?;
    match crate::outbox::oldest_of(db, &unrelayed).await? {
        Some(oldest) if oldest < before => Err(archive_error(
            manifest_path,
            format!(
                "the outbox still lists entries before the cutoff (the oldest of {oldest}): the \
                 relay has not published them yet; run again once it has caught up"
            ),
        )),
        _ => Ok(()),
    }
}

/// Delete one batch of archived ids in its own short transaction, through maintenance mode:
/// how many went, and how many were kept because the outbox lists them (an entry committed
/// with an old time after the archive's check, not relayed yet).
async fn delete_ids<C: ConnectionTrait + TransactionTrait>(
    db: &C,
    ids: &[Uuid],
) -> Result<(u64, usize), Error> {
    let txn = db.begin().await?;
    let work = async {
        let unrelayed = crate::outbox::unrelayed(&txn).await?;
        let going: Vec<Uuid> = ids
            .iter()
            .copied()
            .filter(|id| !unrelayed.contains(id))
            .collect();
        let deleted = Entity::delete_many()
            .filter(Column::Id.is_in(going.iter().copied()))
            .exec(&txn)
            .await?
            .rows_affected;
        Ok::<_, Error>((deleted, ids.len() - going.len()))
    };
    match crate::schema::guard::maintenance(&txn, work).await {
        Ok(done) => {
            txn.commit().await?;
            Ok(done)
        }
        Err(e) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(%rollback, "archive: rolling back a failed delete batch failed");
            }
            Err(e)
        }
    }
}

fn checksum(path: &Path) -> Result<(String, u64), Error> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), bytes))
}

/// The query's filters as JSON, for the manifest (and to tell a re-run of the same archive).
fn describe_query(q: &ActivityQuery) -> serde_json::Value {
    serde_json::json!({
        "organization_id": q.organization_id,
        "team_id": q.team_id,
        "unscoped": q.unscoped,
        "scopes": q.scopes,
        "item_ids": q.item_ids,
        "users": q.users,
        "activities": q.activities,
        "from": q.from,
        "to": q.to,
        "was_impersonated": q.was_impersonated,
        "is_system": q.is_system,
        "search": q.search,
        "detail_filters": q.detail_filters.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>(),
    })
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Make a rename durable: sync the directory entry (a no-op where directories cannot be
/// opened, as on Windows).
fn sync_dir(dir: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// A run's exclusive claim on its archive name: an OS advisory lock (`flock` on Unix,
/// `LockFileEx` on Windows) on `<name>.lock`, held as long as the run's file handle is open.
/// It ends with the run however it ends — success, error, panic, a dropped future, or the
/// process killed outright (the kernel releases it) — so a killed run never blocks the next.
/// The file itself stays (removing it while another process opens it would let two runs lock
/// two different files); it holds the pid of the last run that took it.
pub(crate) struct RunLock {
    _held: File,
}

/// Attempts, 10 ms apart, before a held lock is reported as another run's.
const LOCK_TRIES: u32 = 20;

impl RunLock {
    fn take(path: PathBuf) -> Result<RunLock, Error> {
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        let mut file = private(&mut options).open(&path)?;
        // A lock is also held, for a moment, by a child this process forks while a run holds
        // it (the child's copy of the descriptor lives until it execs): seen when a finished
        // run was followed at once by the next. Only a lock still held after ~200 ms is
        // another run's.
        let mut tries = 0;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    file.set_len(0)?;
                    let _ = writeln!(file, "pid {} since {}", std::process::id(), Utc::now());
                    return Ok(RunLock { _held: file });
                }
                Err(fs::TryLockError::WouldBlock) if tries < LOCK_TRIES => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(archive_error(
                        &path,
                        "another run of this archive is running (it holds the lock)".to_owned(),
                    ));
                }
                Err(fs::TryLockError::Error(e)) => return Err(e.into()),
            }
        }
    }
}

/// Files the archive creates are its owner's only (0600 on Unix).
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    options
}

fn archive_error(path: &Path, why: String) -> Error {
    Error::Archive {
        path: path.to_path_buf(),
        why,
    }
}
