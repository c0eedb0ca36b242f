use async_trait::async_trait;

use super::{Command, CommandContext, emit_org_event, live_instance};
use crate::error::{Error, Result, Rule};
use crate::event::{LegacyEvent, UniqueConstraint};
use crate::id::{InstanceId, OrgId};
use crate::ports::UnitOfWork;
use crate::query::{OrganizationCriteria, Pagination, TextMatch};
use crate::value::Name;

/// Adds an organization to an instance; names are unique per instance (ignoring case).
///
/// # What it touches
///
/// - **reads** `get_instance`, `list_organizations` (name taken?), `count_organizations` (a chosen id taken?);
/// - **writes** `organizations` (insert, `apply_organization_change`);
/// - **pushes** `org.added`, claiming the `org_name` unique value.
#[derive(Debug, Clone)]
pub struct AddOrganization {
    /// The instance the organization is added to.
    pub instance_id: InstanceId,
    /// An id chosen by the caller; one is generated when `None`. An id is never reused,
    /// not even one of a removed organization (its events stay in the store).
    pub id: Option<String>,
    /// The name (trimmed; 1 to 200 characters; unique in the instance ignoring case).
    pub name: String,
}

#[async_trait]
impl Command for AddOrganization {
    type Output = OrgId;

    async fn execute(&self, uow: &mut dyn UnitOfWork, ctx: &CommandContext) -> Result<OrgId> {
        let name = Name::parse(&self.name)?;
        live_instance(uow, &self.instance_id).await?;
        ensure_name_free(uow, &self.instance_id, &name).await?;
        let org_id = match &self.id {
            Some(id) => {
                let id = chosen_id(id)?;
                ensure_id_free(uow, &self.instance_id, &id).await?;
                id
            }
            // A collision with an id generated elsewhere fails the insert: retried (below).
            None => OrgId::new(ctx.ids.next_id()?)?,
        };
        let uniques = vec![UniqueConstraint::add_org_name(
            self.instance_id.as_str(),
            name.as_str(),
        )];
        let event = LegacyEvent::OrgAdded { name: name.into() };
        emit_org_event(
            uow,
            ctx,
            ctx.clock.now(),
            &self.instance_id,
            &org_id,
            event,
            uniques,
        )
        .await?;
        Ok(org_id)
    }

    fn retry_on(&self, error: &Error) -> bool {
        self.id.is_none()
            && matches!(
                error,
                Error::AlreadyExists {
                    rule: Rule::OrganizationId,
                    ..
                }
            )
    }
}

/// A caller's id: 1 to 200 visible ASCII characters, as ZITADEL's API allows.
fn chosen_id(id: &str) -> Result<OrgId> {
    if id.is_empty() || id.len() > 200 || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "organization_id",
            "must be 1 to 200 visible ASCII characters",
        ));
    }
    OrgId::new(id)
}

/// AlreadyExists when the instance has, or had, an organization with this id.
async fn ensure_id_free(
    uow: &mut dyn UnitOfWork,
    instance_id: &InstanceId,
    id: &OrgId,
) -> Result<()> {
    let criteria = OrganizationCriteria {
        instance_id: Some(instance_id.clone()),
        ids: vec![id.clone()],
        include_deleted: true,
        ..OrganizationCriteria::default()
    };
    if uow.count_organizations(&criteria).await? == 0 {
        Ok(())
    } else {
        Err(Error::already_exists(Rule::OrganizationId, id))
    }
}

/// AlreadyExists when a live organization of the instance has this name (any case).
pub(super) async fn ensure_name_free(
    uow: &mut dyn UnitOfWork,
    instance_id: &InstanceId,
    name: &Name,
) -> Result<()> {
    let criteria = OrganizationCriteria {
        instance_id: Some(instance_id.clone()),
        name: Some(TextMatch::equals(name.as_str()).ignoring_case()),
        ..OrganizationCriteria::default()
    };
    let page = Pagination {
        limit: Some(1),
        ..Pagination::default()
    };
    if uow.list_organizations(&criteria, &page).await?.is_empty() {
        Ok(())
    } else {
        Err(Error::already_exists(Rule::OrganizationName, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::testing::*;
    use crate::model::OrganizationState;

    fn cmd(name: &str) -> AddOrganization {
        AddOrganization {
            id: None,
            instance_id: iid(),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn adds_the_org() {
        let mut uow = with_instance();
        uow.expect_list_organizations().returning(|_, _| Ok(vec![]));
        uow.expect_apply_organization_change()
            .times(1)
            .withf(|c, _| matches!(c, OrganizationChange::Create { instance_id: i, id: o, name: n, .. } if i.as_str() == "i1" && o.as_str() == "100" && n == "Org"))
            .returning(|_, _| Ok(1));
        uow.expect_push()
            .times(1)
            .withf(|e| {
                e[0].event_type == "org.added"
                    && e[0].aggregate_id == "100"
                    && e[0].unique_constraints[0].unique_field == "org"
            })
            .returning(|_| Ok(vec![]));
        assert_eq!(
            cmd("Org").execute(&mut uow, &ctx()).await.unwrap().as_str(),
            "100"
        );
    }

    #[tokio::test]
    async fn duplicate_name_already_exists() {
        let mut uow = with_instance();
        uow.expect_list_organizations()
            .withf(|c, _| c.name.as_ref().is_some_and(|m| m.ignore_case))
            .returning(|_, _| Ok(vec![organization(OrganizationState::Active)]));
        let r = cmd("ORG").execute(&mut uow, &ctx()).await;
        assert!(matches!(
            r,
            Err(Error::AlreadyExists {
                rule: Rule::OrganizationName,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn takes_the_callers_id() {
        let mut uow = with_instance();
        uow.expect_list_organizations().returning(|_, _| Ok(vec![]));
        uow.expect_count_organizations()
            .withf(|c| c.include_deleted && c.ids.len() == 1 && c.ids[0].as_str() == "my-org")
            .returning(|_| Ok(0));
        uow.expect_apply_organization_change()
            .withf(|c, _| matches!(c, OrganizationChange::Create { id: o, .. } if o.as_str() == "my-org"))
            .returning(|_, _| Ok(1));
        uow.expect_push().returning(|_| Ok(vec![]));
        let mut add = cmd("Org");
        add.id = Some("my-org".into());
        assert_eq!(
            add.execute(&mut uow, &ctx()).await.unwrap().as_str(),
            "my-org"
        );
    }

    #[tokio::test]
    async fn a_used_id_already_exists_even_when_removed() {
        let mut uow = with_instance();
        uow.expect_list_organizations().returning(|_, _| Ok(vec![]));
        uow.expect_count_organizations().returning(|_| Ok(1));
        let mut add = cmd("Org");
        add.id = Some("taken".into());
        assert!(matches!(
            add.execute(&mut uow, &ctx()).await,
            Err(Error::AlreadyExists {
                rule: Rule::OrganizationId,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_malformed_id_is_invalid() {
        for bad in ["", "with space", &"x".repeat(201), "tab\t"] {
            let mut uow = with_instance();
            uow.expect_list_organizations().returning(|_, _| Ok(vec![]));
            let mut add = cmd("Org");
            add.id = Some(bad.into());
            assert!(matches!(
                add.execute(&mut uow, &ctx()).await,
                Err(Error::InvalidArgument {
                    field: "organization_id",
                    ..
                })
            ));
        }
    }

    #[tokio::test]
    async fn removed_instance_is_not_found() {
        assert_not_found(cmd("Org").execute(&mut without_instance(), &ctx()).await);
    }

    #[tokio::test]
    async fn empty_name_is_invalid() {
        let r = cmd("").execute(&mut with_instance(), &ctx()).await;
        assert!(matches!(r, Err(Error::InvalidArgument { .. })));
    }
}
