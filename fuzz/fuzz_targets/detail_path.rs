//! `DetailPath::parse` on arbitrary input: never panics; what it accepts is exactly the
//! documented grammar printed back (segments of `[A-Za-z0-9_-]` not starting with `-`, one `[]`
//! at most, ≤ 256 bytes);
//! what it refuses is an invalid-query error. The converse (every grammatical path is accepted)
//! is `detail_path_parse_fuzz` in `tests/tests/security.rs`.
#![no_main]

use activity_core::ActivityError;
use activity_core::path::{DetailPath, MAX_PATH_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match DetailPath::parse(input) {
        Ok(path) => {
            assert!(
                input.len() <= MAX_PATH_LEN,
                "accepted {} bytes",
                input.len()
            );
            let segment_ok = |s: &String| {
                !s.is_empty()
                    && !s.starts_with('-')
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            assert!(!path.head.is_empty() && path.head.iter().all(segment_ok));
            let mut text = path.head.join(".");
            if let Some(each) = &path.each {
                assert!(each.iter().all(segment_ok));
                text.push_str("[]");
                for key in each {
                    text.push('.');
                    text.push_str(key);
                }
            }
            assert_eq!(text, input, "accepted input does not print back");
        }
        Err(ActivityError::InvalidQuery(_)) => {}
        Err(other) => panic!("refused {input:?} with {other:?}, not an invalid query"),
    }
});
