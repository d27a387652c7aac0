//! Turns `ACTIVITY_TEST_POSTGRES_URL` into the cfg `activity_postgres`, so the PostgreSQL tests
//! show as ignored (not as passed) when it is unset, as in `tests/build.rs`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(activity_postgres)");
    println!("cargo::rerun-if-env-changed=ACTIVITY_TEST_POSTGRES_URL");
    if std::env::var_os("ACTIVITY_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=activity_postgres");
    }
}
