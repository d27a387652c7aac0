//! Compile-time checks of `#[derive(ModelActivity)]`: every mistake is a compile error
//! spanned on the culprit, and every `pass` case compiles and runs.
//!
//! The checked-in `.stderr` files match rustc 1.95 (the toolchain of this project); regenerate
//! them with `TRYBUILD=overwrite cargo test -p activity-core --test ui` and review the diff like
//! code. How much is compared depends on the toolchain, so the test runs, and can fail, on all:
//!
//! - **rustc 1.95**: trybuild compares each fail case's whole output with its `.stderr`.
//! - **any other rustc**: rustc rewords its own notes and help between releases, but not our
//!   messages nor where they point. So the pass cases still run, and each fail case must still
//!   fail to compile with the same errors as its `.stderr`: the same set of `error...:` first
//!   lines (our derive's messages, and our `#[diagnostic::on_unimplemented]` ones) each at the
//!   same `file:line:column`. trybuild builds the cases (same dependencies and flags as the
//!   exact run); its output for each is read back from its *wip* mechanism (documented in
//!   trybuild's crate docs): copies of the fail cases without a `.stderr` are written to
//!   `$CARGO_TARGET_TMPDIR`, so trybuild saves what they printed to `wip/<case>.stderr`.
//!
//! `ACTIVITY_UI=compat` runs the second mode on 1.95 too, to try it out.

use std::collections::BTreeSet;
use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The toolchain the checked-in `.stderr` files were generated with.
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
    let compat = std::env::var("ACTIVITY_UI").is_ok_and(|v| v == "compat");
    if version.starts_with(PINNED_RUSTC) && !compat {
        let t = trybuild::TestCases::new();
        t.compile_fail("tests/ui/fail/*.rs");
        t.pass("tests/ui/pass/*.rs");
        return;
    }
    let why = if compat {
        "ACTIVITY_UI=compat".to_owned()
    } else {
        format!("{} is not {PINNED_RUSTC}x", version.trim())
    };
    eprintln!(
        "{why}: comparing each fail case's errors and their locations, not rustc's whole output"
    );
    // Dropping `TestCases` runs the cases: this block runs the pass cases.
    {
        let t = trybuild::TestCases::new();
        t.pass("tests/ui/pass/*.rs");
    }
    compare_errors();
}

/// One error: its first line (`error: ...` or `error[E0277]: ...`) and `file:line:column` of the
/// `-->` line after it, with the file's directories dropped (the copies live elsewhere).
type ErrorAt = (String, String);

/// Every distinct error in a compiler output, as trybuild normalizes it.
fn errors(stderr: &str) -> BTreeSet<ErrorAt> {
    let mut out = BTreeSet::new();
    let mut lines = stderr.lines();
    while let Some(line) = lines.next() {
        if !(line.starts_with("error:") || line.starts_with("error[")) {
            continue;
        }
        let at = lines
            .by_ref()
            .map(str::trim_start)
            .find_map(|l| l.strip_prefix("--> "))
            .map(|loc| {
                let file = loc.rsplit(['/', '\\']).next().unwrap_or(loc);
                file.trim().to_owned()
            })
            .unwrap_or_default();
        out.insert((line.trim_end().to_owned(), at));
    }
    out
}

fn compare_errors() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-compat");
    let wip = manifest.join("wip");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).expect("create the scratch directory");

    let mut cases: Vec<PathBuf> = fs::read_dir(manifest.join("tests/ui/fail"))
        .expect("read tests/ui/fail")
        .map(|e| e.expect("read tests/ui/fail").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no fail cases in tests/ui/fail");
    let t = trybuild::TestCases::new();
    for case in &cases {
        let name = case.file_name().expect("a file name");
        let copy = scratch.join(name);
        fs::copy(case, &copy).expect("copy a fail case");
        let _ = fs::remove_file(wip.join(name).with_extension("stderr"));
        t.compile_fail(copy);
    }
    // trybuild saves each output (no `.stderr` to compare with) and then panics to say so.
    // Keep its panic message for the report; whether each case failed to compile is decided
    // below, by whether its output was saved.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let outcome = panic::catch_unwind(AssertUnwindSafe(move || drop(t)));
    panic::set_hook(hook);
    let trybuild_said = match &outcome {
        Ok(()) => String::new(),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default(),
    };

    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().expect("a file name");
        let stderr_name = Path::new(name).with_extension("stderr");
        // `TRYBUILD=overwrite` writes next to the copy instead of into `wip/`.
        let actual = [wip.join(&stderr_name), scratch.join(&stderr_name)]
            .iter()
            .find_map(|p| fs::read_to_string(p).ok());
        let _ = fs::remove_file(wip.join(&stderr_name));
        let shown = case.display();
        let Some(actual) = actual else {
            failures.push(format!(
                "{shown}: compiled, or was not built (trybuild: {trybuild_said})"
            ));
            continue;
        };
        let expected = fs::read_to_string(case.with_extension("stderr"))
            .unwrap_or_else(|e| panic!("{shown}: reading its .stderr: {e}"));
        let (expected, actual) = (errors(&expected), errors(&actual));
        if expected.is_empty() {
            failures.push(format!("{shown}: its .stderr lists no error"));
        } else if expected != actual {
            let missing: Vec<_> = expected.difference(&actual).collect();
            let extra: Vec<_> = actual.difference(&expected).collect();
            failures.push(format!(
                "{shown}: errors differ from its .stderr\n  missing: {missing:#?}\n  unexpected: {extra:#?}"
            ));
        }
    }
    // Leave no `wip/` behind, unless it holds something else (then keep its `.gitignore`).
    let only_gitignore = fs::read_dir(&wip).is_ok_and(|entries| {
        entries
            .map(|e| e.map(|e| e.file_name()))
            .all(|name| name.is_ok_and(|n| n == ".gitignore"))
    });
    if only_gitignore {
        let _ = fs::remove_dir_all(&wip);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
