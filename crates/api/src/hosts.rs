//! Host lookups straight from the repositories, without a cache: for the in-memory
//! adapters and for tests. Production uses `tenancy_postgres::hosts::HostResolver`.

use std::sync::Arc;

use async_trait::async_trait;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::ports::{HostLookup, UnitOfWorkFactory};
use tenancy_core::query::{DomainCriteria, Pagination, TextMatch};
use tenancy_core::value::DomainName;
use tenancy_core::{Error, Result};

#[derive(Clone)]
pub struct RepositoryHosts(pub Arc<dyn UnitOfWorkFactory>);

impl std::fmt::Debug for RepositoryHosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryHosts").finish_non_exhaustive()
    }
}

#[async_trait]
impl HostLookup for RepositoryHosts {
    async fn instance_by_host(&self, host: &str) -> Result<InstanceId> {
        let domain = DomainName::from_host(host)?;
        let mut uow = self.0.begin().await?;
        Ok(uow.instance_by_host(domain.as_str()).await?.id)
    }

    async fn org_by_domain(&self, instance_id: &InstanceId, domain: &str) -> Result<OrgId> {
        let domain = DomainName::from_host(domain)?;
        let criteria = DomainCriteria::of_instance(instance_id)
            .domain(TextMatch::equals(domain.as_str()).ignoring_case())
            .verified(true);
        let mut uow = self.0.begin().await?;
        uow.list_domains(&criteria, &Pagination::default())
            .await?
            .into_iter()
            .find_map(|d| d.org_id)
            .ok_or_else(|| Error::not_found("organization for domain", domain))
    }
}
