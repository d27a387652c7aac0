use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organization::Table)
                    .if_not_exists()
                    .col(pk_auto(Organization::Id))
                    .col(string_uniq(Organization::Name))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(User::Table)
                    .if_not_exists()
                    .col(pk_auto(User::Id))
                    .col(integer(User::OrganizationId))
                    .col(string_uniq(User::Username))
                    .col(string(User::Email))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk-user-organization_id")
                            .from(User::Table, User::OrganizationId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Project::Table)
                    .if_not_exists()
                    .col(pk_auto(Project::Id))
                    .col(integer(Project::OrganizationId))
                    .col(string(Project::Name))
                    .col(text_null(Project::Description))
                    .col(string(Project::WebhookSecret))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk-project-organization_id")
                            .from(Project::Table, Project::OrganizationId)
                            .to(Organization::Table, Organization::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .if_not_exists()
                    .col(pk_auto(Settings::Id))
                    .col(integer(Settings::OrganizationId))
                    .col(integer_uniq(Settings::ProjectId))
                    .col(string(Settings::DefaultEnvironment))
                    .col(text_null(Settings::SlackWebhookUrl))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk-settings-project_id")
                            .from(Settings::Table, Settings::ProjectId)
                            .to(Project::Table, Project::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Flag::Table)
                    .if_not_exists()
                    .col(pk_auto(Flag::Id))
                    .col(integer(Flag::OrganizationId))
                    .col(integer(Flag::ProjectId))
                    .col(string(Flag::Key))
                    .col(boolean(Flag::Enabled).default(false))
                    .col(small_integer(Flag::RolloutPercentage).default(0))
                    .col(big_integer(Flag::EvaluationCount).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk-flag-project_id")
                            .from(Flag::Table, Flag::ProjectId)
                            .to(Project::Table, Project::Id)
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::NoAction),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx-flag-project_id-key")
                    .table(Flag::Table)
                    .col(Flag::ProjectId)
                    .col(Flag::Key)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Flag::Table.into_iden(),
            Settings::Table.into_iden(),
            Project::Table.into_iden(),
            User::Table.into_iden(),
            Organization::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Organization {
    Table,
    Id,
    Name,
}

#[derive(DeriveIden)]
enum User {
    Table,
    Id,
    OrganizationId,
    Username,
    Email,
}

#[derive(DeriveIden)]
enum Project {
    Table,
    Id,
    OrganizationId,
    Name,
    Description,
    WebhookSecret,
}

#[derive(DeriveIden)]
enum Settings {
    Table,
    Id,
    OrganizationId,
    ProjectId,
    DefaultEnvironment,
    SlackWebhookUrl,
}

#[derive(DeriveIden)]
enum Flag {
    Table,
    Id,
    OrganizationId,
    ProjectId,
    Key,
    Enabled,
    RolloutPercentage,
    EvaluationCount,
}
