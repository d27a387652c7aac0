//! The detail-filter path syntax: `name`, `trigger.job_type`, `changes[].field`.
//!
//! Segments are `[A-Za-z0-9_][A-Za-z0-9_-]*`, separated by `.`; one segment may end in `[]` to
//! match any element of the array there. Anything else is a clear error, never SQL.
//!
//! Every segment is an object key, on every backend — `tags.0` is the member `"0"` of `tags`,
//! never its first element; arrays are walked with `[]` only. A segment may not start with
//! `-`: MariaDB's JSON paths do not find a quoted key that starts with `-` (`$."-1"` is
//! always NULL there), and PostgreSQL's `#>` would read `-1` as "the last element"; refusing
//! it everywhere keeps one meaning on every backend.

use crate::error::ActivityError;

/// A parsed path: keys down to an optional array, then keys inside each element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetailPath {
    /// Keys from the root of `detail` (down to the array, if any).
    pub head: Vec<String>,
    /// Keys inside each array element; `None` when the path has no `[]`.
    pub each: Option<Vec<String>>,
}

/// Longest accepted path, in bytes.
pub const MAX_PATH_LEN: usize = 256;

impl DetailPath {
    /// Parse a path.
    ///
    /// ```
    /// use activity_core::path::DetailPath;
    /// let p = DetailPath::parse("changes[].field").unwrap();
    /// assert_eq!(p.head, vec!["changes"]);
    /// assert_eq!(p.each, Some(vec!["field".to_owned()]));
    /// assert!(DetailPath::parse("name'; DROP TABLE x").is_err());
    /// assert!(DetailPath::parse("context.tags.0").is_ok()); // the key "0"
    /// assert!(DetailPath::parse("context.tags.-1").is_err());
    /// ```
    pub fn parse(path: &str) -> Result<DetailPath, ActivityError> {
        let err = |why: &str| ActivityError::InvalidQuery(format!("detail path {path:?}: {why}"));
        if path.is_empty() {
            return Err(err("is empty"));
        }
        if path.len() > MAX_PATH_LEN {
            return Err(err("is too long"));
        }
        let mut head = Vec::new();
        let mut each: Option<Vec<String>> = None;
        for segment in path.split('.') {
            let (key, is_array) = match segment.strip_suffix("[]") {
                Some(key) => (key, true),
                None => (segment, false),
            };
            if key.is_empty() {
                return Err(err("has an empty segment"));
            }
            if !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(err(
                    "segments may only contain letters, digits, `_` and `-`, and end in `[]`",
                ));
            }
            if key.starts_with('-') {
                return Err(err("a segment cannot start with `-`"));
            }
            match (&mut each, is_array) {
                (Some(_), true) => return Err(err("only one `[]` is supported")),
                (Some(inner), false) => inner.push(key.to_owned()),
                (None, true) => {
                    head.push(key.to_owned());
                    each = Some(Vec::new());
                }
                (None, false) => head.push(key.to_owned()),
            }
        }
        Ok(DetailPath { head, each })
    }
}
