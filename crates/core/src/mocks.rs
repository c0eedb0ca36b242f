//! Every mock in one place. One mock covers every port a command touches (lldap-style):
//! `MockUnitOfWork` implements all repositories, the event writer and the unit of work
//! itself. The per-port mocks come from `automock` on each trait and are re-exported
//! here: the repositories, `MockEventWriter`, `MockEventReader`, `MockUnitOfWorkFactory`,
//! `MockHostLookup`, `MockClock`, `MockIdGenerator`, `MockDomainChallenge` and
//! `MockTokenGenerator`.

pub use crate::challenge::{MockDomainChallenge, MockTokenGenerator};
pub use crate::ports::{
    MockClock, MockDomainRepository, MockEventReader, MockEventWriter, MockHostLookup,
    MockIdGenerator, MockInstanceDomainRepository, MockInstanceRepository, MockOrgDomainRepository,
    MockOrganizationRepository, MockUnitOfWorkFactory,
};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::Result;
use crate::event::{NewEvent, StoredEvent};
use crate::id::{InstanceId, OrgId};
use crate::model::{Domain, Instance, InstanceDomain, Organization, OrganizationDomain};
use crate::ports::{
    DomainRepository, EventWriter, InstanceDomainRepository, InstanceRepository,
    OrgDomainRepository, OrganizationRepository, UnitOfWork,
};
use crate::query::{
    DomainCriteria, DomainSort, InstanceCriteria, NameSort, OrganizationCriteria, Pagination,
};
use crate::state::{
    DomainChange, InstanceChange, InstanceDomainChange, OrgDomainChange, OrganizationChange,
};

mockall::mock! {
    pub UnitOfWork {}

    #[async_trait]
    impl InstanceRepository for UnitOfWork {
        async fn apply_instance_change(&mut self, change: InstanceChange, at: OffsetDateTime) -> Result<u64>;
        async fn get_instance(&mut self, id: &InstanceId) -> Result<Instance>;
        async fn list_instances(&mut self, criteria: &InstanceCriteria, page: &Pagination<NameSort>) -> Result<Vec<Instance>>;
        async fn count_instances(&mut self, criteria: &InstanceCriteria) -> Result<u64>;
        async fn instance_by_host(&mut self, host: &str) -> Result<Instance>;
    }

    #[async_trait]
    impl OrganizationRepository for UnitOfWork {
        async fn apply_organization_change(&mut self, change: OrganizationChange, at: OffsetDateTime) -> Result<u64>;
        async fn get_organization(&mut self, instance_id: &InstanceId, id: &OrgId) -> Result<Organization>;
        async fn list_organizations(&mut self, criteria: &OrganizationCriteria, page: &Pagination<NameSort>) -> Result<Vec<Organization>>;
        async fn count_organizations(&mut self, criteria: &OrganizationCriteria) -> Result<u64>;
    }

    #[async_trait]
    impl InstanceDomainRepository for UnitOfWork {
        async fn apply_instance_domain_change(&mut self, change: InstanceDomainChange, at: OffsetDateTime) -> Result<u64>;
        async fn list_instance_domains(&mut self, instance_id: &InstanceId) -> Result<Vec<InstanceDomain>>;
    }

    #[async_trait]
    impl OrgDomainRepository for UnitOfWork {
        async fn apply_org_domain_change(&mut self, change: OrgDomainChange, at: OffsetDateTime) -> Result<u64>;
        async fn list_org_domains(&mut self, instance_id: &InstanceId, org_id: &OrgId) -> Result<Vec<OrganizationDomain>>;
    }

    #[async_trait]
    impl DomainRepository for UnitOfWork {
        async fn apply_domain_change(&mut self, change: DomainChange, at: OffsetDateTime) -> Result<u64>;
        async fn get_domain(&mut self, criteria: &DomainCriteria) -> Result<Domain>;
        async fn list_domains(&mut self, criteria: &DomainCriteria, page: &Pagination<DomainSort>) -> Result<Vec<Domain>>;
    }

    #[async_trait]
    impl EventWriter for UnitOfWork {
        async fn push(&mut self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>>;
    }

    #[async_trait]
    impl UnitOfWork for UnitOfWork {
        async fn commit(&mut self) -> Result<()>;
        async fn rollback(&mut self) -> Result<()>;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::HostLookup;

    #[tokio::test]
    async fn host_lookup_has_a_mock() {
        let mut hosts = MockHostLookup::new();
        hosts
            .expect_instance_by_host()
            .withf(|host| host == "login.acme.example")
            .returning(|_| InstanceId::new("acme"));
        let found = hosts.instance_by_host("login.acme.example").await;
        assert_eq!(found.ok(), InstanceId::new("acme").ok());
    }
}
