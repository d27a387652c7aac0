//! Sealed history, the part that needs no database: the canonical bytes of an entry, RFC 6962
//! Merkle hashing, signed block checkpoints, inclusion proofs, and the offline check of an
//! export against its checkpoints (the `activity-verify` binary).
//!
//! A *block* seals a run of one tenant's entries: its header names the tenant, its sequence
//! number, the window of entry keys it covers (after the previous block's last entry, up to and
//! including its own last), how many entries that window holds, the Merkle root over their
//! canonical bytes and the previous block's head. The header signed with the application's
//! ed25519 key is a [`Checkpoint`]. Whoever holds the public key and the checkpoints can tell
//! an altered, deleted, inserted or truncated entry from an intact history, with no database
//! and no secret: every personal field enters the canonical bytes as its keyed pseudonym (see
//! [`canonical_entry`]), which is exactly what erasure leaves in the row, so erasing a user
//! changes no hash.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entry::ActivityEntry;
use crate::error::ActivityError;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// Version of the canonical form and of the block header; part of every signed header.
pub const FORMAT: u32 = 1;

/// Most entries in one block: an inclusion proof holds at most `log2` of it (10) hashes.
pub const MAX_BLOCK: usize = 1024;

/// Prefix of every signed message: a signature over a checkpoint is never valid for anything
/// else the same key signs.
const SIGNING_CONTEXT: &[u8] = b"activity-seaorm checkpoint v1\0";

/// Prefix of a pseudonym (`anon-` and 32 lowercase hex digits).
pub const PSEUDONYM_PREFIX: &str = "anon-";

/// RFC 6962 leaf hash: `SHA-256(0x00 || bytes)`.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    h.finalize().into()
}

/// RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two strictly below `n` (`n > 1`).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The Merkle tree hash of `leaves` (RFC 6962 §2.1; the empty tree hashes to `SHA-256("")`).
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&merkle_root(&leaves[..k]), &merkle_root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` (RFC 6962 §2.1.1), leaf side first; empty when `index` is
/// out of range.
pub fn inclusion_path(leaves: &[Hash], index: usize) -> Vec<Hash> {
    if index >= leaves.len() || leaves.len() < 2 {
        return Vec::new();
    }
    let k = split(leaves.len());
    let (mut path, sibling) = if index < k {
        (
            inclusion_path(&leaves[..k], index),
            merkle_root(&leaves[k..]),
        )
    } else {
        (
            inclusion_path(&leaves[k..], index - k),
            merkle_root(&leaves[..k]),
        )
    };
    path.push(sibling);
    path
}

/// The root that `leaf` at `index` of a tree of `size` leaves and its audit `path` imply
/// (RFC 9162 §2.1.3.2); `None` when the path cannot belong to such a tree.
pub fn root_from_inclusion(leaf: Hash, index: u64, size: u64, path: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf;
    for p in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// `value` as bytes that do not depend on how it was stored: object keys sorted, no
/// whitespace, serde_json's escaping and number formatting. PostgreSQL's `jsonb`, MySQL's
/// `JSON` and SQLite's text hand back the same value in different key orders; all three give
/// these bytes.
pub fn canonical_json(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                if let Some(v) = map.get(k) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_string(s, out),
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

/// [`canonical_json`] of the JSON `text`, written without building a [`Value`]: strings stay
/// borrowed from `text` where they hold no escape, and objects are sorted member lists, not
/// maps. The same bytes as `canonical_json(&parse_json(text)?)` for every text (numbers
/// parsed by the same parser, a repeated key's last value kept as a map keeps it): what the
/// sealer hashes for each entry, at a fraction of the allocations.
pub fn canonical_json_text(text: &str) -> Result<Vec<u8>, serde_json::Error> {
    let node: Node<'_> = serde_json::from_str(text)?;
    let mut out = Vec::with_capacity(text.len());
    node.write(&mut out);
    Ok(out)
}

/// Whether this build writes numbers in the canonical form: serde_json's `arbitrary_precision`
/// feature (turned on for the whole build by any crate that asks for it, e.g.
/// `rust_decimal`'s `serde-with-arbitrary-precision`) keeps each number's text (`1.50` stays
/// `1.50`, where the canonical form writes `1.5`) and hands numbers to parsers as objects, so
/// the sealer and an offline verifier built without it would hash the same entry differently.
/// Sealing and every check refuse such a build with this error instead.
pub fn canonical_numbers() -> Result<(), ActivityError> {
    static PLAIN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let plain = *PLAIN.get_or_init(|| {
        let written = serde_json::from_str::<Value>("1.50").and_then(|v| serde_json::to_string(&v));
        written.ok().as_deref() == Some("1.5")
    });
    if plain {
        Ok(())
    } else {
        Err(ActivityError::Integrity(
            "serde_json's `arbitrary_precision` feature is on in this build: it changes how \
             numbers enter the sealed canonical form; build without it to seal or verify"
                .into(),
        ))
    }
}

/// `text` as a [`Value`], read member by member as JSON defines it. Not
/// `serde_json::from_str::<Value>`: with serde_json's `raw_value` feature (which sqlx turns
/// on), that reads an object whose first key is serde_json's private raw-value marker as the
/// JSON text in its value, a different value than the one stored — and the hash, the archive
/// check and the offline check must all read the same stored text as the same value. Every
/// text the library hashes or checks is read through this (or [`canonical_json_text`]).
pub fn parse_json(text: &str) -> Result<Value, serde_json::Error> {
    let node: Node<'_> = serde_json::from_str(text)?;
    Ok(node.into_value())
}

/// A JSON value borrowing its strings from the text it was parsed from.
enum Node<'a> {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(std::borrow::Cow<'a, str>),
    Array(Vec<Node<'a>>),
    /// Members in the text's order; [`Node::write`] sorts them.
    Object(Vec<(std::borrow::Cow<'a, str>, Node<'a>)>),
}

impl<'a> Node<'a> {
    fn into_value(self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(b),
            Node::Number(n) => Value::Number(n),
            Node::String(s) => Value::String(s.into_owned()),
            Node::Array(items) => Value::Array(items.into_iter().map(Node::into_value).collect()),
            // Inserted in the text's order: a repeated key's last value stays.
            Node::Object(members) => Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_value()))
                    .collect(),
            ),
        }
    }

    /// [`restore_detail`](crate::entry::restore_detail) on the tree: every key the stored
    /// form leaves out, put back (members are written sorted, so where does not matter).
    fn restore(&mut self, scope: &'a str) {
        use std::borrow::Cow;
        let has = |members: &[(Cow<'a, str>, Node<'a>)], key: &str| {
            members.iter().any(|(k, _)| k.as_ref() == key)
        };
        let Node::Object(members) = self else {
            return;
        };
        for key in crate::entry::NULLABLE_KEYS {
            if !has(members, key) {
                members.push((Cow::Borrowed(key), Node::Null));
            }
        }
        if !has(members, "changes") {
            members.push((Cow::Borrowed("changes"), Node::Array(Vec::new())));
        }
        for (k, v) in members.iter_mut() {
            let (true, Node::Array(changes)) = (k.as_ref() == "changes", v) else {
                continue;
            };
            for change in changes.iter_mut() {
                let Node::Object(fields) = change else {
                    continue;
                };
                if !has(fields, "type") {
                    fields.push((Cow::Borrowed("type"), Node::String(Cow::Borrowed(scope))));
                }
                for key in crate::entry::NULLABLE_CHANGE_KEYS {
                    if !has(fields, key) {
                        fields.push((Cow::Borrowed(key), Node::Null));
                    }
                }
            }
        }
    }

    /// [`pseudonymize_detail`] on the tree: every string in `name`, `short_id` and the
    /// changes' `before` and `after` through `f` (each member of a repeated key, so the one
    /// kept is).
    fn pseudonymize(&mut self, f: &mut dyn FnMut(&str) -> String) {
        let Node::Object(members) = self else {
            return;
        };
        let mut swap = |v: &mut Node<'_>| {
            if let Node::String(s) = v {
                *s = std::borrow::Cow::Owned(f(s));
            }
        };
        for (k, v) in members.iter_mut() {
            match k.as_ref() {
                "name" | "short_id" => swap(v),
                "changes" => {
                    let Node::Array(changes) = v else { continue };
                    for change in changes.iter_mut() {
                        let Node::Object(fields) = change else {
                            continue;
                        };
                        for (field, value) in fields.iter_mut() {
                            if matches!(field.as_ref(), "before" | "after") {
                                swap(value);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn write(self, out: &mut Vec<u8>) {
        match self {
            Node::Null => out.extend_from_slice(b"null"),
            Node::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            Node::Number(n) => {
                let _ = serde_json::to_writer(&mut *out, &n);
            }
            Node::String(s) => write_string(&s, out),
            Node::Array(items) => {
                out.push(b'[');
                for (i, v) in items.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write(out);
                }
                out.push(b']');
            }
            Node::Object(mut members) => {
                // Stable: of members with the same key, the text's last is the one kept, as
                // a map parsed from the text keeps it.
                members.sort_by(|a, b| a.0.cmp(&b.0));
                out.push(b'{');
                let mut first = true;
                let mut members = members.into_iter().peekable();
                while let Some((k, v)) = members.next() {
                    if members.peek().is_some_and(|(next, _)| *next == k) {
                        continue;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    write_string(&k, out);
                    out.push(b':');
                    v.write(out);
                }
                out.push(b'}');
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{MapAccess, SeqAccess, Visitor};
        use std::borrow::Cow;

        /// A map key, borrowed when the text allows.
        struct Key<'a>(Cow<'a, str>);
        impl<'de> Deserialize<'de> for Key<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct KeyVisitor;
                impl<'de> Visitor<'de> for KeyVisitor {
                    type Value = Key<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a string key")
                    }
                    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                        Ok(Key(Cow::Borrowed(v)))
                    }
                    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                        Ok(Key(Cow::Owned(v.to_owned())))
                    }
                    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                        Ok(Key(Cow::Owned(v)))
                    }
                }
                d.deserialize_str(KeyVisitor)
            }
        }

        struct NodeVisitor;
        // Each number arm as `serde_json::Value` takes it, so both give the same `Number`.
        impl<'de> Visitor<'de> for NodeVisitor {
            type Value = Node<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
                Ok(Node::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
                Ok(Node::Number(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
                Ok(serde_json::Number::from_f64(v).map_or(Node::Null, Node::Number))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
                Ok(Node::String(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
                Ok(Node::String(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
                Ok(Node::String(Cow::Owned(v)))
            }
            fn visit_none<E>(self) -> Result<Node<'de>, E> {
                Ok(Node::Null)
            }
            fn visit_unit<E>(self) -> Result<Node<'de>, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
                Deserialize::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(v) = seq.next_element()? {
                    items.push(v);
                }
                Ok(Node::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, Node<'de>>()? {
                    members.push((k, v));
                }
                Ok(Node::Object(members))
            }
        }
        d.deserialize_any(NodeVisitor)
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    // Most strings need no escape (serde_json escapes only `"`, `\` and control characters):
    // copied as they are, the same bytes.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // serde_json's escaping into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Whether `s` is already a pseudonym (`anon-` and 32 lowercase hex digits): the canonical form
/// and erasure leave such a value as it is, so pseudonymizing twice changes nothing.
pub fn is_pseudonym(s: &str) -> bool {
    s.strip_prefix(PSEUDONYM_PREFIX).is_some_and(|h| {
        h.len() == 32
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A time as the canonical form and block headers write it: RFC 3339, UTC, microseconds (the
/// precision every backend stores).
pub fn canonical_time(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub use crate::entry::tenant_key;

/// An entry's columns as stored: what its leaf covers. `detail` is the stored JSON as the
/// database hands it back, not its decoded entry: the keys the stored form leaves out are put
/// back ([`restore_detail`](crate::entry::restore_detail)), so a row in either form hashes the
/// same, and any other key added by hand is caught like any other alteration.
#[derive(Clone, Copy, Debug)]
pub struct StoredEntry<'a> {
    /// `id`.
    pub id: Uuid,
    /// `created_at`.
    pub created_at: DateTime<Utc>,
    /// `organization_id`.
    pub organization_id: Option<&'a str>,
    /// `team_id`.
    pub team_id: Option<&'a str>,
    /// `user_id` (personal).
    pub user_id: Option<&'a str>,
    /// `user_name` (personal).
    pub user_name: Option<&'a str>,
    /// `impersonated_by` (personal).
    pub impersonated_by: Option<&'a str>,
    /// `was_impersonated`.
    pub was_impersonated: bool,
    /// `is_system`.
    pub is_system: bool,
    /// `scope`.
    pub scope: &'a str,
    /// `item_id` (personal when `scope` is a user scope).
    pub item_id: Option<&'a str>,
    /// `activity`.
    pub activity: &'a str,
    /// The stored `detail` JSON.
    pub detail: StoredDetail<'a>,
    /// `request_id`.
    pub request_id: Option<&'a str>,
    /// `correlation_id`.
    pub correlation_id: Option<&'a str>,
    /// `ip_address` (personal).
    pub ip_address: Option<&'a str>,
    /// `user_agent` (personal).
    pub user_agent: Option<&'a str>,
    /// `client`.
    pub client: Option<&'a str>,
}

/// An entry's stored `detail`, as its reader has it.
#[derive(Clone, Copy, Debug)]
pub enum StoredDetail<'a> {
    /// A value (one the library built, or read with [`parse_json`]).
    Value(&'a Value),
    /// The JSON text the database handed back, read as [`parse_json`] reads it. Text that is
    /// not JSON (only a row altered by hand can hold it) enters the canonical bytes as it is
    /// after a `0xFF` byte, which no canonical JSON holds: it gives a leaf no valid detail
    /// gives, so the check reports the entry instead of failing on it.
    Text(&'a str),
}

impl<'a> StoredEntry<'a> {
    /// `entry` as the library stores it, `detail` being its stored JSON in either form
    /// (`serde_json::to_value(&entry.detail)`, or of `entry.detail.stored(&entry.scope)`).
    pub fn of(entry: &'a ActivityEntry, detail: &'a Value) -> Self {
        StoredEntry {
            id: entry.id,
            created_at: entry.created_at,
            organization_id: entry.organization_id.as_deref(),
            team_id: entry.team_id.as_deref(),
            user_id: entry.user_id.as_deref(),
            user_name: entry.user_name.as_deref(),
            impersonated_by: entry.impersonated_by.as_deref(),
            was_impersonated: entry.was_impersonated,
            is_system: entry.is_system,
            scope: &entry.scope,
            item_id: entry.item_id.as_deref(),
            activity: &entry.activity,
            detail: StoredDetail::Value(detail),
            request_id: entry.request_id.as_deref(),
            correlation_id: entry.correlation_id.as_deref(),
            ip_address: entry.ip_address.as_deref(),
            user_agent: entry.user_agent.as_deref(),
            client: entry.client.as_deref(),
        }
    }
}

/// The canonical form of `entry`: what its leaf hash covers, as a JSON value (what exports
/// for auditors carry; [`canonical_json`] of it is [`canonical_entry_bytes`]).
///
/// Every column of the entry is in it (`trace_id`/`span_id` aside: tracing is never part of
/// the audit record), `detail` as stored with the keys its stored form leaves out put back
/// (the API shape, for a detail the library wrote). The personal ones enter as keyed pseudonyms
/// (`alias`, HMAC under the application's erasure key): `user_id`, `user_name`,
/// `impersonated_by`, `ip_address`, `user_agent`, and, for an entry whose scope is one of
/// `user_scopes` (its item is a person), `item_id` and every string in `detail.name`,
/// `detail.short_id` and the changes' `before` and `after`. Erasure writes exactly these
/// pseudonyms into the row, so the canonical form (and every hash over it) is the same before
/// and after a user is erased, while changing any of these fields before erasure still
/// changes it.
pub fn canonical_entry(
    entry: &StoredEntry<'_>,
    user_scopes: &[String],
    alias: &mut dyn FnMut(&str) -> String,
) -> Value {
    // The bytes are JSON by construction (but for a detail that is not: then `Null`); read
    // back as they were written.
    let bytes = canonical_entry_bytes(entry, user_scopes, alias);
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| parse_json(text).ok())
        .unwrap_or(Value::Null)
}

/// The canonical bytes of `entry` (see [`canonical_entry`]): sorted keys, no whitespace,
/// written directly with no JSON tree in between — what the sealer and `verify` hash.
pub fn canonical_entry_bytes(
    entry: &StoredEntry<'_>,
    user_scopes: &[String],
    alias: &mut dyn FnMut(&str) -> String,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(768);
    let person_item = user_scopes.iter().any(|s| s == entry.scope);
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, k: &str| {
        out.push(if first { b'{' } else { b',' });
        first = false;
        write_string(k, out);
        out.push(b':');
    };
    let opt = |out: &mut Vec<u8>, v: Option<&str>| match v {
        Some(s) => write_string(s, out),
        None => out.extend_from_slice(b"null"),
    };
    let personal =
        |out: &mut Vec<u8>, v: Option<&str>, alias: &mut dyn FnMut(&str) -> String| match v {
            Some(s) if is_pseudonym(s) => write_string(s, out),
            Some(s) => write_string(&alias(s), out),
            None => out.extend_from_slice(b"null"),
        };
    key(&mut out, "activity");
    write_string(entry.activity, &mut out);
    key(&mut out, "client");
    opt(&mut out, entry.client);
    key(&mut out, "correlation_id");
    opt(&mut out, entry.correlation_id);
    key(&mut out, "created_at");
    write_string(&canonical_time(&entry.created_at), &mut out);
    key(&mut out, "detail");
    let mut alias_detail = |s: &str| {
        if is_pseudonym(s) {
            s.to_owned()
        } else {
            alias(s)
        }
    };
    match entry.detail {
        StoredDetail::Value(detail) => {
            let mut detail = detail.clone();
            crate::entry::restore_detail(&mut detail, entry.scope);
            if person_item {
                pseudonymize_detail(&mut detail, &mut alias_detail);
            }
            write_canonical(&detail, &mut out);
        }
        StoredDetail::Text(text) => match serde_json::from_str::<Node<'_>>(text) {
            Ok(mut detail) => {
                detail.restore(entry.scope);
                if person_item {
                    detail.pseudonymize(&mut alias_detail);
                }
                detail.write(&mut out);
            }
            Err(_) => {
                out.push(0xFF);
                out.extend_from_slice(text.as_bytes());
            }
        },
    }
    key(&mut out, "id");
    let mut id = Uuid::encode_buffer();
    write_string(entry.id.hyphenated().encode_lower(&mut id), &mut out);
    key(&mut out, "impersonated_by");
    personal(&mut out, entry.impersonated_by, alias);
    key(&mut out, "ip_address");
    personal(&mut out, entry.ip_address, alias);
    key(&mut out, "is_system");
    out.extend_from_slice(if entry.is_system { b"true" } else { b"false" });
    key(&mut out, "item_id");
    if person_item {
        personal(&mut out, entry.item_id, alias);
    } else {
        opt(&mut out, entry.item_id);
    }
    key(&mut out, "organization_id");
    opt(&mut out, entry.organization_id);
    key(&mut out, "request_id");
    opt(&mut out, entry.request_id);
    key(&mut out, "scope");
    write_string(entry.scope, &mut out);
    key(&mut out, "team_id");
    opt(&mut out, entry.team_id);
    key(&mut out, "user_agent");
    personal(&mut out, entry.user_agent, alias);
    key(&mut out, "user_id");
    personal(&mut out, entry.user_id, alias);
    key(&mut out, "user_name");
    personal(&mut out, entry.user_name, alias);
    key(&mut out, "v");
    out.extend_from_slice(FORMAT.to_string().as_bytes());
    key(&mut out, "was_impersonated");
    out.extend_from_slice(if entry.was_impersonated {
        b"true"
    } else {
        b"false"
    });
    out.push(b'}');
    out
}

/// Every string in `detail.name`, `detail.short_id` and the changes' `before`/`after`, through
/// `f` (the places erasure rewrites in an entry about a person).
pub fn pseudonymize_detail(detail: &mut Value, f: &mut dyn FnMut(&str) -> String) {
    let Some(map) = detail.as_object_mut() else {
        return;
    };
    let mut swap = |v: &mut Value| {
        if let Value::String(s) = v {
            *s = f(s);
        }
    };
    for key in ["name", "short_id"] {
        if let Some(v) = map.get_mut(key) {
            swap(v);
        }
    }
    if let Some(Value::Array(changes)) = map.get_mut("changes") {
        for change in changes.iter_mut().filter_map(Value::as_object_mut) {
            for key in ["before", "after"] {
                if let Some(v) = change.get_mut(key) {
                    swap(v);
                }
            }
        }
    }
}

/// Where an entry sits in the log's order: `(created_at, id)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryKey {
    /// The entry's time.
    #[serde(with = "micros")]
    pub created_at: DateTime<Utc>,
    /// The entry's id.
    pub id: Uuid,
}

impl EntryKey {
    /// The key of a canonical entry (see [`canonical_entry`]).
    pub fn of_canonical(entry: &Value) -> Option<Self> {
        let at = entry.get("created_at")?.as_str()?;
        let id = entry.get("id")?.as_str()?;
        Some(EntryKey {
            created_at: DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc),
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// Times in headers as [`canonical_time`] writes them.
mod micros {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::canonical_time(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

/// What a block seals; signed, it is a [`Checkpoint`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BlockHeader {
    /// [`FORMAT`].
    pub v: u32,
    /// The tenant key ([`tenant_key`]).
    pub tenant: String,
    /// 1 for the tenant's first block, then one more per block.
    pub seq: u64,
    /// The window starts after this entry (the previous block's last); `None` for the first.
    pub after: Option<EntryKey>,
    /// The window ends with this entry, the block's last.
    pub last: EntryKey,
    /// How many of the tenant's entries the window holds.
    pub entries: u64,
    /// Merkle root over their canonical bytes, in key order (hex).
    pub root: String,
    /// The previous block's [`head`](Self::head) (hex; 64 zeros for the first).
    pub prev: String,
    /// Every entry up to this time had been sealed when the block was made (the sealer's
    /// horizon): a tenant's entry at or before it that no block covers was not there then.
    #[serde(with = "micros")]
    pub sealed_through: DateTime<Utc>,
    /// The scopes whose items were people when the block was sealed (their item ids and
    /// values entered as pseudonyms).
    pub user_scopes: Vec<String>,
    /// First 8 bytes of SHA-256 of the signing key's public half (hex): which key to check.
    pub key_id: String,
    /// Fingerprint of the erasure key the entries' pseudonyms were made with (16 hex digits of
    /// a keyed hash: it tells keys apart and reveals nothing of them). Checking the block needs
    /// the same key; under another one every pseudonym differs. Empty in headers sealed before
    /// it was named (absent from their signed bytes, so their signatures still hold).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub erasure_key: String,
}

impl BlockHeader {
    /// A header; `prev` is the previous block's header, if any.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tenant: String,
        prev: Option<&BlockHeader>,
        last: EntryKey,
        entries: u64,
        root: Hash,
        sealed_through: DateTime<Utc>,
        user_scopes: Vec<String>,
        erasure_key: String,
        key: &VerifyingKey,
    ) -> Self {
        BlockHeader {
            v: FORMAT,
            tenant,
            seq: prev.map_or(1, |p| p.seq.saturating_add(1)),
            after: prev.map(|p| p.last.clone()),
            last,
            entries,
            root: hex::encode(root),
            prev: prev.map_or_else(|| hex::encode([0u8; 32]), |p| hex::encode(p.head())),
            sealed_through,
            user_scopes,
            key_id: key_id(key),
            erasure_key,
        }
    }

    /// The bytes signed and hashed: the header's [`canonical_json`].
    pub fn to_bytes(&self) -> Vec<u8> {
        canonical_json(&serde_json::to_value(self).unwrap_or(Value::Null))
    }

    /// `SHA-256` of [`to_bytes`](Self::to_bytes): what the next block names as `prev`.
    pub fn head(&self) -> Hash {
        Sha256::digest(self.to_bytes()).into()
    }

    /// Whether an entry at `key` falls in this block's window.
    pub fn covers(&self, key: &EntryKey) -> bool {
        self.after.as_ref().is_none_or(|a| key > a) && key <= &self.last
    }
}

/// The id of a verifying key as headers name it.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// A signed [`BlockHeader`]: stored beside the log and published outside it (the stream), so
/// deleting the newest entries together with their blocks is still seen by whoever kept it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// What is signed.
    pub header: BlockHeader,
    /// Ed25519 signature over the header's bytes (hex).
    pub signature: String,
}

impl Checkpoint {
    /// Sign `header` with the application's key.
    pub fn sign(header: BlockHeader, key: &SigningKey) -> Self {
        let mut message = SIGNING_CONTEXT.to_vec();
        message.extend_from_slice(&header.to_bytes());
        let signature = key.sign(&message);
        Checkpoint {
            header,
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// Whether the signature is `key`'s over exactly this header.
    pub fn verify_signature(&self, key: &VerifyingKey) -> bool {
        let Ok(bytes) = hex::decode(&self.signature) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes.as_slice()) else {
            return false;
        };
        let mut message = SIGNING_CONTEXT.to_vec();
        message.extend_from_slice(&self.header.to_bytes());
        self.header.key_id == key_id(key)
            && key.verify(&message, &Signature::from_bytes(&bytes)).is_ok()
    }
}

/// Proof that one entry is in a signed block: its leaf's audit path and the block's
/// checkpoint. [`verify`](Self::verify) needs only the entry's canonical form and the public key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    /// The entry's position in its block.
    pub index: u64,
    /// Sibling hashes from the leaf up (hex).
    pub path: Vec<String>,
    /// The block's signed header.
    pub checkpoint: Checkpoint,
}

impl InclusionProof {
    /// Check that `entry` (its [`canonical_entry`]) is in the block and the block is `key`'s.
    pub fn verify(&self, entry: &Value, key: &VerifyingKey) -> Result<(), ActivityError> {
        let fail = |why: &str| Err(ActivityError::Integrity(why.to_owned()));
        if !self.checkpoint.verify_signature(key) {
            return fail("the checkpoint's signature is not the key's");
        }
        let header = &self.checkpoint.header;
        let Some(at) = EntryKey::of_canonical(entry) else {
            return fail("the entry has no id or time");
        };
        if !header.covers(&at) {
            return fail("the entry is outside the block's window");
        }
        let mut path = Vec::with_capacity(self.path.len());
        for p in &self.path {
            let Some(h) = decode_hash(p) else {
                return fail("a path hash is not 32 bytes of hex");
            };
            path.push(h);
        }
        let leaf = leaf_hash(&canonical_json(entry));
        match root_from_inclusion(leaf, self.index, header.entries, &path) {
            Some(root) if hex::encode(root) == header.root => Ok(()),
            _ => fail("the entry's path does not lead to the block's root"),
        }
    }

    /// Size in binary form: index and size (8 bytes each), the path, the signature and the
    /// header's bytes. The entry itself is not part of it.
    pub fn encoded_len(&self) -> usize {
        16 + 32 * self.path.len() + 64 + self.checkpoint.header.to_bytes().len()
    }
}

/// A 32-byte hash from hex.
pub fn decode_hash(text: &str) -> Option<Hash> {
    hex::decode(text).ok()?.try_into().ok()
}

/// One thing wrong with a sealed history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum Problem {
    /// A checkpoint's signature is not the key's (forged or altered header).
    BadSignature {
        /// Tenant key.
        tenant: String,
        /// Block.
        seq: u64,
    },
    /// A block does not follow the one before it (a block deleted, reordered or replaced).
    BrokenChain {
        /// Tenant key.
        tenant: String,
        /// The block whose `prev`, `seq` or window does not match its predecessor.
        seq: u64,
    },
    /// The entries in a block's window are not the ones sealed: one altered, deleted or
    /// inserted.
    Mismatch {
        /// Tenant key.
        tenant: String,
        /// Block.
        seq: u64,
        /// Entries sealed.
        sealed: u64,
        /// Entries found in its window now.
        found: u64,
    },
    /// A trusted checkpoint (kept outside the database) is missing or different here: the
    /// newest blocks were deleted or rewritten.
    Truncated {
        /// Tenant key.
        tenant: String,
        /// The checkpoint's block.
        seq: u64,
    },
    /// The block's pseudonyms were made under another erasure key than the one configured
    /// (the key was rotated, or the wrong one is configured): its entries cannot be checked
    /// until the key it names is configured. Not evidence of tampering by itself.
    ErasureKeyChanged {
        /// Tenant key.
        tenant: String,
        /// Block.
        seq: u64,
    },
    /// The block holds as many entries as were sealed but does not match, and one of them,
    /// about a person of `scope`, was erased although `scope` was not a user scope when the
    /// block was sealed (it was added to the configured user scopes later): the erasure
    /// rewrote an item id the block hashed as it was, so the block can no longer be checked.
    /// Not evidence of tampering by itself, and no proof of its absence either: an alteration
    /// of the same block hides behind it. List a scope as a user scope before its entries are
    /// sealed.
    UserScopeAdded {
        /// Tenant key.
        tenant: String,
        /// Block.
        seq: u64,
        /// The scope erased outside the block's user scopes.
        scope: String,
    },
    /// An entry at or before the newest horizon that no block covers: written after its time
    /// was sealed (forged, or a transaction that outlived the sealer's grace).
    Unsealed {
        /// Tenant key.
        tenant: String,
        /// The entry.
        id: Uuid,
        /// Its time.
        created_at: DateTime<Utc>,
    },
}

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Verification {
    /// Blocks whose signature, chain and entries were checked.
    pub blocks: u64,
    /// Entries hashed.
    pub entries: u64,
    /// Everything wrong; empty when the history is intact.
    pub problems: Vec<Problem>,
}

impl Verification {
    /// No problem found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Where a checked chain may start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainStart {
    /// At the tenant's first block (or right after the `before` block given).
    First,
    /// At any block: an export of a later range (its first block's predecessor is not there).
    Anywhere,
}

/// Check one tenant's chain of checkpoints (sorted by `seq`): signatures, consecutive numbers,
/// each `prev` the head of the one before, each window starting where the last ended. `before`
/// is the block just before the first, when the check starts mid-chain.
pub fn check_chain(
    checkpoints: &[Checkpoint],
    before: Option<&BlockHeader>,
    start: ChainStart,
    key: &VerifyingKey,
    out: &mut Verification,
) {
    let mut prev = before.cloned();
    for (i, cp) in checkpoints.iter().enumerate() {
        if i == 0 && prev.is_none() && start == ChainStart::Anywhere {
            if !cp.verify_signature(key) {
                out.problems.push(Problem::BadSignature {
                    tenant: cp.header.tenant.clone(),
                    seq: cp.header.seq,
                });
            }
            prev = Some(cp.header.clone());
            continue;
        }
        let h = &cp.header;
        if !cp.verify_signature(key) {
            out.problems.push(Problem::BadSignature {
                tenant: h.tenant.clone(),
                seq: h.seq,
            });
        }
        let links = match &prev {
            Some(p) => {
                p.seq.checked_add(1) == Some(h.seq)
                    && h.prev == hex::encode(p.head())
                    && h.after.as_ref() == Some(&p.last)
                    && h.tenant == p.tenant
            }
            None => h.seq == 1 && h.after.is_none() && h.prev == hex::encode([0u8; 32]),
        };
        if !links {
            out.problems.push(Problem::BrokenChain {
                tenant: h.tenant.clone(),
                seq: h.seq,
            });
        }
        prev = Some(h.clone());
    }
}

/// Check one block against the leaves found in its window now (in key order).
pub fn check_block(header: &BlockHeader, leaves: &[Hash], out: &mut Verification) {
    check_block_erased(header, leaves, None, out);
}

/// [`check_block`], where `erased` is the scope of an entry in the window that
/// [`erased_after_sealing`] found: a block that holds as many entries as were sealed but does
/// not match is then reported as [`Problem::UserScopeAdded`] (an erasure changes no count: a
/// block missing or gaining an entry is a [`Problem::Mismatch`] whatever else it holds).
pub fn check_block_erased(
    header: &BlockHeader,
    leaves: &[Hash],
    erased: Option<&str>,
    out: &mut Verification,
) {
    out.blocks += 1;
    out.entries += leaves.len() as u64;
    if leaves.len() as u64 != header.entries || hex::encode(merkle_root(leaves)) != header.root {
        let same_count = leaves.len() as u64 == header.entries;
        out.problems.push(match erased.filter(|_| same_count) {
            Some(scope) => Problem::UserScopeAdded {
                tenant: header.tenant.clone(),
                seq: header.seq,
                scope: scope.to_owned(),
            },
            None => Problem::Mismatch {
                tenant: header.tenant.clone(),
                seq: header.seq,
                sealed: header.entries,
                found: leaves.len() as u64,
            },
        });
    }
}

/// `scope`, when an entry of it in `header`'s window was erased as a person's although `scope`
/// was not a user scope when the block was sealed: its item id is a pseudonym the block did not
/// hash (the scope was added to the configuration's user scopes later, then the person erased).
pub fn erased_after_sealing<'a>(
    header: &BlockHeader,
    scope: &'a str,
    item_id: Option<&str>,
) -> Option<&'a str> {
    (item_id.is_some_and(is_pseudonym) && !header.user_scopes.iter().any(|s| s == scope))
        .then_some(scope)
}

/// Check an export (canonical entries, any order) against checkpoints (any order), with no
/// database: each tenant's checkpoints form one unbroken chain (from the tenant's first block,
/// or from the first one given for an export of a later range), every block's window holds
/// exactly the entries sealed in it, and every exported entry is in some block. The
/// checkpoints say what the export must hold: take them from where the application keeps
/// them outside the database (the stream), and an export missing its newest entries or
/// blocks fails. Read the export's lines with [`parse_json`].
pub fn verify_export(
    entries: impl IntoIterator<Item = Value>,
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
) -> Result<Verification, ActivityError> {
    canonical_numbers()?;
    let mut out = Verification::default();
    // Per tenant: each entry's key, leaf, and scope and item id.
    type Leaf = (EntryKey, Hash, (Option<String>, Option<String>));
    let mut by_tenant: BTreeMap<String, Vec<Leaf>> = BTreeMap::new();
    for entry in entries {
        let key_of = EntryKey::of_canonical(&entry).ok_or_else(|| {
            ActivityError::Integrity("an exported entry has no id or time".into())
        })?;
        let tenant = tenant_key(
            entry.get("organization_id").and_then(Value::as_str),
            entry.get("team_id").and_then(Value::as_str),
        );
        let text = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_owned);
        let item = (text("scope"), text("item_id"));
        by_tenant.entry(tenant).or_default().push((
            key_of,
            leaf_hash(&canonical_json(&entry)),
            item,
        ));
    }
    let mut chains: BTreeMap<String, Vec<Checkpoint>> = BTreeMap::new();
    for cp in checkpoints {
        chains
            .entry(cp.header.tenant.clone())
            .or_default()
            .push(cp.clone());
    }
    let horizon = checkpoints.iter().map(|c| c.header.sealed_through).max();
    for (tenant, chain) in &mut chains {
        chain.sort_by_key(|c| c.header.seq);
        chain.dedup_by(|a, b| a == b);
        check_chain(chain, None, ChainStart::Anywhere, key, &mut out);
        let mut leaves = by_tenant.remove(tenant).unwrap_or_default();
        leaves.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rest = leaves.as_slice();
        for cp in chain.iter() {
            let h = &cp.header;
            // Entries before this block's window that no earlier block took.
            let start = rest
                .iter()
                .position(|(k, _, _)| h.after.as_ref().is_none_or(|a| k > a))
                .unwrap_or(rest.len());
            for (k, _, _) in &rest[..start] {
                unsealed(&mut out, tenant, k);
            }
            rest = &rest[start..];
            let end = rest
                .iter()
                .position(|(k, _, _)| k > &h.last)
                .unwrap_or(rest.len());
            let (window, after) = rest.split_at(end);
            rest = after;
            let erased = window.iter().find_map(|(_, _, (scope, item))| {
                erased_after_sealing(h, scope.as_deref()?, item.as_deref())
            });
            let window: Vec<Hash> = window.iter().map(|(_, l, _)| *l).collect();
            check_block_erased(h, &window, erased, &mut out);
        }
        for (k, _, _) in rest {
            if horizon.is_some_and(|t| k.created_at <= t) {
                unsealed(&mut out, tenant, k);
            }
        }
    }
    // Tenants with entries and no checkpoint at all.
    for (tenant, leaves) in by_tenant {
        for (k, _, _) in leaves {
            if horizon.is_some_and(|t| k.created_at <= t) {
                unsealed(&mut out, &tenant, &k);
            }
        }
    }
    Ok(out)
}

fn unsealed(out: &mut Verification, tenant: &str, k: &EntryKey) {
    out.problems.push(Problem::Unsealed {
        tenant: tenant.to_owned(),
        id: k.id,
        created_at: k.created_at,
    });
}

/// A verifying key from 32 bytes of hex.
pub fn verifying_key_from_hex(text: &str) -> Result<VerifyingKey, ActivityError> {
    let bytes: [u8; 32] = hex::decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ActivityError::Integrity("a public key is 32 bytes of hex".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|_| ActivityError::Integrity("not an ed25519 public key".into()))
}

#[cfg(test)]
mod tests {

    /// Any JSON value: nested objects and arrays of every scalar.
    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,6}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The text canonicalizer and the tree one give the same bytes for any value, written
        /// compactly or pretty (other whitespace, escapes as serde_json writes them).
        #[test]
        fn canonical_text_is_canonical_json(value in any_json()) {
            let compact = serde_json::to_string(&value).unwrap_or_default();
            let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
            let expected = canonical_json(&value);
            proptest::prop_assert_eq!(canonical_json_text(&compact).ok(), Some(expected.clone()));
            proptest::prop_assert_eq!(canonical_json_text(&pretty).ok(), Some(expected));
            proptest::prop_assert_eq!(parse_json(&compact).ok(), Some(value));
        }
    }

    fn any_detail() -> impl proptest::strategy::Strategy<Value = crate::Detail> {
        use crate::{Change, ChangeAction, Detail, Trigger};
        use proptest::prelude::*;
        let text = || proptest::option::of(".{0,6}");
        let action = prop_oneof![
            Just(ChangeAction::Changed),
            Just(ChangeAction::Created),
            Just(ChangeAction::Deleted),
        ];
        let change = (
            prop_oneof![Just("Flag".to_owned()), Just("User".to_owned()), ".{0,4}"],
            action,
            text(),
            any_json(),
            any_json(),
        )
            .prop_map(|(kind, action, field, before, after)| {
                Change::new(kind, action, field.as_deref(), before, after)
            });
        let trigger = proptest::option::of((".{0,4}", ".{0,4}", any_json()).prop_map(
            |(job_type, job_id, payload)| Trigger::new(job_type, job_id).with_payload(payload),
        ));
        (
            (text(), text(), text()),
            proptest::collection::vec(change, 0..4),
            trigger,
            proptest::option::of(any_json()),
        )
            .prop_map(
                |((name, short_id, kind), changes, trigger, context)| Detail {
                    name,
                    short_id,
                    kind,
                    changes,
                    trigger,
                    // `Some(null)` reads back as `None` in either form.
                    context: context.filter(|c| !c.is_null()),
                },
            )
    }

    fn entry_with_detail<'a>(scope: &'a str, detail: &'a str) -> StoredEntry<'a> {
        StoredEntry {
            id: Uuid::nil(),
            created_at: DateTime::UNIX_EPOCH,
            organization_id: Some("o"),
            team_id: None,
            user_id: Some("u"),
            user_name: None,
            impersonated_by: None,
            was_impersonated: false,
            is_system: false,
            scope,
            item_id: Some("i"),
            activity: "updated",
            detail: StoredDetail::Text(detail),
            request_id: None,
            correlation_id: None,
            ip_address: None,
            user_agent: None,
            client: None,
        }
    }

    proptest::proptest! {
        /// The compact stored form reads back as the detail written, is what converting the
        /// full form gives, and hashes as the full form does (for an ordinary item and a
        /// person): a row's form never changes its entry or its leaf.
        #[test]
        fn the_compact_form_is_the_full_form_less_what_reading_restores(
            detail in any_detail(),
            scope in proptest::prelude::prop_oneof![
                proptest::strategy::Just("Flag"),
                proptest::strategy::Just("User"),
            ],
        ) {
            use crate::entry::{compact_detail, restore_detail};
            let full = serde_json::to_value(&detail).unwrap_or_default();
            let compact = serde_json::to_value(detail.stored(scope)).unwrap_or_default();
            proptest::prop_assert_eq!(
                crate::Detail::from_stored(compact.clone(), scope).ok(),
                Some(detail.clone())
            );
            let mut restored = compact.clone();
            restore_detail(&mut restored, scope);
            proptest::prop_assert_eq!(&restored, &full);
            let mut converted = full.clone();
            compact_detail(&mut converted, scope);
            proptest::prop_assert_eq!(&converted, &compact);
            let users = ["User".to_owned()];
            let mut alias = |s: &str| format!("p:{s}");
            let full_text = full.to_string();
            let compact_text = compact.to_string();
            let bytes = |text: &str, alias: &mut dyn FnMut(&str) -> String| {
                canonical_entry_bytes(&entry_with_detail(scope, text), &users, alias)
            };
            let expected = bytes(&full_text, &mut alias);
            proptest::prop_assert_eq!(bytes(&compact_text, &mut alias), expected.clone());
            let mut by_value = entry_with_detail(scope, "");
            by_value.detail = StoredDetail::Value(&compact);
            proptest::prop_assert_eq!(canonical_entry_bytes(&by_value, &users, &mut alias), expected);
        }

        /// For any JSON in `detail` (a row altered by hand included), converting it never
        /// changes what reading restores, and the text and value paths restore it alike.
        #[test]
        fn converting_any_detail_keeps_what_it_restores_to(value in any_json()) {
            use crate::entry::{compact_detail, restore_detail};
            let mut restored = value.clone();
            restore_detail(&mut restored, "Flag");
            let mut converted = value.clone();
            compact_detail(&mut converted, "Flag");
            restore_detail(&mut converted, "Flag");
            proptest::prop_assert_eq!(&converted, &restored);
            let text = value.to_string();
            let mut alias = |s: &str| s.to_owned();
            let by_text = canonical_entry_bytes(&entry_with_detail("Flag", &text), &[], &mut alias);
            let mut by_value = entry_with_detail("Flag", "");
            by_value.detail = StoredDetail::Value(&value);
            proptest::prop_assert_eq!(canonical_entry_bytes(&by_value, &[], &mut alias), by_text);
        }
    }

    proptest::proptest! {
        /// Strings are written exactly as serde_json writes them, escapes and all.
        #[test]
        fn strings_are_written_as_serde_json_writes_them(s in proptest::prelude::any::<String>()) {
            let mut out = Vec::new();
            write_string(&s, &mut out);
            proptest::prop_assert_eq!(out, serde_json::to_vec(&s).unwrap_or_default());
        }
    }

    /// This build writes numbers in the canonical form (no `arbitrary_precision`): sealing and
    /// checking are allowed.
    #[test]
    fn this_build_writes_canonical_numbers() {
        assert!(canonical_numbers().is_ok());
        assert_eq!(
            canonical_json(&serde_json::json!([1.50, 1e2, -0.0])),
            b"[1.5,100.0,-0.0]"
        );
    }

    /// serde_json's private markers are ordinary keys to `parse_json` and the canonical form,
    /// whatever serde_json's features; a person's detail pseudonymized from its text is the
    /// one pseudonymized from its value; text that is not JSON gives bytes no JSON gives.
    #[test]
    fn stored_text_is_read_as_json_defines_it() {
        for text in [
            r#"{"$serde_json::private::RawValue":"[1]"}"#,
            r#"{"$serde_json::private::RawValue":"[1]","a":1}"#,
            r#"{"$serde_json::private::Number":"1.50"}"#,
        ] {
            let value = parse_json(text).unwrap_or_default();
            assert!(value.is_object(), "{text}: {value}");
            assert_eq!(canonical_json_text(text).ok(), Some(canonical_json(&value)));
        }
        let mut e = ActivityEntry::new("User", "updated").with_item_id("alice");
        e.detail.name = Some("Alice".into());
        e.detail.changes.push(crate::Change::new(
            "User",
            crate::ChangeAction::Changed,
            Some("email"),
            serde_json::json!("a@x.test"),
            serde_json::json!({"nested": "kept"}),
        ));
        let detail = serde_json::to_value(&e.detail).unwrap_or_default();
        let text = detail.to_string();
        let scopes = ["User".to_owned()];
        let alias = |v: &str| format!("alias of {v}");
        for scopes in [&scopes[..], &[]] {
            let from_value =
                canonical_entry_bytes(&StoredEntry::of(&e, &detail), scopes, &mut |v| alias(v));
            let mut stored = StoredEntry::of(&e, &detail);
            stored.detail = StoredDetail::Text(&text);
            let from_text = canonical_entry_bytes(&stored, scopes, &mut |v| alias(v));
            assert_eq!(from_text, from_value);
        }
        let mut stored = StoredEntry::of(&e, &detail);
        stored.detail = StoredDetail::Text("{\"name\": ");
        let bytes = canonical_entry_bytes(&stored, &[], &mut |v| alias(v));
        assert!(std::str::from_utf8(&bytes).is_err());
        assert!(bytes.windows(10).any(|w| w == b"\xFF{\"name\": "));
    }

    #[test]
    fn canonical_text_agrees_on_texts_a_database_may_hand_back() {
        for text in [
            r#"{"b": 1, "a": [1.0, -0, -0.0, 1e2, 1E-7, 12345678901234567890, 18446744073709551616]}"#,
            r#"{"a": 1, "a": 2, "b": {"x": null, "x": true}}"#,
            r#"{"s": "\u00e9\ud83d\ude00 \" \\ \/ \b\f\n\r\t \u0001 é", "\u0061": 1, "a": 0}"#,
            r#"["", {}, [], "\u2028\u2029"]"#,
            r#""just a string""#,
            "3.141592653589793238462643383279",
            " null ",
        ] {
            let value: Value = serde_json::from_str(text).unwrap_or_default();
            assert_eq!(
                canonical_json_text(text).ok(),
                Some(canonical_json(&value)),
                "{text}"
            );
        }
        for bad in ["", "{", r#"{"a":}"#, "1e400", "[1,]", "nul", r#"{"a":1}x"#] {
            assert!(canonical_json_text(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad}");
        }
    }
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    #[test]
    fn every_inclusion_path_leads_to_the_root() {
        for n in 1..40 {
            let ls = leaves(n);
            let root = merkle_root(&ls);
            for i in 0..n {
                let path = inclusion_path(&ls, i);
                assert_eq!(
                    root_from_inclusion(ls[i], i as u64, n as u64, &path),
                    Some(root),
                    "{i} of {n}"
                );
                if n > 1 {
                    let other = (i + 1) % n;
                    assert_ne!(
                        root_from_inclusion(ls[other], i as u64, n as u64, &path),
                        Some(root)
                    );
                }
            }
        }
    }

    #[test]
    fn rfc6962_empty_and_pair() {
        assert_eq!(
            hex::encode(merkle_root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let l = leaves(2);
        assert_eq!(merkle_root(&l), node_hash(&l[0], &l[1]));
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":0,"y":"é"}],"c":null}}"#)
            .unwrap_or(Value::Null);
        assert_eq!(
            String::from_utf8(canonical_json(&a)).unwrap_or_default(),
            r#"{"a":{"c":null,"d":[1,{"y":"é","z":0}]},"b":1}"#
        );
    }

    #[test]
    fn canonical_bytes_are_the_canonical_json_of_the_canonical_entry() {
        use crate::entry::{Change, ChangeAction};
        let alias = |v: &str| format!("anon-{:032x}", v.len());
        let scopes = vec!["User".to_owned()];
        let mut cases = Vec::new();
        for scope in ["User", "FeatureFlag"] {
            let mut e = ActivityEntry::new(scope, "updated").with_item_id("7");
            e.detail.name = Some("Zoë \"quoted\" \u{1}".into());
            e.detail.changes.push(Change::new(
                scope,
                ChangeAction::Changed,
                Some("display"),
                Value::String("Al".into()),
                serde_json::json!({"b": [1, 2.5, null], "a": "x"}),
            ));
            e.detail.changes.push(Change::new(
                scope,
                ChangeAction::Deleted,
                None,
                serde_json::json!(12345678901234567u64),
                Value::Null,
            ));
            e.detail.context = Some(serde_json::json!({"z": 1, "a": {"y": true, "b": "é"}}));
            e.detail.trigger = Some(crate::Trigger::new("sync", "9"));
            e.detail.kind = Some("beta".into());
            e.user_id = Some("u1".into());
            e.user_name = Some("anon-0123456789abcdef0123456789abcdef".into());
            e.ip_address = Some("10.0.0.1".into());
            e.was_impersonated = true;
            cases.push(e.clone());
            e.detail = crate::entry::Detail::default();
            e.user_id = None;
            cases.push(e);
        }
        for e in &cases {
            let detail = serde_json::to_value(&e.detail).unwrap_or(Value::Null);
            let stored = StoredEntry::of(e, &detail);
            let tree = canonical_json(&canonical_entry(&stored, &scopes, &mut |v| alias(v)));
            let direct = canonical_entry_bytes(&stored, &scopes, &mut |v| alias(v));
            assert_eq!(
                String::from_utf8_lossy(&direct),
                String::from_utf8_lossy(&tree)
            );
            // A key added to the stored detail is part of what is hashed.
            let mut extra = detail.clone();
            if let Some(map) = extra.as_object_mut() {
                map.insert("note".into(), Value::String("added".into()));
            }
            let altered =
                canonical_entry_bytes(&StoredEntry::of(e, &extra), &scopes, &mut |v| alias(v));
            assert_ne!(direct, altered);
        }
        // The form itself, pinned: a change to it breaks every stored block.
        let mut e = ActivityEntry::new("User", "updated").with_item_id("7");
        e.id = Uuid::from_u128(1);
        e.created_at = DateTime::from_timestamp(1_700_000_000, 123_456_789).unwrap_or_default();
        e.user_id = Some("u1".into());
        e.is_system = false;
        e.detail.name = Some("Zoë".into());
        let detail = serde_json::to_value(&e.detail).unwrap_or(Value::Null);
        let bytes =
            canonical_entry_bytes(&StoredEntry::of(&e, &detail), &scopes, &mut |v| alias(v));
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            concat!(
                r#"{"activity":"updated","client":null,"correlation_id":null,"#,
                r#""created_at":"2023-11-14T22:13:20.123456Z","#,
                r#""detail":{"changes":[],"context":null,"name":"anon-00000000000000000000000000000004","#,
                r#""short_id":null,"trigger":null,"type":null},"#,
                r#""id":"00000000-0000-0000-0000-000000000001","impersonated_by":null,"#,
                r#""ip_address":null,"is_system":false,"#,
                r#""item_id":"anon-00000000000000000000000000000001","organization_id":null,"#,
                r#""request_id":null,"scope":"User","team_id":null,"user_agent":null,"#,
                r#""user_id":"anon-00000000000000000000000000000002","user_name":null,"v":1,"#,
                r#""was_impersonated":false}"#
            )
        );
    }

    /// The largest proof: a full block (1,024 entries, 10 hashes), a tenant named by a UUID,
    /// one user scope. The bound grows with the tenant id and the scopes' names (both in the
    /// signed header), by their length.
    #[test]
    fn a_proof_of_a_full_block_fits_in_1_kib() {
        let signing = SigningKey::from_bytes(&[3; 32]);
        let ls = leaves(MAX_BLOCK);
        let last = EntryKey {
            created_at: DateTime::from_timestamp(1_800_000_000, 999_999_000).unwrap_or_default(),
            id: Uuid::from_u128(u128::MAX),
        };
        // A second block: its header names a previous one too.
        let block = |prev: Option<&BlockHeader>| {
            BlockHeader::new(
                tenant_key(Some("0193d6a8-7c1e-7b3a-9f2e-4a5b6c7d8e9f"), None),
                prev,
                last.clone(),
                MAX_BLOCK as u64,
                merkle_root(&ls),
                last.created_at,
                vec!["User".into()],
                "0123456789abcdef".into(),
                &signing.verifying_key(),
            )
        };
        let header = block(Some(&block(None)));
        let checkpoint = Checkpoint::sign(header, &signing);
        let largest = (0..MAX_BLOCK)
            .map(|i| {
                let proof = InclusionProof {
                    index: i as u64,
                    path: inclusion_path(&ls, i).iter().map(hex::encode).collect(),
                    checkpoint: checkpoint.clone(),
                };
                assert_eq!(proof.path.len(), 10);
                proof.encoded_len()
            })
            .max()
            .unwrap_or(0);
        assert!(largest <= 1024, "{largest} bytes");
    }

    /// A header sealed before headers named the erasure key has no such field in its signed
    /// bytes: it still parses, re-serializes to the same bytes and keeps its signature.
    #[test]
    fn a_header_without_the_erasure_key_keeps_its_signature() {
        let signing = SigningKey::from_bytes(&[4; 32]);
        let last = EntryKey {
            created_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
            id: Uuid::from_u128(1),
        };
        let header = BlockHeader::new(
            "o:acme".into(),
            None,
            last,
            1,
            leaf_hash(b"x"),
            DateTime::from_timestamp(1_800_000_001, 0).unwrap_or_default(),
            Vec::new(),
            String::new(),
            &signing.verifying_key(),
        );
        let old = Checkpoint::sign(header, &signing);
        let text = serde_json::to_string(&old).unwrap();
        assert!(!text.contains("erasure_key"), "{text}");
        let back: Checkpoint = serde_json::from_str(&text).unwrap();
        assert!(back.verify_signature(&signing.verifying_key()));
        assert_eq!(back, old);
    }

    #[test]
    fn pseudonyms_are_recognized_exactly() {
        assert!(is_pseudonym("anon-0123456789abcdef0123456789abcdef"));
        assert!(!is_pseudonym("anon-0123456789ABCDEF0123456789abcdef"));
        assert!(!is_pseudonym("anon-0123"));
        assert!(!is_pseudonym("alice"));
    }
}
