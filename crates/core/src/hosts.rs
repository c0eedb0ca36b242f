//! Host resolution straight from the repositories, without a cache: the [`HostLookup`] of
//! in-memory adapters and of tests (`RepositoryHosts(Arc::new(InMemoryStore::default()))`).
//! Production uses the cache of `tenancy_postgres::hosts::HostResolver`.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::id::{InstanceId, OrgId};
use crate::ports::{HostLookup, UnitOfWorkFactory};
use crate::query::{DomainCriteria, Pagination, TextMatch};
use crate::value::DomainName;

/// [`HostLookup`] over any store: one read per lookup.
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
        let mut uow = self.0.begin_read(None).await?;
        Ok(uow.instance_by_host(host).await?.id)
    }

    async fn org_by_domain(&self, instance_id: &InstanceId, domain: &str) -> Result<OrgId> {
        let domain = DomainName::from_host(domain)?;
        let criteria = DomainCriteria::of_instance(instance_id)
            .domain(TextMatch::equals(domain.as_str()).ignoring_case())
            .verified(true);
        let mut uow = self.0.begin_read(None).await?;
        uow.list_domains(&criteria, &Pagination::default())
            .await?
            .into_iter()
            .find_map(|d| d.org_id)
            .ok_or_else(|| Error::not_found("organization for domain", domain))
    }
}
