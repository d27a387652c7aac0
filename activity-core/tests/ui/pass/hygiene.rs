// Local items named like the std items and primitives generated code could use must not
// change what the derive expands to.
#![allow(dead_code, non_camel_case_types)]

mod std {}
mod core {}
struct Vec;
type Option = ();
type String = ();
type Result = ();
struct Box;
struct str;
struct bool;
trait ModelActivity {}
trait ActivityValue {}
fn diff() {}

#[derive(activity_core::ModelActivity)]
#[activity(crate = "activity_core", scope = "Flag", name = key, team = team_id)]
#[sea_orm(table_name = "flag", schema_name = "app")]
struct Flag {
    id: i32,
    team_id: i64,
    key: ::std::string::String,
    note: ::core::option::Option<::std::string::String>,
    #[activity(mask)]
    secret: ::std::string::String,
}

fn main() {
    // The table registration (for checked mode) expands under the same shadowing.
    assert!(activity_core::audited::audited_tables().any(|t| *t
        == activity_core::audited::AuditedTable {
            table: "flag",
            schema: ::core::option::Option::Some("app"),
            scope: "Flag",
        }));
    use activity_core::ModelActivity as _;
    let before = Flag {
        id: 1,
        team_id: 2,
        key: "k".into(),
        note: None,
        secret: "s".into(),
    };
    let after = Flag {
        id: 1,
        team_id: 2,
        key: "k2".into(),
        note: None,
        secret: "s".into(),
    };
    assert_eq!(activity_core::diff(&before, &after).len(), 1);
    assert_eq!(after.activity_name().as_deref(), ::core::option::Option::Some("k2"));
    assert_eq!(<Flag as activity_core::ModelActivity>::SCOPE, "Flag");
}
