//! The in-memory model of the five tables: applies [`StateChange`]s with the same rules as
//! the PostgreSQL schema (lengths, uniqueness by `lower(domain)`, foreign keys, one primary,
//! soft delete). `verify` folds the event stream into it; the in-memory adapters of
//! `tenancy-testkit` serve the repository ports from it.

use std::collections::{BTreeMap, HashMap};

use time::OffsetDateTime;

use crate::error::{Error, Result, Rule};
use crate::event::{LegacyEvent, UniqueConstraint};
use crate::id::{InstanceId, OrgId};
use crate::model::{
    Domain, Instance, InstanceDomain, InstanceDomainKind, InstanceDomainType, Organization,
    OrganizationDomain, OrganizationState,
};
use crate::query::{
    DomainCriteria, DomainOwner, DomainSort, InstanceCriteria, Keyset, NameSort,
    OrganizationCriteria, Pagination, SortOrder,
};
use crate::state::{
    DomainChange, InstanceChange, InstanceDomainChange, OrgDomainChange, OrganizationChange,
    StateChange, reduce,
};

type InstanceDomainKey = (String, InstanceDomainType, String);
type OrgDomainKey = (String, String, String);
type LiveDomainKey = (String, Option<String>, String);

/// The five tables in memory.
#[derive(Debug, Clone, Default)]
pub struct InMemoryState {
    instances: BTreeMap<String, Instance>,
    organizations: BTreeMap<(String, String), Organization>,
    instance_domains: BTreeMap<InstanceDomainKey, InstanceDomain>,
    org_domains: BTreeMap<OrgDomainKey, OrganizationDomain>,
    domains: BTreeMap<i64, Domain>,
    /// `(instance, org, lower(domain))` of live unified rows -> id.
    live_domains: HashMap<LiveDomainKey, i64>,
    /// Ids of the unified rows of each instance (live or not), so per-instance work does
    /// not scan every instance's rows.
    domains_of_instance: HashMap<String, Vec<i64>>,
    /// `lower(domain)` of live unified instance domains (unique across instances) -> id.
    live_instance_domains: HashMap<String, i64>,
    /// `lower(domain)` of custom rows of `instance_domains` (unique across instances) -> instance.
    custom_domains: HashMap<String, String>,
    next_domain_id: i64,
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// The keys of a map keyed by `(instance, ..)` that belong to one instance, in order.
fn keys_of<K: Ord + Clone, V>(map: &BTreeMap<K, V>, from: K, same: impl Fn(&K) -> bool) -> Vec<K> {
    map.range(from..)
        .take_while(|(k, _)| same(k))
        .map(|(k, _)| k.clone())
        .collect()
}

fn check_domain_len(domain: &str) -> Result<()> {
    let len = domain.chars().count();
    if (1..=255).contains(&len) {
        Ok(())
    } else {
        Err(Error::invalid(
            "domain",
            format!("length {len} is outside 1..=255"),
        ))
    }
}

fn check_non_empty(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        Err(Error::invalid(field, "must not be empty"))
    } else {
        Ok(())
    }
}

impl InMemoryState {
    pub fn new() -> Self {
        Self {
            next_domain_id: 1,
            ..Self::default()
        }
    }

    /// Applies one legacy event atomically: every change is checked before any is applied,
    /// so a failing event leaves the state untouched. Returns the rows changed.
    pub fn apply_event(
        &mut self,
        instance_id: &InstanceId,
        aggregate_id: &str,
        event: &LegacyEvent,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let changes = reduce(instance_id, aggregate_id, event)?;
        self.apply_all(&changes, at)
    }

    /// Applies changes atomically (all checked first). The changes of one event touch
    /// different tables, so checking each against the state before any is applied is exact.
    pub fn apply_all(&mut self, changes: &[StateChange], at: OffsetDateTime) -> Result<u64> {
        for change in changes {
            self.run(change, at, true)?;
        }
        let mut rows = 0;
        for change in changes {
            rows += self.run(change, at, false)?;
        }
        Ok(rows)
    }

    /// Applies one change; on error nothing changed.
    pub fn apply(&mut self, change: &StateChange, at: OffsetDateTime) -> Result<u64> {
        self.run(change, at, true)?;
        self.run(change, at, false)
    }

    /// Checks the rules of `change`, then (unless `check_only`) applies it.
    fn run(&mut self, change: &StateChange, at: OffsetDateTime, check_only: bool) -> Result<u64> {
        use StateChange as C;
        match change {
            C::Instance(InstanceChange::Create { id, name }) => {
                check_non_empty("name", name)?;
                if let Some(existing) = self.instances.get(id.as_str())
                    && existing.deleted_at.is_none()
                {
                    return Err(Error::already_exists(Rule::InstanceId, id));
                }
                if check_only {
                    return Ok(0);
                }
                self.instances.insert(
                    id.as_str().to_owned(),
                    Instance {
                        id: id.clone(),
                        name: name.clone(),
                        default_org_id: None,
                        iam_project_id: None,
                        console_client_id: None,
                        console_app_id: None,
                        default_language: None,
                        created_at: at,
                        updated_at: at,
                        deleted_at: None,
                    },
                );
                Ok(1)
            }
            C::Instance(InstanceChange::Update { id, update }) => {
                if let Some(name) = &update.name {
                    check_non_empty("name", name)?;
                }
                let Some(row) = self
                    .instances
                    .get_mut(id.as_str())
                    .filter(|r| r.deleted_at.is_none())
                else {
                    return Ok(0);
                };
                if check_only {
                    return Ok(0);
                }
                let set = |target: &mut Option<String>, value: &Option<String>| {
                    if let Some(v) = value {
                        *target = Some(v.clone());
                    }
                };
                if let Some(name) = &update.name {
                    row.name = name.clone();
                }
                set(&mut row.default_org_id, &update.default_org_id);
                set(&mut row.iam_project_id, &update.iam_project_id);
                set(&mut row.console_client_id, &update.console_client_id);
                set(&mut row.console_app_id, &update.console_app_id);
                set(&mut row.default_language, &update.default_language);
                row.updated_at = at;
                Ok(1)
            }
            C::Instance(InstanceChange::Remove { id }) => {
                let Some(row) = self
                    .instances
                    .get_mut(id.as_str())
                    .filter(|r| r.deleted_at.is_none())
                else {
                    return Ok(0);
                };
                if check_only {
                    return Ok(0);
                }
                row.deleted_at = Some(at);
                row.updated_at = at;
                Ok(1)
            }
            C::Organization(OrganizationChange::Create {
                instance_id,
                id,
                name,
            }) => {
                check_non_empty("name", name)?;
                self.check_instance_exists(instance_id)?;
                let key = (instance_id.as_str().to_owned(), id.as_str().to_owned());
                if self
                    .organizations
                    .get(&key)
                    .is_some_and(|o| o.deleted_at.is_none())
                {
                    return Err(Error::already_exists(Rule::OrganizationId, id));
                }
                self.check_org_name_free(instance_id, id, name)?;
                if check_only {
                    return Ok(0);
                }
                self.organizations.insert(
                    key,
                    Organization {
                        instance_id: instance_id.clone(),
                        id: id.clone(),
                        name: name.clone(),
                        state: OrganizationState::Active,
                        created_at: at,
                        updated_at: at,
                        deleted_at: None,
                    },
                );
                Ok(1)
            }
            C::Organization(OrganizationChange::Update {
                instance_id,
                id,
                update,
            }) => {
                let key = (instance_id.as_str().to_owned(), id.as_str().to_owned());
                if self
                    .organizations
                    .get(&key)
                    .is_none_or(|o| o.deleted_at.is_some())
                {
                    return Ok(0);
                }
                if let Some(name) = &update.name {
                    check_non_empty("name", name)?;
                    self.check_org_name_free(instance_id, id, name)?;
                }
                if check_only {
                    return Ok(0);
                }
                let Some(row) = self.organizations.get_mut(&key) else {
                    return Ok(0);
                };
                if let Some(name) = &update.name {
                    row.name = name.clone();
                }
                if let Some(state) = update.state {
                    row.state = state;
                }
                row.updated_at = at;
                Ok(1)
            }
            C::Organization(OrganizationChange::Remove { instance_id, id }) => {
                let key = (instance_id.as_str().to_owned(), id.as_str().to_owned());
                let Some(row) = self
                    .organizations
                    .get_mut(&key)
                    .filter(|o| o.deleted_at.is_none())
                else {
                    return Ok(0);
                };
                if check_only {
                    return Ok(0);
                }
                row.deleted_at = Some(at);
                row.updated_at = at;
                Ok(1)
            }
            C::Organization(OrganizationChange::RemoveAllOfInstance { instance_id }) => {
                if check_only {
                    return Ok(0);
                }
                let mut n = 0;
                let from = (instance_id.as_str().to_owned(), String::new());
                for (_, org) in self
                    .organizations
                    .range_mut(from..)
                    .take_while(|((i, _), _)| i == instance_id.as_str())
                {
                    if org.deleted_at.is_none() {
                        org.deleted_at = Some(at);
                        org.updated_at = at;
                        n += 1;
                    }
                }
                Ok(n)
            }
            C::InstanceDomain(InstanceDomainChange::Insert {
                instance_id,
                domain,
                kind,
            }) => {
                check_domain_len(domain)?;
                self.check_instance_exists(instance_id)?;
                let key = (
                    instance_id.as_str().to_owned(),
                    kind.domain_type(),
                    lower(domain),
                );
                match kind {
                    InstanceDomainKind::Custom { is_primary, .. } => {
                        if self.custom_domains.contains_key(&key.2) {
                            return Err(Error::already_exists(Rule::CustomInstanceDomain, domain));
                        }
                        if *is_primary && self.primary_instance_domain(instance_id).is_some() {
                            return Err(Error::already_exists(Rule::PrimaryInstanceDomain, domain));
                        }
                    }
                    InstanceDomainKind::Trusted => {
                        if self.instance_domains.contains_key(&key) {
                            return Err(Error::already_exists(Rule::TrustedInstanceDomain, domain));
                        }
                    }
                }
                if check_only {
                    return Ok(0);
                }
                if kind.domain_type() == InstanceDomainType::Custom {
                    self.custom_domains.insert(key.2.clone(), key.0.clone());
                }
                self.instance_domains.insert(
                    key,
                    InstanceDomain {
                        instance_id: instance_id.clone(),
                        domain: domain.clone(),
                        kind: *kind,
                        created_at: at,
                        updated_at: at,
                    },
                );
                Ok(1)
            }
            C::InstanceDomain(InstanceDomainChange::SetPrimary {
                instance_id,
                domain,
            }) => {
                let key = (
                    instance_id.as_str().to_owned(),
                    InstanceDomainType::Custom,
                    lower(domain),
                );
                if !self.instance_domains.contains_key(&key) || check_only {
                    return Ok(0);
                }
                let mut n = 0;
                for (k, row) in self.instance_domains.range_mut(
                    (
                        instance_id.as_str().to_owned(),
                        InstanceDomainType::Custom,
                        String::new(),
                    )..,
                ) {
                    if k.0 != instance_id.as_str() || k.1 != InstanceDomainType::Custom {
                        break;
                    }
                    if let InstanceDomainKind::Custom { is_primary, .. } = &mut row.kind {
                        let target = *k == key;
                        if *is_primary != target || target {
                            *is_primary = target;
                            row.updated_at = at;
                            n += 1;
                        }
                    }
                }
                Ok(n)
            }
            C::InstanceDomain(InstanceDomainChange::Delete {
                instance_id,
                domain,
                domain_type,
            }) => {
                let key = (instance_id.as_str().to_owned(), *domain_type, lower(domain));
                if check_only {
                    return Ok(0);
                }
                Ok(u64::from(self.remove_instance_domain_row(&key)))
            }
            C::InstanceDomain(InstanceDomainChange::DeleteAllOfInstance { instance_id }) => {
                if check_only {
                    return Ok(0);
                }
                let from = (
                    instance_id.as_str().to_owned(),
                    InstanceDomainType::Custom,
                    String::new(),
                );
                let keys = keys_of(&self.instance_domains, from, |k| {
                    k.0 == instance_id.as_str()
                });
                for key in &keys {
                    self.remove_instance_domain_row(key);
                }
                Ok(keys.len() as u64)
            }
            C::OrgDomain(OrgDomainChange::Insert {
                instance_id,
                org_id,
                domain,
            }) => {
                check_domain_len(domain)?;
                self.check_org_exists(instance_id, org_id)?;
                let key = org_domain_key(instance_id, org_id, domain);
                if self.org_domains.contains_key(&key) {
                    return Err(Error::already_exists(Rule::OrganizationDomain, domain));
                }
                if check_only {
                    return Ok(0);
                }
                self.org_domains.insert(
                    key,
                    OrganizationDomain {
                        instance_id: instance_id.clone(),
                        org_id: org_id.clone(),
                        domain: domain.clone(),
                        is_verified: false,
                        is_primary: false,
                        validation_type: None,
                        created_at: at,
                        updated_at: at,
                    },
                );
                Ok(1)
            }
            C::OrgDomain(OrgDomainChange::SetValidation {
                instance_id,
                org_id,
                domain,
                validation_type,
            }) => {
                let key = org_domain_key(instance_id, org_id, domain);
                if check_only {
                    return Ok(0);
                }
                Ok(match self.org_domains.get_mut(&key) {
                    Some(row) => {
                        row.validation_type = Some(*validation_type);
                        row.updated_at = at;
                        1
                    }
                    None => 0,
                })
            }
            C::OrgDomain(OrgDomainChange::SetVerified {
                instance_id,
                org_id,
                domain,
            }) => {
                let key = org_domain_key(instance_id, org_id, domain);
                if !self.org_domains.contains_key(&key) {
                    return Ok(0);
                }
                let from = (
                    instance_id.as_str().to_owned(),
                    String::new(),
                    String::new(),
                );
                let taken = self
                    .org_domains
                    .range(from..)
                    .take_while(|(k, _)| k.0 == key.0)
                    .any(|(k, d)| k.1 != key.1 && k.2 == key.2 && d.is_verified);
                if taken {
                    return Err(Error::already_exists(
                        Rule::VerifiedOrganizationDomain,
                        domain,
                    ));
                }
                if check_only {
                    return Ok(0);
                }
                let Some(row) = self.org_domains.get_mut(&key) else {
                    return Ok(0);
                };
                row.is_verified = true;
                row.updated_at = at;
                Ok(1)
            }
            C::OrgDomain(OrgDomainChange::SetPrimary {
                instance_id,
                org_id,
                domain,
            }) => {
                let key = org_domain_key(instance_id, org_id, domain);
                if !self.org_domains.contains_key(&key) || check_only {
                    return Ok(0);
                }
                let mut n = 0;
                let from = (key.0.clone(), key.1.clone(), String::new());
                for (k, row) in self
                    .org_domains
                    .range_mut(from..)
                    .take_while(|(k, _)| k.0 == key.0 && k.1 == key.1)
                {
                    if row.is_primary || *k == key {
                        row.is_primary = *k == key;
                        row.updated_at = at;
                        n += 1;
                    }
                }
                Ok(n)
            }
            C::OrgDomain(OrgDomainChange::Delete {
                instance_id,
                org_id,
                domain,
            }) => {
                if check_only {
                    return Ok(0);
                }
                let key = org_domain_key(instance_id, org_id, domain);
                Ok(u64::from(self.org_domains.remove(&key).is_some()))
            }
            C::OrgDomain(OrgDomainChange::DeleteAllOfOrg {
                instance_id,
                org_id,
            }) => {
                if check_only {
                    return Ok(0);
                }
                let from = (
                    instance_id.as_str().to_owned(),
                    org_id.as_str().to_owned(),
                    String::new(),
                );
                let keys = keys_of(&self.org_domains, from, |k| {
                    k.0 == instance_id.as_str() && k.1 == org_id.as_str()
                });
                for key in &keys {
                    self.org_domains.remove(key);
                }
                Ok(keys.len() as u64)
            }
            C::OrgDomain(OrgDomainChange::DeleteAllOfInstance { instance_id }) => {
                if check_only {
                    return Ok(0);
                }
                let from = (
                    instance_id.as_str().to_owned(),
                    String::new(),
                    String::new(),
                );
                let keys = keys_of(&self.org_domains, from, |k| k.0 == instance_id.as_str());
                for key in &keys {
                    self.org_domains.remove(key);
                }
                Ok(keys.len() as u64)
            }
            C::Domain(DomainChange::AddInstanceDomain {
                instance_id,
                domain,
            }) => self
                .add_domain(instance_id, None, domain, true, None, at, check_only)
                .map(|_| u64::from(!check_only)),
            C::Domain(DomainChange::AddOrganizationDomain {
                instance_id,
                org_id,
                domain,
                validation_type,
            }) => self
                .add_domain(
                    instance_id,
                    Some(org_id),
                    domain,
                    false,
                    *validation_type,
                    at,
                    check_only,
                )
                .map(|_| u64::from(!check_only)),
            C::Domain(DomainChange::SetInstanceDomainPrimary {
                instance_id,
                domain,
            }) => self.set_domain_primary(instance_id, None, domain, at, check_only),
            C::Domain(DomainChange::SetOrganizationDomainPrimary {
                instance_id,
                org_id,
                domain,
            }) => self.set_domain_primary(instance_id, Some(org_id), domain, at, check_only),
            C::Domain(DomainChange::RemoveInstanceDomain {
                instance_id,
                domain,
            }) => self.remove_domains(instance_id, at, check_only, |d| {
                d.instance_id == *instance_id
                    && d.org_id.is_none()
                    && lower(&d.domain) == lower(domain)
            }),
            C::Domain(DomainChange::RemoveOrganizationDomain {
                instance_id,
                org_id,
                domain,
            }) => self.remove_domains(instance_id, at, check_only, |d| {
                d.instance_id == *instance_id
                    && d.org_id.as_ref() == Some(org_id)
                    && lower(&d.domain) == lower(domain)
            }),
            C::Domain(DomainChange::RemoveDomainsOfOrganization {
                instance_id,
                org_id,
            }) => self.remove_domains(instance_id, at, check_only, |d| {
                d.instance_id == *instance_id && d.org_id.as_ref() == Some(org_id)
            }),
            C::Domain(DomainChange::RemoveDomainsOfInstance { instance_id }) => self
                .remove_domains(instance_id, at, check_only, |d| {
                    d.instance_id == *instance_id
                }),
            C::Domain(DomainChange::SetOrganizationDomainValidationType {
                instance_id,
                org_id,
                domain,
                validation_type,
            }) => {
                let Some(id) = self.live_domain_id(instance_id, Some(org_id), domain) else {
                    return Ok(0);
                };
                if check_only {
                    return Ok(0);
                }
                let Some(row) = self.domains.get_mut(&id) else {
                    return Ok(0);
                };
                row.validation_type = Some(*validation_type);
                row.updated_at = at;
                Ok(1)
            }
            C::Domain(DomainChange::SetOrganizationDomainVerified {
                instance_id,
                org_id,
                domain,
            }) => {
                let Some(id) = self.live_domain_id(instance_id, Some(org_id), domain) else {
                    return Ok(0);
                };
                let taken = self.instance_domain_rows(instance_id).any(|d| {
                    d.deleted_at.is_none()
                        && d.org_id.is_some()
                        && d.org_id.as_ref() != Some(org_id)
                        && d.is_verified
                        && lower(&d.domain) == lower(domain)
                });
                if taken {
                    return Err(Error::already_exists(
                        Rule::VerifiedOrganizationDomain,
                        domain,
                    ));
                }
                if check_only {
                    return Ok(0);
                }
                let Some(row) = self.domains.get_mut(&id) else {
                    return Ok(0);
                };
                row.is_verified = true;
                row.updated_at = at;
                Ok(1)
            }
        }
    }

    fn remove_instance_domain_row(&mut self, key: &InstanceDomainKey) -> bool {
        let removed = self.instance_domains.remove(key).is_some();
        if removed && key.1 == InstanceDomainType::Custom {
            self.custom_domains.remove(&key.2);
        }
        removed
    }

    fn check_instance_exists(&self, id: &InstanceId) -> Result<()> {
        // The foreign key references the row, soft-deleted or not.
        if self.instances.contains_key(id.as_str()) {
            Ok(())
        } else {
            Err(Error::not_found("instance", id))
        }
    }

    fn check_org_exists(&self, instance_id: &InstanceId, id: &OrgId) -> Result<()> {
        if self
            .organizations
            .contains_key(&(instance_id.as_str().to_owned(), id.as_str().to_owned()))
        {
            Ok(())
        } else {
            Err(Error::not_found("organization", id))
        }
    }

    fn check_org_name_free(&self, instance_id: &InstanceId, id: &OrgId, name: &str) -> Result<()> {
        let (name_lower, from) = (
            lower(name),
            (instance_id.as_str().to_owned(), String::new()),
        );
        let taken = self
            .organizations
            .range(from..)
            .take_while(|((i, _), _)| i == instance_id.as_str())
            .any(|(_, o)| o.id != *id && o.deleted_at.is_none() && lower(&o.name) == name_lower);
        if taken {
            Err(Error::already_exists(Rule::OrganizationName, name))
        } else {
            Ok(())
        }
    }

    fn primary_instance_domain(&self, instance_id: &InstanceId) -> Option<&InstanceDomain> {
        let from = (
            instance_id.as_str().to_owned(),
            InstanceDomainType::Custom,
            String::new(),
        );
        self.instance_domains
            .range(from..)
            .take_while(|((i, _, _), _)| i == instance_id.as_str())
            .map(|(_, d)| d)
            .find(|d| {
                matches!(
                    d.kind,
                    InstanceDomainKind::Custom {
                        is_primary: true,
                        ..
                    }
                )
            })
    }

    fn live_domain_id(
        &self,
        instance_id: &InstanceId,
        org_id: Option<&OrgId>,
        domain: &str,
    ) -> Option<i64> {
        self.live_domains
            .get(&(
                instance_id.as_str().to_owned(),
                org_id.map(|o| o.as_str().to_owned()),
                lower(domain),
            ))
            .copied()
    }

    #[allow(clippy::too_many_arguments)]
    fn add_domain(
        &mut self,
        instance_id: &InstanceId,
        org_id: Option<&OrgId>,
        domain: &str,
        is_verified: bool,
        validation_type: Option<crate::model::ValidationType>,
        at: OffsetDateTime,
        check_only: bool,
    ) -> Result<Option<Domain>> {
        check_domain_len(domain)?;
        match org_id {
            None => {
                self.check_instance_exists(instance_id)?;
                if self.live_instance_domains.contains_key(&lower(domain)) {
                    return Err(Error::already_exists(Rule::InstanceDomain, domain));
                }
            }
            Some(org) => {
                self.check_org_exists(instance_id, org)?;
                if self.live_domain_id(instance_id, org_id, domain).is_some() {
                    return Err(Error::already_exists(Rule::OrganizationDomain, domain));
                }
            }
        }
        if check_only {
            return Ok(None);
        }
        let id = self.next_domain_id.max(1);
        self.next_domain_id = id + 1;
        let row = Domain {
            id,
            instance_id: instance_id.clone(),
            org_id: org_id.cloned(),
            domain: domain.to_owned(),
            is_verified,
            is_primary: false,
            validation_type,
            created_at: at,
            updated_at: at,
            deleted_at: None,
        };
        self.live_domains.insert(
            (
                instance_id.as_str().to_owned(),
                org_id.map(|o| o.as_str().to_owned()),
                lower(domain),
            ),
            id,
        );
        if org_id.is_none() {
            self.live_instance_domains.insert(lower(domain), id);
        }
        self.domains_of_instance
            .entry(instance_id.as_str().to_owned())
            .or_default()
            .push(id);
        self.domains.insert(id, row.clone());
        Ok(Some(row))
    }

    fn set_domain_primary(
        &mut self,
        instance_id: &InstanceId,
        org_id: Option<&OrgId>,
        domain: &str,
        at: OffsetDateTime,
        check_only: bool,
    ) -> Result<u64> {
        let Some(target) = self.live_domain_id(instance_id, org_id, domain) else {
            return Ok(0);
        };
        if check_only {
            return Ok(0);
        }
        let mut n = 0;
        let ids = self
            .domains_of_instance
            .get(instance_id.as_str())
            .cloned()
            .unwrap_or_default();
        for id in &ids {
            let Some(row) = self.domains.get_mut(id) else {
                continue;
            };
            if row.deleted_at.is_none()
                && row.org_id.as_ref() == org_id
                && (row.is_primary || row.id == target)
            {
                row.is_primary = row.id == target;
                row.updated_at = at;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Soft-deletes the live rows of one instance that `select` picks.
    fn remove_domains(
        &mut self,
        instance_id: &InstanceId,
        at: OffsetDateTime,
        check_only: bool,
        select: impl Fn(&Domain) -> bool,
    ) -> Result<u64> {
        if check_only {
            return Ok(0);
        }
        let mut n = 0;
        let ids = self
            .domains_of_instance
            .get(instance_id.as_str())
            .cloned()
            .unwrap_or_default();
        for id in &ids {
            let Some(row) = self.domains.get_mut(id) else {
                continue;
            };
            if row.deleted_at.is_none() && select(row) {
                row.deleted_at = Some(at);
                row.updated_at = at;
                let domain = lower(&row.domain);
                if row.org_id.is_none() {
                    self.live_instance_domains.remove(&domain);
                }
                self.live_domains.remove(&(
                    row.instance_id.as_str().to_owned(),
                    row.org_id.as_ref().map(|o| o.as_str().to_owned()),
                    domain,
                ));
                n += 1;
            }
        }
        Ok(n)
    }

    /// Every unified row of one instance.
    fn instance_domain_rows<'a>(
        &'a self,
        instance_id: &InstanceId,
    ) -> impl Iterator<Item = &'a Domain> + 'a {
        self.domains_of_instance
            .get(instance_id.as_str())
            .into_iter()
            .flatten()
            .filter_map(|id| self.domains.get(id))
    }

    // ---- reads -------------------------------------------------------------------------

    pub fn instance(&self, id: &InstanceId) -> Result<Instance> {
        self.instances
            .get(id.as_str())
            .filter(|i| i.deleted_at.is_none())
            .cloned()
            .ok_or_else(|| Error::not_found("instance", id))
    }

    pub fn instances(
        &self,
        criteria: &InstanceCriteria,
        page: &Pagination<NameSort>,
    ) -> Result<Vec<Instance>> {
        let mut rows: Vec<Instance> = self.matching_instances(criteria).cloned().collect();
        sort_rows(&mut rows, page.order, |a, b| {
            name_sort(
                page.sort,
                (&a.name, a.created_at, a.updated_at),
                (&b.name, b.created_at, b.updated_at),
            )
            .then_with(|| a.id.cmp(&b.id))
        });
        page.cut_after(rows, |i| {
            let k = Keyset::of_named(
                page.sort,
                &i.name,
                i.created_at,
                i.updated_at,
                i.id.as_str(),
            );
            (k.value, k.id)
        })
    }

    pub fn count_instances(&self, criteria: &InstanceCriteria) -> u64 {
        self.matching_instances(criteria).count() as u64
    }

    fn matching_instances<'a>(
        &'a self,
        criteria: &'a InstanceCriteria,
    ) -> impl Iterator<Item = &'a Instance> + 'a {
        let domain_owners: Vec<&String> = criteria
            .custom_domains
            .iter()
            .filter_map(|d| self.custom_domains.get(&lower(d)))
            .collect();
        self.instances
            .values()
            .filter(|i| criteria.include_deleted || i.deleted_at.is_none())
            .filter(|i| criteria.ids.is_empty() || criteria.ids.contains(&i.id))
            .filter(move |i| {
                criteria.custom_domains.is_empty()
                    || domain_owners.iter().any(|owner| *owner == i.id.as_str())
            })
            .filter(|i| criteria.name.as_ref().is_none_or(|m| m.matches(&i.name)))
    }

    pub fn instance_by_host(&self, host: &str) -> Result<Instance> {
        let host = lower(host);
        self.custom_domains
            .get(&host)
            .and_then(|instance| InstanceId::new(instance.clone()).ok())
            .and_then(|id| self.instance(&id).ok())
            .ok_or_else(|| Error::not_found("instance for host", host))
    }

    pub fn organization(&self, instance_id: &InstanceId, id: &OrgId) -> Result<Organization> {
        self.organizations
            .get(&(instance_id.as_str().to_owned(), id.as_str().to_owned()))
            .filter(|o| o.deleted_at.is_none())
            .cloned()
            .ok_or_else(|| Error::not_found("organization", id))
    }

    pub fn organizations(
        &self,
        criteria: &OrganizationCriteria,
        page: &Pagination<NameSort>,
    ) -> Result<Vec<Organization>> {
        let instance_id = criteria
            .instance_id
            .as_ref()
            .ok_or(Error::MissingTenant("listing organizations"))?;
        let mut rows: Vec<Organization> = self
            .matching_organizations(instance_id, criteria)
            .cloned()
            .collect();
        sort_rows(&mut rows, page.order, |a, b| {
            name_sort(
                page.sort,
                (&a.name, a.created_at, a.updated_at),
                (&b.name, b.created_at, b.updated_at),
            )
            .then_with(|| a.id.cmp(&b.id))
        });
        page.cut_after(rows, |o| {
            let k = Keyset::of_named(
                page.sort,
                &o.name,
                o.created_at,
                o.updated_at,
                o.id.as_str(),
            );
            (k.value, k.id)
        })
    }

    pub fn count_organizations(&self, criteria: &OrganizationCriteria) -> Result<u64> {
        let instance_id = criteria
            .instance_id
            .as_ref()
            .ok_or(Error::MissingTenant("counting organizations"))?;
        Ok(self.matching_organizations(instance_id, criteria).count() as u64)
    }

    fn matching_organizations<'a>(
        &'a self,
        instance_id: &'a InstanceId,
        criteria: &'a OrganizationCriteria,
    ) -> impl Iterator<Item = &'a Organization> + 'a {
        self.organizations
            .values()
            .filter(move |o| o.instance_id == *instance_id)
            .filter(|o| criteria.include_deleted || o.deleted_at.is_none())
            .filter(|o| criteria.ids.is_empty() || criteria.ids.contains(&o.id))
            .filter(|o| criteria.name.as_ref().is_none_or(|m| m.matches(&o.name)))
            .filter(|o| criteria.state.is_none_or(|s| s == o.state))
            .filter(move |o| {
                criteria.domain.as_ref().is_none_or(|m| {
                    self.org_domains(instance_id, Some(&o.id))
                        .iter()
                        .any(|d| m.matches(&d.domain))
                })
            })
    }

    pub fn instance_domains(&self, instance_id: &InstanceId) -> Vec<InstanceDomain> {
        let mut rows: Vec<_> = self
            .instance_domains
            .values()
            .filter(|d| d.instance_id == *instance_id)
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            (&a.domain, a.kind.domain_type().as_str())
                .cmp(&(&b.domain, b.kind.domain_type().as_str()))
        });
        rows
    }

    pub fn org_domains(
        &self,
        instance_id: &InstanceId,
        org_id: Option<&OrgId>,
    ) -> Vec<OrganizationDomain> {
        let mut rows: Vec<_> = self
            .org_domains
            .values()
            .filter(|d| d.instance_id == *instance_id && org_id.is_none_or(|o| d.org_id == *o))
            .cloned()
            .collect();
        rows.sort_by(|a, b| (&a.org_id, &a.domain).cmp(&(&b.org_id, &b.domain)));
        rows
    }

    pub fn domains(
        &self,
        criteria: &DomainCriteria,
        page: &Pagination<DomainSort>,
    ) -> Result<Vec<Domain>> {
        let instance_id = criteria
            .instance_id
            .as_ref()
            .ok_or(Error::MissingTenant("listing domains"))?;
        let mut rows: Vec<Domain> = self
            .instance_domain_rows(instance_id)
            .filter(|d| criteria.include_deleted || d.deleted_at.is_none())
            .filter(|d| criteria.id.is_none_or(|id| id == d.id))
            .filter(|d| {
                criteria
                    .domain
                    .as_ref()
                    .is_none_or(|m| m.matches(&d.domain))
            })
            .filter(|d| match &criteria.owner {
                None => true,
                Some(DomainOwner::InstanceOnly) => d.org_id.is_none(),
                Some(DomainOwner::Organization(o)) => d.org_id.as_ref() == Some(o),
                Some(DomainOwner::Organizations(orgs)) => {
                    d.org_id.as_ref().is_some_and(|o| orgs.contains(o))
                }
            })
            .filter(|d| criteria.is_verified.is_none_or(|v| v == d.is_verified))
            .filter(|d| criteria.is_primary.is_none_or(|v| v == d.is_primary))
            .cloned()
            .collect();
        sort_rows(&mut rows, page.order, |a, b| {
            match page.sort {
                DomainSort::CreatedAt => a.created_at.cmp(&b.created_at),
                DomainSort::UpdatedAt => a.updated_at.cmp(&b.updated_at),
                DomainSort::Domain => a.domain.cmp(&b.domain),
            }
            .then_with(|| a.id.cmp(&b.id))
        });
        page.cut_after(rows, |d| {
            let k = Keyset::of_domain(page.sort, d);
            (k.value, k.id)
        })
    }

    pub fn domain(&self, criteria: &DomainCriteria) -> Result<Domain> {
        let mut rows = self.domains(criteria, &Pagination::default())?;
        match rows.len() {
            0 => Err(Error::not_found("domain", describe(criteria))),
            1 => Ok(rows.remove(0)),
            _ => Err(Error::MultipleFound { kind: "domain" }),
        }
    }

    /// The unique constraints (`eventstore.unique_constraints`) the v3 commands keep for
    /// this state: every live custom instance domain (global), every live organization's
    /// name and verified domains (per instance). All of them adds.
    pub fn unique_constraints(&self) -> Vec<UniqueConstraint> {
        let live_instance = |id: &InstanceId| {
            self.instances
                .get(id.as_str())
                .is_some_and(|i| i.deleted_at.is_none())
        };
        let live_org = |instance: &InstanceId, org: &OrgId| {
            self.organizations
                .get(&(instance.as_str().to_owned(), org.as_str().to_owned()))
                .is_some_and(|o| o.deleted_at.is_none())
        };
        let mut uniques = Vec::new();
        for d in self.instance_domains.values() {
            if matches!(d.kind, InstanceDomainKind::Custom { .. }) && live_instance(&d.instance_id)
            {
                uniques.push(UniqueConstraint::add_instance_domain(&d.domain));
            }
        }
        for o in self.organizations.values() {
            if o.deleted_at.is_none() && live_instance(&o.instance_id) {
                uniques.push(UniqueConstraint::add_org_name(
                    o.instance_id.as_str(),
                    &o.name,
                ));
            }
        }
        for d in self.org_domains.values() {
            if d.is_verified && live_instance(&d.instance_id) && live_org(&d.instance_id, &d.org_id)
            {
                uniques.push(UniqueConstraint::add_org_domain(
                    d.instance_id.as_str(),
                    &d.domain,
                ));
            }
        }
        uniques
    }

    /// Every row of every table, for comparisons (`verify`).
    pub fn all_instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.values()
    }
    pub fn all_organizations(&self) -> impl Iterator<Item = &Organization> {
        self.organizations.values()
    }
    pub fn all_instance_domains(&self) -> impl Iterator<Item = &InstanceDomain> {
        self.instance_domains.values()
    }
    pub fn all_org_domains(&self) -> impl Iterator<Item = &OrganizationDomain> {
        self.org_domains.values()
    }
    pub fn all_domains(&self) -> impl Iterator<Item = &Domain> {
        self.domains.values()
    }
}

fn describe(criteria: &DomainCriteria) -> String {
    match (&criteria.id, &criteria.domain) {
        (Some(id), _) => format!("id {id}"),
        (None, Some(m)) => format!("{:?} {:?}", m.operation, m.value),
        (None, None) => "matching the criteria".into(),
    }
}

fn org_domain_key(instance_id: &InstanceId, org_id: &OrgId, domain: &str) -> OrgDomainKey {
    (
        instance_id.as_str().to_owned(),
        org_id.as_str().to_owned(),
        lower(domain),
    )
}

fn name_sort(
    sort: NameSort,
    a: (&String, OffsetDateTime, OffsetDateTime),
    b: (&String, OffsetDateTime, OffsetDateTime),
) -> std::cmp::Ordering {
    match sort {
        NameSort::Name => a.0.cmp(b.0),
        // The caller breaks ties by the id.
        NameSort::Id => std::cmp::Ordering::Equal,
        NameSort::CreatedAt => a.1.cmp(&b.1),
        NameSort::UpdatedAt => a.2.cmp(&b.2),
    }
}

fn sort_rows<T>(rows: &mut [T], order: SortOrder, cmp: impl Fn(&T, &T) -> std::cmp::Ordering) {
    rows.sort_by(|a, b| match order {
        SortOrder::Ascending => cmp(a, b),
        SortOrder::Descending => cmp(b, a),
    });
}
