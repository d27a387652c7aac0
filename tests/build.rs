//! Turns the test-server URLs into cfgs, so a suite whose server is not configured shows as
//! ignored (not as passed): `#[cfg_attr(not(activity_postgres), ignore = "...")]`. Cargo
//! rebuilds the tests when a URL variable changes.

fn main() {
    for (var, cfg) in [
        ("ACTIVITY_TEST_POSTGRES_URL", "activity_postgres"),
        ("ACTIVITY_TEST_MYSQL_URL", "activity_mysql"),
        ("ACTIVITY_TEST_NATS_URL", "activity_nats"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={var}");
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
