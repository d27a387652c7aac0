//! Case-insensitive text matching for `search` and `contains`: the patterns and their limits.

use activity_core::ActivityError;

/// Longest text for `search` and `contains`, in bytes. SQLite refuses LIKE patterns over
/// 50 000 bytes ("pattern too complex"); the escaped, lower-cased pattern stays well below.
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
pub(super) fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for ch in text.to_lowercase().chars() {
        if matches!(ch, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_off!"), "%50!%!_off!!%");
        assert_eq!(like_pattern("ABC"), "%abc%");
    }
}
