//! Turns `ACTIVITY_TEST_POSTGRES_URL`, `ACTIVITY_TEST_NATS_URL` and `ACTIVITY_TEST_BROWSER`
//! (chromium and chromedriver installed) into the cfgs `activity_postgres`, `activity_nats` and
//! `activity_browser`, so those tests show as ignored (not as passed) when they are unset, as
//! in `tests/build.rs`.

fn main() {
    for (var, cfg) in [
        ("ACTIVITY_TEST_POSTGRES_URL", "activity_postgres"),
        ("ACTIVITY_TEST_NATS_URL", "activity_nats"),
        ("ACTIVITY_TEST_BROWSER", "activity_browser"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
