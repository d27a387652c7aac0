//! Demo data: two organizations and their users (not logged), and one project of `acme` with its
//! settings and a flag — logged models, so their hooks write entries and this migration must run
//! after `activity_seaorm::schema::migration::Migration`.

use activity_seaorm::ActivityContext;
use activity_seaorm::entry::Trigger;
use entity::{flag, organization, project, settings, user};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, ModelTrait, QueryFilter, Set};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The demo organizations and their users: `(organization, [(username, email)])`.
pub const USERS: &[(&str, &[(&str, &str)])] = &[
    (
        "acme",
        &[("alice", "alice@acme.test"), ("bob", "bob@acme.test")],
    ),
    ("globex", &[("carol", "carol@globex.test")]),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No request here: the entries are system entries, marked with the migration as trigger.
        let ctx = ActivityContext::system().with_trigger(Trigger::new("migration", self.name()));
        ActivityContext::scope(ctx, seed(manager)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let ctx = ActivityContext::system().with_trigger(Trigger::new("migration", self.name()));
        ActivityContext::scope(ctx, async {
            // Deleting the logged models one by one logs their deletion: the log is still there.
            for p in project::Entity::find()
                .filter(project::Column::Name.eq("Website"))
                .all(db)
                .await?
            {
                for f in flag::Entity::find()
                    .filter(flag::Column::ProjectId.eq(p.id))
                    .all(db)
                    .await?
                {
                    f.delete(db).await?;
                }
                if let Some(s) = settings::Entity::find()
                    .filter(settings::Column::ProjectId.eq(p.id))
                    .one(db)
                    .await?
                {
                    s.delete(db).await?;
                }
                p.delete(db).await?;
            }
            let names = USERS.iter().map(|(org, _)| *org);
            organization::Entity::delete_many()
                .filter(organization::Column::Name.is_in(names))
                .exec(db)
                .await?;
            Ok(())
        })
        .await
    }
}

async fn seed(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let mut acme = None;
    for (org, users) in USERS {
        let o = organization::ActiveModel {
            name: Set((*org).to_owned()),
            ..Default::default()
        }
        .insert(db)
        .await?;
        for (username, email) in *users {
            user::ActiveModel {
                organization_id: Set(o.id),
                username: Set((*username).to_owned()),
                email: Set((*email).to_owned()),
                ..Default::default()
            }
            .insert(db)
            .await?;
        }
        acme.get_or_insert(o.id);
    }
    let acme = acme.expect("USERS names an organization");
    let website = project::ActiveModel {
        organization_id: Set(acme),
        name: Set("Website".to_owned()),
        description: Set(Some("The public website".to_owned())),
        webhook_secret: Set("whsec-seed".to_owned()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    settings::ActiveModel {
        organization_id: Set(acme),
        project_id: Set(website.id),
        default_environment: Set("production".to_owned()),
        slack_webhook_url: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    flag::ActiveModel {
        organization_id: Set(acme),
        project_id: Set(website.id),
        key: Set("dark-mode".to_owned()),
        enabled: Set(false),
        rollout_percentage: Set(0),
        evaluation_count: Set(0),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}
