use async_trait::async_trait;

use super::organization_add::ensure_name_free;
use super::{Command, CommandContext, emit_org_event, live_organization};
use crate::error::{Error, Result};
use crate::event::{LegacyEvent, UniqueConstraint};
use crate::id::{InstanceId, OrgId};
use crate::ports::UnitOfWork;
use crate::value::Name;

/// Renames an organization.
///
/// # What it touches
///
/// - **reads** `get_instance`, `get_organization`, `list_organizations` (name taken?);
/// - **writes** `organizations` (update, `apply_organization_change`);
/// - **pushes** `org.changed`, releasing the old `org_name` unique value and claiming the new one.
#[derive(Debug, Clone)]
pub struct RenameOrganization {
    /// The organization's instance.
    pub instance_id: InstanceId,
    /// The organization to rename.
    pub org_id: OrgId,
    /// The new name (trimmed; 1 to 200 characters; unique in the instance ignoring case).
    pub name: String,
}

#[async_trait]
impl Command for RenameOrganization {
    type Output = ();

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<()> {
        let name = Name::parse(&self.name)?;
        let org = live_organization(uow, &self.instance_id, &self.org_id).await?;
        if org.name == name.as_str() {
            return Err(Error::no_changes("the organization already has this name"));
        }
        if !org.name.eq_ignore_ascii_case(name.as_str()) {
            ensure_name_free(uow, &self.instance_id, &name).await?;
        }
        let instance = self.instance_id.as_str();
        let uniques = vec![
            UniqueConstraint::remove_org_name(instance, &org.name),
            UniqueConstraint::add_org_name(instance, name.as_str()),
        ];
        let event = LegacyEvent::OrgChanged {
            name: Some(name.into()),
        };
        emit_org_event(
            uow,
            ctx,
            ctx.clock.now(),
            &self.instance_id,
            &self.org_id,
            event,
            uniques,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;
    use crate::model::OrganizationState;

    fn cmd(name: &str) -> RenameOrganization {
        RenameOrganization {
            instance_id: iid(),
            org_id: oid(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn renames() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_organizations().returning(|_, _| Ok(vec![]));
        uow.expect_apply_organization_change()
            .times(1)
            .withf(|c, _| matches!(c, OrganizationChange::Update { update: u, .. } if u.name.as_deref() == Some("New")))
            .returning(|_, _| Ok(1));
        expect_push(&mut uow, "org.changed");
        cmd("New").execute(&mut uow, &ctx()).await.unwrap();
    }

    #[tokio::test]
    async fn same_name_is_no_change() {
        let r = cmd("Org")
            .execute(&mut with_org(OrganizationState::Active), &ctx())
            .await;
        assert!(matches!(r, Err(Error::NoChanges(_))));
    }

    #[tokio::test]
    async fn taken_name_already_exists() {
        let mut uow = with_org(OrganizationState::Active);
        uow.expect_list_organizations()
            .returning(|_, _| Ok(vec![organization(OrganizationState::Active)]));
        let r = cmd("Other").execute(&mut uow, &ctx()).await;
        assert!(matches!(r, Err(Error::AlreadyExists { .. })));
    }

    #[tokio::test]
    async fn unknown_org_is_not_found() {
        let mut uow = with_instance();
        uow.expect_get_organization()
            .returning(|_, id| Err(Error::not_found("organization", id)));
        assert_not_found(cmd("New").execute(&mut uow, &ctx()).await);
    }
}
