//! The per-value cap: a value larger than [`ActivityConfig::value_cap`] is stored as its size
//! and SHA-256, never whole, so no single entry can outgrow the stream's message limit or the
//! table. Applied to every entry on its way to the INSERT (hooks, bulk, manual, background),
//! after masking and `before_append`.

use activity_core::{ActivityConfig, ActivityEntry};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Cap every oversized value of `entries` under the configuration in force.
pub(crate) fn cap_entries(entries: &mut [ActivityEntry]) {
    let cap = ActivityConfig::with_current(|c| c.value_cap());
    for entry in entries {
        let capped = cap_entry(entry, cap);
        if capped > 0 {
            tracing::warn!(
                scope = %entry.scope,
                activity = %entry.activity,
                item_id = ?entry.item_id,
                capped,
                cap,
                "activity entry values over the cap stored as their size and SHA-256"
            );
        }
    }
}

/// Cap the values of one entry at `cap` bytes; how many were over.
pub(crate) fn cap_entry(entry: &mut ActivityEntry, cap: usize) -> usize {
    let mut capped = 0;
    for change in &mut entry.detail.changes {
        for value in [&mut change.before, &mut change.after] {
            capped += usize::from(cap_value(value, cap));
        }
    }
    if let Some(context) = &mut entry.detail.context {
        capped += usize::from(cap_value(context, cap));
    }
    capped
}

/// Replace `value` by `{"truncated": true, "bytes": n, "sha256": ".."}` if its JSON is longer
/// than `cap` bytes; whether it was.
pub(crate) fn cap_value(value: &mut Value, cap: usize) -> bool {
    // Short strings (the overwhelming case) are not serialized to be measured: escaped, a byte
    // takes at most six (`\u001f`), plus the quotes.
    let small = match value {
        Value::Null | Value::Bool(_) => cap >= 5,
        // A JSON number is at most 24 bytes (`-1.7976931348623157e308`).
        Value::Number(_) => cap >= 24,
        Value::String(s) => s.len().saturating_mul(6).saturating_add(2) <= cap,
        Value::Array(_) | Value::Object(_) => false,
    };
    if small {
        return false;
    }
    let Ok(text) = serde_json::to_vec(value) else {
        return false;
    };
    if text.len() <= cap {
        return false;
    }
    *value = json!({
        "truncated": true,
        "bytes": text.len(),
        "sha256": hex::encode(Sha256::digest(&text)),
    });
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_over_the_cap_become_their_size_and_digest() {
        let mut small = json!("x".repeat(100));
        assert!(!cap_value(&mut small, 102));
        let mut big = json!("x".repeat(101));
        assert!(cap_value(&mut big, 102));
        assert_eq!(big["truncated"], true);
        assert_eq!(big["bytes"], 103);
        assert_eq!(
            big["sha256"],
            hex::encode(Sha256::digest(format!("\"{}\"", "x".repeat(101))))
        );
        // Escapes count: 40 quotes are 80 bytes of JSON.
        let mut quotes = json!("\"".repeat(40));
        assert!(cap_value(&mut quotes, 60));
        let mut nested = json!({"a": ["y".repeat(50), "z".repeat(50)]});
        assert!(cap_value(&mut nested, 64));
        let mut number = json!(12345);
        assert!(!cap_value(&mut number, 5));
        assert!(cap_value(&mut number, 4));
    }
}
