//! In-memory adapters of every port. A unit of work works on a copy of the state and
//! commits it back atomically; a commit on top of a concurrent one fails with Conflict
//! (optimistic concurrency over the whole store, which keeps the semantics simple and
//! strict). Rules are those of `tenancy_core::state::InMemoryState`, which mirrors the
//! PostgreSQL schema.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use rust_decimal::Decimal;
use tenancy_core::error::{Error, Result};
use tenancy_core::event::{EventQuery, NewEvent, StoredEvent, UniqueAction};
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{Domain, Instance, InstanceDomain, Organization, OrganizationDomain};
use tenancy_core::ports::{
    DomainRepository, EventReader, EventWriter, InstanceDomainRepository, InstanceRepository,
    OrgDomainRepository, OrganizationRepository, UnitOfWork, UnitOfWorkFactory,
};
use tenancy_core::query::{
    DomainCriteria, DomainSort, InstanceCriteria, NameSort, OrganizationCriteria, Pagination,
};
use tenancy_core::state::{
    DomainChange, InMemoryState, InstanceChange, InstanceDomainChange, OrgDomainChange,
    OrganizationChange, StateChange,
};
use time::OffsetDateTime;

type UniqueKey = (String, String, String);

#[derive(Debug, Default)]
struct Shared {
    state: InMemoryState,
    events: Vec<StoredEvent>,
    uniques: HashSet<UniqueKey>,
    version: u64,
    next_position: u64,
}

/// The in-memory store: a [`UnitOfWorkFactory`] over shared state and events.
#[derive(Debug, Clone, Default)]
pub struct InMemoryStore {
    shared: Arc<Mutex<Shared>>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panicking test must not poison every later one.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl InMemoryStore {
    /// An empty store: no rows, no events.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                state: InMemoryState::new(),
                ..Shared::default()
            })),
        }
    }

    /// The committed state (a copy).
    pub fn state(&self) -> InMemoryState {
        lock(&self.shared).state.clone()
    }

    /// Every committed event, in sort-key order.
    pub fn events(&self) -> Vec<StoredEvent> {
        lock(&self.shared).events.clone()
    }

    /// An event reader over the committed events.
    pub fn event_reader(&self) -> InMemoryEventStore {
        InMemoryEventStore {
            shared: self.shared.clone(),
        }
    }

    /// Host resolution over this store, without a cache (the in-memory counterpart of
    /// `tenancy_postgres::hosts::HostResolver`): `instance_by_host` takes a `Host` header.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use tenancy_core::command::{run, AddInstance, AddInstanceDomain};
    /// use tenancy_core::ports::HostLookup;
    /// let store = tenancy_testkit::InMemoryStore::new();
    /// let ctx = tenancy_testkit::fixtures::context();
    /// let acme = run(&store, &ctx, &AddInstance { name: "ACME".into() }).await?;
    /// let domain = AddInstanceDomain { instance_id: acme.clone(), domain: "login.acme.example".into(), generated: false };
    /// run(&store, &ctx, &domain).await?;
    /// assert_eq!(store.host_lookup().instance_by_host("LOGIN.acme.example.:443").await?, acme);
    /// # Ok::<(), tenancy_core::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn host_lookup(&self) -> tenancy_core::hosts::RepositoryHosts {
        tenancy_core::hosts::RepositoryHosts(std::sync::Arc::new(self.clone()))
    }

    /// A unit of work (also usable for reads outside commands).
    pub fn unit_of_work(&self) -> InMemoryUnitOfWork {
        let shared = lock(&self.shared);
        InMemoryUnitOfWork {
            store: self.shared.clone(),
            state: shared.state.clone(),
            uniques: shared.uniques.clone(),
            base_version: shared.version,
            pending: Vec::new(),
            done: false,
        }
    }
}

#[async_trait]
impl UnitOfWorkFactory for InMemoryStore {
    async fn begin(&self) -> Result<Box<dyn UnitOfWork>> {
        Ok(Box::new(self.unit_of_work()))
    }
}

/// A transaction on a private copy of the state.
#[derive(Debug)]
pub struct InMemoryUnitOfWork {
    store: Arc<Mutex<Shared>>,
    state: InMemoryState,
    uniques: HashSet<UniqueKey>,
    base_version: u64,
    pending: Vec<StoredEvent>,
    done: bool,
}

impl InMemoryUnitOfWork {
    fn apply(&mut self, change: impl Into<StateChange>, at: OffsetDateTime) -> Result<u64> {
        self.usable()?;
        self.state.apply(&change.into(), at)
    }

    fn usable(&self) -> Result<()> {
        if self.done {
            Err(Error::internal(
                "the unit of work is already committed or rolled back",
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl InstanceRepository for InMemoryUnitOfWork {
    async fn apply_instance_change(
        &mut self,
        change: InstanceChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        self.apply(change, at)
    }

    async fn get_instance(&mut self, id: &InstanceId) -> Result<Instance> {
        self.state.instance(id)
    }
    async fn list_instances(
        &mut self,
        criteria: &InstanceCriteria,
        page: &Pagination<NameSort>,
    ) -> Result<Vec<Instance>> {
        self.state.instances(criteria, page)
    }
    async fn count_instances(&mut self, criteria: &InstanceCriteria) -> Result<u64> {
        Ok(self.state.count_instances(criteria))
    }
    async fn instance_by_host(&mut self, host: &str) -> Result<Instance> {
        self.state.instance_by_host(host)
    }
}

#[async_trait]
impl OrganizationRepository for InMemoryUnitOfWork {
    async fn apply_organization_change(
        &mut self,
        change: OrganizationChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        self.apply(change, at)
    }

    async fn get_organization(
        &mut self,
        instance_id: &InstanceId,
        id: &OrgId,
    ) -> Result<Organization> {
        self.state.organization(instance_id, id)
    }
    async fn list_organizations(
        &mut self,
        criteria: &OrganizationCriteria,
        page: &Pagination<NameSort>,
    ) -> Result<Vec<Organization>> {
        self.state.organizations(criteria, page)
    }
    async fn count_organizations(&mut self, criteria: &OrganizationCriteria) -> Result<u64> {
        self.state.count_organizations(criteria)
    }
}

#[async_trait]
impl InstanceDomainRepository for InMemoryUnitOfWork {
    async fn apply_instance_domain_change(
        &mut self,
        change: InstanceDomainChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        self.apply(change, at)
    }

    async fn list_instance_domains(
        &mut self,
        instance_id: &InstanceId,
    ) -> Result<Vec<InstanceDomain>> {
        Ok(self.state.instance_domains(instance_id))
    }
}

#[async_trait]
impl OrgDomainRepository for InMemoryUnitOfWork {
    async fn apply_org_domain_change(
        &mut self,
        change: OrgDomainChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        self.apply(change, at)
    }

    async fn list_org_domains(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
    ) -> Result<Vec<OrganizationDomain>> {
        Ok(self.state.org_domains(instance_id, Some(org_id)))
    }
}

#[async_trait]
impl DomainRepository for InMemoryUnitOfWork {
    async fn apply_domain_change(
        &mut self,
        change: DomainChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        self.apply(change, at)
    }

    async fn get_domain(&mut self, criteria: &DomainCriteria) -> Result<Domain> {
        self.state.domain(criteria)
    }
    async fn list_domains(
        &mut self,
        criteria: &DomainCriteria,
        page: &Pagination<DomainSort>,
    ) -> Result<Vec<Domain>> {
        self.state.domains(criteria, page)
    }
}

#[async_trait]
impl EventWriter for InMemoryUnitOfWork {
    async fn push(&mut self, events: Vec<NewEvent>) -> Result<Vec<StoredEvent>> {
        self.usable()?;
        let mut shared = lock(&self.store);
        let mut uniques = self.uniques.clone();
        let mut stored = Vec::with_capacity(events.len());
        for (order, event) in events.into_iter().enumerate() {
            let latest = shared
                .events
                .iter()
                .chain(self.pending.iter())
                .chain(stored.iter())
                .filter(|e: &&StoredEvent| {
                    e.instance_id == event.instance_id
                        && e.aggregate_type == event.aggregate_type
                        && e.aggregate_id == event.aggregate_id
                })
                .map(|e| e.sequence)
                .max()
                .unwrap_or(0);
            if let Some(expected) = event.expected_sequence
                && expected != latest
            {
                return Err(Error::Conflict(format!(
                    "{} {} is at sequence {latest}, expected {expected}",
                    event.aggregate_type, event.aggregate_id
                )));
            }
            for unique in &event.unique_constraints {
                let key = (
                    unique.instance_id.clone(),
                    unique.unique_type.clone(),
                    unique.unique_field.to_lowercase(),
                );
                match unique.action {
                    UniqueAction::Add => {
                        if !uniques.insert(key) {
                            return Err(Error::AlreadyExists {
                                rule: tenancy_core::Rule::of_unique_type(&unique.unique_type),
                                value: unique.unique_field.clone(),
                            });
                        }
                    }
                    UniqueAction::Remove => {
                        uniques.remove(&key);
                    }
                }
            }
            shared.next_position += 1;
            stored.push(StoredEvent {
                instance_id: event.instance_id,
                aggregate_type: event.aggregate_type,
                aggregate_id: event.aggregate_id,
                event_type: event.event_type,
                sequence: latest + 1,
                revision: event.revision,
                created_at: event.created_at.unwrap_or_else(OffsetDateTime::now_utc),
                payload: event.payload,
                creator: event.creator,
                owner: event.owner,
                position: Decimal::from(shared.next_position),
                in_tx_order: i32::try_from(order + 1).unwrap_or(i32::MAX),
                written_by_v3: event.written_by_v3,
            });
        }
        self.uniques = uniques;
        self.pending.extend(stored.iter().cloned());
        Ok(stored)
    }
}

#[async_trait]
impl UnitOfWork for InMemoryUnitOfWork {
    async fn commit(&mut self) -> Result<()> {
        self.usable()?;
        let mut shared = lock(&self.store);
        if shared.version != self.base_version {
            return Err(Error::Conflict(
                "the store changed since this unit of work began".into(),
            ));
        }
        shared.state = std::mem::take(&mut self.state);
        shared.uniques = std::mem::take(&mut self.uniques);
        shared.events.append(&mut self.pending);
        shared.version += 1;
        self.done = true;
        Ok(())
    }

    async fn rollback(&mut self) -> Result<()> {
        self.done = true;
        self.pending.clear();
        Ok(())
    }
}

/// Reads the committed events of an [`InMemoryStore`].
#[derive(Debug, Clone)]
pub struct InMemoryEventStore {
    shared: Arc<Mutex<Shared>>,
}

#[async_trait]
impl EventReader for InMemoryEventStore {
    async fn read(&self, query: &EventQuery) -> Result<Vec<StoredEvent>> {
        let shared = lock(&self.shared);
        let any = |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        let mut events: Vec<StoredEvent> = shared
            .events
            .iter()
            .filter(|e| e.instance_id == query.instance_id)
            .filter(|e| any(&query.aggregate_types, &e.aggregate_type))
            .filter(|e| any(&query.aggregate_ids, &e.aggregate_id))
            .filter(|e| any(&query.event_types, &e.event_type))
            .filter(|e| {
                query
                    .after
                    .as_ref()
                    .is_none_or(|after| e.sort_key() > *after)
            })
            .cloned()
            .collect();
        events.sort_by_key(StoredEvent::sort_key);
        if let Some(limit) = query.limit {
            events.truncate(limit as usize);
        }
        Ok(events)
    }

    async fn read_aggregate(
        &self,
        instance_id: &str,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>> {
        let shared = lock(&self.shared);
        let mut events: Vec<StoredEvent> = shared
            .events
            .iter()
            .filter(|e| {
                e.instance_id == instance_id
                    && e.aggregate_type == aggregate_type
                    && e.aggregate_id == aggregate_id
            })
            .cloned()
            .collect();
        events.sort_by_key(|e| e.sequence);
        Ok(events)
    }
}
