//! Host resolution in memory: `tenancy_core::hosts::RepositoryHosts` over the in-memory
//! store answers a `Host` header as the production cache does.

use std::sync::Arc;

use tenancy_core::Error;
use tenancy_core::hosts::RepositoryHosts;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::InstanceDomainKind;
use tenancy_core::ports::{HostLookup, UnitOfWorkFactory};
use tenancy_testkit::InMemoryStore;
use tenancy_testkit::writes::RepositoryWrites as _;
use time::OffsetDateTime;

#[tokio::test]
async fn hosts_resolve_in_memory_with_port_case_and_verification() -> tenancy_core::Result<()> {
    let store = InMemoryStore::default();
    let (acme, sales) = (InstanceId::new("acme")?, OrgId::new("sales")?);
    let at = OffsetDateTime::UNIX_EPOCH;
    let mut uow = store.begin().await?;
    uow.create_instance(&acme, "ACME", at).await?;
    let custom = InstanceDomainKind::Custom {
        is_primary: true,
        is_generated: false,
    };
    uow.insert_instance_domain(&acme, "login.acme.example", custom, at)
        .await?;
    uow.create_organization(&acme, &sales, "Sales", at).await?;
    uow.add_organization_domain(&acme, &sales, "sales.example", None, at)
        .await?;
    uow.commit().await?;
    let hosts = RepositoryHosts(Arc::new(store.clone()));

    assert_eq!(
        hosts.instance_by_host("Login.ACME.example:443").await?,
        acme
    );
    assert!(matches!(
        hosts.instance_by_host("other.example").await,
        Err(Error::NotFound { .. })
    ));
    // Not verified yet: no organization answers for the domain.
    assert!(matches!(
        hosts.org_by_domain(&acme, "sales.example").await,
        Err(Error::NotFound { .. })
    ));
    let mut uow = store.begin().await?;
    uow.set_organization_domain_verified(&acme, &sales, "sales.example", at)
        .await?;
    uow.commit().await?;
    assert_eq!(hosts.org_by_domain(&acme, "Sales.Example").await?, sales);
    Ok(())
}
