//! A team's own use case built on tenancy-core: onboard a tenant with its login host.

use tenancy_core::Result;
use tenancy_core::command::{
    AddInstance, AddInstanceDomain, Command, CommandContext, SetInstanceDomainPrimary,
};
use tenancy_core::id::InstanceId;
use tenancy_core::ports::UnitOfWork;

/// Creates an instance whose primary (generated) domain is `host`, in one unit of work.
pub async fn onboard_tenant(
    uow: &mut dyn UnitOfWork,
    ctx: &CommandContext,
    name: &str,
    host: &str,
) -> Result<InstanceId> {
    let instance_id = AddInstance { name: name.into() }.execute(uow, ctx).await?;
    AddInstanceDomain {
        instance_id: instance_id.clone(),
        domain: host.into(),
        generated: true,
    }
    .execute(uow, ctx)
    .await?;
    SetInstanceDomainPrimary {
        instance_id: instance_id.clone(),
        domain: host.into(),
    }
    .execute(uow, ctx)
    .await?;
    Ok(instance_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenancy_core::Error;
    use tenancy_core::mocks::MockUnitOfWork;
    use tenancy_core::ports::{InstanceRepository, UnitOfWorkFactory};
    use tenancy_testkit::{InMemoryStore, fixtures};

    #[tokio::test]
    async fn with_the_in_memory_adapters() {
        let store = InMemoryStore::new();
        let ctx = fixtures::context();
        let mut uow = store.begin().await.unwrap();
        let id = onboard_tenant(&mut *uow, &ctx, "ACME", "acme.example")
            .await
            .unwrap();
        uow.commit().await.unwrap();
        let mut read = store.unit_of_work();
        assert_eq!(read.instance_by_host("ACME.example").await.unwrap().id, id);
        assert_eq!(store.events().len(), 3);

        let mut uow = store.begin().await.unwrap();
        let taken = onboard_tenant(&mut *uow, &ctx, "Copycat", "acme.example").await;
        assert!(
            matches!(taken, Err(Error::AlreadyExists { .. })),
            "{taken:?}"
        );
    }

    #[tokio::test]
    async fn with_rows_of_the_testkit() {
        // A mock answers with a row built by the testkit; no `time` dependency needed.
        let mut uow = MockUnitOfWork::new();
        let removed = tenancy_core::model::Instance {
            deleted_at: Some(tenancy_core::time::OffsetDateTime::UNIX_EPOCH),
            ..tenancy_testkit::rows::instance("i1")
        };
        uow.expect_get_instance()
            .returning(move |_| Ok(removed.clone()));
        let found = uow
            .get_instance(&tenancy_core::id::InstanceId::new("i1").unwrap())
            .await
            .unwrap();
        assert!(found.deleted_at.is_some());
    }

    #[tokio::test]
    async fn with_the_mocks() {
        let mut uow = MockUnitOfWork::new();
        uow.expect_apply_instance_change()
            .returning(|_, _| Err(Error::internal("database down")));
        let result = onboard_tenant(&mut uow, &fixtures::context(), "ACME", "acme.example").await;
        assert!(
            matches!(result, Err(Error::Internal { .. })),
            "errors of the ports surface unchanged"
        );
    }
}
