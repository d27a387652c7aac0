//! Compile-time checks of `#[derive(ModelActivity)]` (DESIGN §4): every mistake is a compile error
//! spanned on the culprit. The `.stderr` files match rustc 1.95 (the toolchain of this project);
//! regenerate them with `TRYBUILD=overwrite cargo test -p activity-core --test ui` and review the
//! diff like code.

use std::process::Command;

/// The toolchain the checked-in `.stderr` files were generated with: rustc's wording drifts
/// between releases, so other toolchains skip the comparison rather than fail on wording.
const PINNED_RUSTC: &str = "rustc 1.95.";

fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    Command::new(rustc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn ui() {
    let version = rustc_version();
    if !version.starts_with(PINNED_RUSTC) {
        eprintln!("skipping UI tests: they are pinned to {PINNED_RUSTC}x, this is {version}");
        return;
    }
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
