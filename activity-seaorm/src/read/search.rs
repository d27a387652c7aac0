//! Case-insensitive text matching for `search` and `contains`: the patterns and their limits.
//!
//! PostgreSQL and MariaDB/MySQL fold case with Unicode rules (`LOWER` under the database's
//! UTF-8 locale or collation), so `LOWER(text) LIKE '%été%'` finds `ÉTÉ` there. SQLite's
//! `LOWER` and `LIKE` fold ASCII only, so SQLite gets a `GLOB` pattern instead, in which each
//! letter is a class of its case variants (`[éÉ][tT][éÉ]`): the same matches, by the same
//! (Unicode, per character) case rules, on every backend.

use activity_core::ActivityError;

/// Longest text for `search` and `contains`, in bytes. SQLite refuses LIKE and GLOB patterns
/// over 50 000 bytes ("pattern too complex"); the escaped pattern stays below: a character
/// grows at most four times in [`glob_pattern`] (`k` → `[kK]`, `ǅ` → `[ǅǆǄ]`).
pub(super) const MAX_PATTERN_TEXT: usize = 10_000;

pub(super) fn reject_long_pattern(text: &str) -> Result<(), ActivityError> {
    if text.len() > MAX_PATTERN_TEXT {
        Err(ActivityError::InvalidQuery(format!(
            "search text is {} bytes, longer than the maximum {MAX_PATTERN_TEXT}",
            text.len()
        )))
    } else {
        Ok(())
    }
}

/// `%text%`, lower-cased, with `!`, `%` and `_` escaped by `!`.
///
/// Lower-cased character by character, as SQL `LOWER` does: `str::to_lowercase` would turn a
/// word-final `Σ` into `ς`, which `LOWER` never produces, and `ΣΊΣΥΦΟΣ` would not find itself.
pub(super) fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for ch in text.chars().flat_map(char::to_lowercase) {
        if matches!(ch, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// SQLite's longest LIKE/GLOB pattern (`SQLITE_MAX_LIKE_PATTERN_LENGTH`), in bytes.
const SQLITE_MAX_PATTERN: usize = 50_000;

/// The characters that `LOWER` maps to the same character as `ch` (`ch` first, no repeats):
/// a stored `d` matches a pattern `c` exactly when `lower(d) == lower(c)`, as with
/// `LOWER(text) LIKE LOWER(pattern)` elsewhere. Per character, like SQL `LOWER`: `ς` and `σ`
/// stay different letters although both upper-case to `Σ`.
fn case_variants(ch: char) -> Vec<char> {
    fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
        match (it.next(), it.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    }
    let lower_of = |c: char| single(c.to_lowercase()).unwrap_or(c);
    let lower = lower_of(ch);
    let mut out = vec![ch];
    for c in [
        Some(lower),
        single(lower.to_uppercase()),
        single(ch.to_uppercase()),
    ]
    .into_iter()
    .flatten()
    {
        if lower_of(c) == lower && !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// SQLite: `*text*` as a `GLOB` pattern that matches `text` in any case, letter by letter
/// (`ÉTÉ` → `*[ÉÉé][Tt][ÉÉé]*`, without the repeats). `*`, `?` and `[` are matched literally
/// (`[*]`, `[?]`, `[[]`); GLOB has no escape character.
pub(super) fn glob_pattern(text: &str) -> Result<String, ActivityError> {
    let mut out = String::with_capacity(text.len() * 2 + 2);
    out.push('*');
    for ch in text.chars() {
        let variants = case_variants(ch);
        if variants.len() > 1 {
            out.push('[');
            out.extend(variants);
            out.push(']');
        } else if matches!(ch, '*' | '?' | '[') {
            out.push('[');
            out.push(ch);
            out.push(']');
        } else {
            out.push(ch);
        }
    }
    out.push('*');
    if out.len() > SQLITE_MAX_PATTERN {
        return Err(ActivityError::InvalidQuery(format!(
            "search text is too long for a case-insensitive match ({} bytes as a pattern, \
             at most {SQLITE_MAX_PATTERN})",
            out.len()
        )));
    }
    Ok(out)
}

/// Refuses a NUL byte in a filter value: PostgreSQL cannot store one in text, so it is an
/// invalid query on every backend alike.
pub(super) fn reject_nul(text: &str) -> Result<(), ActivityError> {
    if text.contains('\0') {
        Err(ActivityError::InvalidQuery(
            "filter values cannot contain NUL bytes".into(),
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off!"), "%50!%!_off!!%");
        assert_eq!(like_pattern("ABC"), "%abc%");
        assert_eq!(like_pattern("ΣΟΣ"), "%σοσ%");
    }

    #[test]
    fn glob_patterns_fold_unicode_case_and_escape_wildcards() {
        assert_eq!(glob_pattern("ÉtÉ").unwrap(), "*[Éé][tT][Éé]*");
        assert_eq!(glob_pattern("a*?[]1").unwrap(), "*[aA][*][?][[]]1*");
        // `ß` upper-cases to two letters (`SS`): only itself, as `LOWER` would leave it.
        assert_eq!(glob_pattern("ß").unwrap(), "*ß*");
        assert_eq!(glob_pattern("ς").unwrap(), "*ς*");
        assert_eq!(glob_pattern("Σσ").unwrap(), "*[Σσ][σΣ]*");
        let longest = "k".repeat(MAX_PATTERN_TEXT);
        assert!(glob_pattern(&longest).is_ok());
    }
}
