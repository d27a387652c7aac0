//! Integration tests of the activity log across backends.
