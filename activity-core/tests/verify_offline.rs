//! The offline verifier (`activity-verify`), run as a user runs it: an export and its
//! checkpoints in files, the public key on the command line, no database. Intact history
//! exits 0; altering one value, deleting one entry, deleting the newest entries, inserting a
//! forged entry and recomputing every hash without the signing key each exit 1 and name the
//! problem; unreadable input exits 2.

use std::path::Path;
use std::process::Command;

use activity_core::ActivityEntry;
use activity_core::seal::{
    BlockHeader, Checkpoint, EntryKey, StoredEntry, canonical_entry, canonical_json, leaf_hash,
    merkle_root, tenant_key,
};
use chrono::{Duration, TimeZone, Utc};
use ed25519_dalek::SigningKey;
use serde_json::Value;

/// Stand-in pseudonyms (the real ones are HMACs under the erasure key, which the verifier
/// never needs: the export already holds them).
fn alias(v: &str) -> String {
    format!("anon-{:032x}", activity_core_fingerprint(v))
}

fn activity_core_fingerprint(v: &str) -> u128 {
    v.bytes()
        .fold(0x6c62272e07bb014262b821756295c58d_u128, |h, b| {
            (h ^ u128::from(b)).wrapping_mul(0x0000000001000000000000000000013B)
        })
}

/// Twenty canonical entries of organization `acme`, sealed in blocks of 8 with `key`.
fn history(key: &SigningKey) -> (Vec<Value>, Vec<Checkpoint>) {
    let mut entries = Vec::new();
    for i in 0..20i64 {
        let mut e = ActivityEntry::new("FeatureFlag", "updated").with_item_id(format!("f{i}"));
        e.id = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + i as u128);
        e.created_at = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap() + Duration::minutes(i);
        e.organization_id = Some("acme".into());
        e.user_id = Some("alice".into());
        e.ip_address = Some(format!("10.0.0.{i}"));
        let detail = serde_json::to_value(&e.detail).unwrap();
        entries.push(canonical_entry(
            &StoredEntry::of(&e, &detail),
            &[],
            &mut alias,
        ));
    }
    (entries.clone(), seal(&entries, key))
}

fn seal(entries: &[Value], key: &SigningKey) -> Vec<Checkpoint> {
    let mut out: Vec<Checkpoint> = Vec::new();
    for chunk in entries.chunks(8) {
        let leaves: Vec<_> = chunk
            .iter()
            .map(|e| leaf_hash(&canonical_json(e)))
            .collect();
        let last = EntryKey::of_canonical(chunk.last().unwrap()).unwrap();
        let header = BlockHeader::new(
            tenant_key(Some("acme"), None),
            out.last().map(|c| &c.header),
            last,
            leaves.len() as u64,
            merkle_root(&leaves),
            Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap(),
            Vec::new(),
            "0123456789abcdef".into(),
            &key.verifying_key(),
        );
        out.push(Checkpoint::sign(header, key));
    }
    out
}

fn write_lines<T: serde::Serialize>(path: &Path, items: &[T]) {
    let text: String = items
        .iter()
        .map(|i| serde_json::to_string(i).unwrap() + "\n")
        .collect();
    std::fs::write(path, text).unwrap();
}

/// Run the binary; its exit code and what it printed.
fn check(entries: &[Value], checkpoints: &[Checkpoint], key: &SigningKey) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let (e, c) = (dir.path().join("export.jsonl"), dir.path().join("cp.jsonl"));
    write_lines(&e, entries);
    write_lines(&c, checkpoints);
    let out = Command::new(env!("CARGO_BIN_EXE_activity-verify"))
        .arg("--key")
        .arg(hex::encode(key.verifying_key().as_bytes()))
        .arg("--checkpoints")
        .arg(&c)
        .arg("--export")
        .arg(&e)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn an_intact_export_passes() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let (entries, checkpoints) = history(&key);
    let (code, out) = check(&entries, &checkpoints, &key);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("\"blocks\": 3") && out.contains("\"entries\": 20"),
        "{out}"
    );
    // Any order: the verifier sorts.
    let mut shuffled = entries.clone();
    shuffled.reverse();
    assert_eq!(check(&shuffled, &checkpoints, &key).0, 0);
}

#[test]
fn altering_one_value_fails() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let (mut entries, checkpoints) = history(&key);
    entries[9]["activity"] = "deleted".into();
    let (code, out) = check(&entries, &checkpoints, &key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("Mismatch") && out.contains("\"seq\": 2"),
        "{out}"
    );
}

#[test]
fn deleting_one_entry_fails() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let (mut entries, checkpoints) = history(&key);
    entries.remove(3);
    let (code, out) = check(&entries, &checkpoints, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("\"found\": 7"), "{out}");
}

#[test]
fn deleting_the_newest_entries_fails() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let (mut entries, checkpoints) = history(&key);
    entries.truncate(16);
    let (code, out) = check(&entries, &checkpoints, &key);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("\"seq\": 3") && out.contains("\"found\": 0"),
        "{out}"
    );
}

#[test]
fn inserting_a_forged_entry_fails() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let (mut entries, checkpoints) = history(&key);
    let mut forged = entries[4].clone();
    forged["id"] = "01900000-0000-7000-8000-0000000000ff".into();
    entries.push(forged);
    let (code, out) = check(&entries, &checkpoints, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Mismatch"), "{out}");
    // After the last block: no block covers it, though its time was sealed.
    let (mut entries, checkpoints) = history(&key);
    let mut late = entries[19].clone();
    late["id"] = "01900000-0000-7000-8000-0000000000fe".into();
    late["created_at"] = "2026-03-01T09:30:00.000000Z".into();
    entries.push(late);
    let (code, out) = check(&entries, &checkpoints, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("Unsealed"), "{out}");
}

#[test]
fn recomputing_every_hash_without_the_key_fails() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let (mut entries, _) = history(&key);
    entries[0]["user_id"] = alias("mallory").into();
    let forger = SigningKey::from_bytes(&[2; 32]);
    let resealed = seal(&entries, &forger);
    let (code, out) = check(&entries, &resealed, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BadSignature"), "{out}");
    // A header edited to match, keeping the old signature.
    let (entries, mut checkpoints) = history(&key);
    checkpoints[1].header.entries = 7;
    let (code, out) = check(&entries, &checkpoints, &key);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("BadSignature"), "{out}");
}

#[test]
fn unreadable_input_exits_2() {
    let key = SigningKey::from_bytes(&[1; 32]);
    let out = Command::new(env!("CARGO_BIN_EXE_activity-verify"))
        .args([
            "--key",
            "zz",
            "--checkpoints",
            "/nonexistent",
            "--export",
            "/x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("public key"));

    // A missing file, and a malformed line, each named in the message.
    let (entries, checkpoints) = history(&key);
    let dir = tempfile::tempdir().unwrap();
    let (e, c) = (dir.path().join("export.jsonl"), dir.path().join("cp.jsonl"));
    write_lines(&e, &entries);
    let run = |cp: &Path, export: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_activity-verify"))
            .arg("--key")
            .arg(hex::encode(key.verifying_key().as_bytes()))
            .arg("--checkpoints")
            .arg(cp)
            .arg("--export")
            .arg(export)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&c, &e);
    assert_eq!(code, Some(2));
    assert!(err.contains("cp.jsonl"), "{err}");
    write_lines(&c, &checkpoints);
    assert_eq!(run(&c, &e).0, Some(0));
    let mut text = std::fs::read_to_string(&e).unwrap();
    let second = text.find('\n').unwrap() + 1;
    text.insert_str(second, "{\"id\": \n");
    std::fs::write(&e, text).unwrap();
    let (code, err) = run(&c, &e);
    assert_eq!(code, Some(2));
    assert!(err.contains("export.jsonl:2"), "{err}");
    // An entry without its key is unreadable too, not a problem of the history.
    write_lines(&e, &[serde_json::json!({"activity": "updated"})]);
    let (code, err) = run(&c, &e);
    assert_eq!(code, Some(2));
    assert!(err.contains("no id or time"), "{err}");
}
