//! `zitadel.domains`: the row, its changes (what the reducer and the commands
//! write), its repository port and, below, its rules in memory. In PostgreSQL:
//! `tenancy-postgres`'s `src/domain.rs` and the table's migration.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::id::{InstanceId, OrgId};
use crate::query::{DomainCriteria, DomainSort, Pagination};
use crate::table::org_domain::ValidationType;

/// A row of the unified `zitadel.domains`: an instance domain when `org_id` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// The table's generated key (identity column), stable across changes of the row.
    pub id: i64,
    /// The instance (tenant) it belongs to.
    pub instance_id: InstanceId,
    /// The owning organization; `None` for a domain of the instance itself.
    pub org_id: Option<OrgId>,
    /// The domain name as written; the uniqueness rules compare it ignoring case.
    pub domain: String,
    /// Whether the owner proved control of the domain (DNS or HTTP).
    pub is_verified: bool,
    /// Whether this is its owner's primary domain (at most one per owner).
    pub is_primary: bool,
    /// How control is proven (DNS TXT record or HTTP file); `None` before a validation is generated.
    pub validation_type: Option<ValidationType>,
    /// When the row was created (the command's or the event's time).
    pub created_at: OffsetDateTime,
    /// When the row last changed.
    pub updated_at: OffsetDateTime,
    /// When it was removed (soft delete); `None` while live.
    pub deleted_at: Option<OffsetDateTime>,
}

/// A change of the unified `zitadel.domains` (soft delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainChange {
    /// Insert the row of a new custom instance domain.
    AddInstanceDomain {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
    },
    /// Mark an instance domain primary and the instance's previous primary not.
    SetInstanceDomainPrimary {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
    },
    /// Soft-delete an instance domain.
    RemoveInstanceDomain {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
    },
    /// Insert the row of a new organization domain.
    AddOrganizationDomain {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
        /// How control is proven (DNS TXT record or HTTP file); `None` before a validation is generated.
        validation_type: Option<ValidationType>,
    },
    /// Record how an organization domain is validated.
    SetOrganizationDomainValidationType {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
        /// How control of the domain is proven: DNS TXT record or HTTP file.
        validation_type: ValidationType,
    },
    /// Mark an organization domain verified.
    SetOrganizationDomainVerified {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
    },
    /// Mark an organization domain primary and its organization's previous primary not.
    SetOrganizationDomainPrimary {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
    },
    /// Soft-delete an organization domain.
    RemoveOrganizationDomain {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
    },
    /// Soft-delete every domain of an organization (it was removed).
    RemoveDomainsOfOrganization {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
    },
    /// Soft-delete every domain of an instance, its organizations' included (it was removed).
    RemoveDomainsOfInstance {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
    },
}

/// The unified `zitadel.domains` table (soft delete; every live read filters
/// `deleted_at IS NULL`).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait DomainRepository: Send {
    /// Applies one change of `zitadel.domains`; returns the rows changed.
    async fn apply_domain_change(
        &mut self,
        change: DomainChange,
        at: OffsetDateTime,
    ) -> Result<u64>;
    /// Exactly one row: NotFound when none matches, MultipleFound when several do.
    async fn get_domain(&mut self, criteria: &DomainCriteria) -> Result<Domain>;
    /// A page of rows matching `criteria` (its `instance_id` is required: MissingTenant without it), in `page`'s order.
    async fn list_domains(
        &mut self,
        criteria: &DomainCriteria,
        page: &Pagination<DomainSort>,
    ) -> Result<Vec<Domain>>;
}

/// In memory: the table's rules and how its changes apply (the model `verify` folds and
/// the in-memory adapters serve; the same rules as the schema).
mod in_memory {
    use crate::state::memory::*;

    impl InMemoryState {
        /// Checks, then (unless `check_only`) applies, a change of the unified `zitadel.domains`.
        pub(crate) fn run_domain(
            &mut self,
            change: &DomainChange,
            at: OffsetDateTime,
            check_only: bool,
        ) -> Result<u64> {
            match change {
                DomainChange::AddInstanceDomain {
                    instance_id,
                    domain,
                } => self
                    .add_domain(instance_id, None, domain, true, None, at, check_only)
                    .map(|_| u64::from(!check_only)),
                DomainChange::AddOrganizationDomain {
                    instance_id,
                    org_id,
                    domain,
                    validation_type,
                } => self
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
                DomainChange::SetInstanceDomainPrimary {
                    instance_id,
                    domain,
                } => self.set_domain_primary(instance_id, None, domain, at, check_only),
                DomainChange::SetOrganizationDomainPrimary {
                    instance_id,
                    org_id,
                    domain,
                } => self.set_domain_primary(instance_id, Some(org_id), domain, at, check_only),
                DomainChange::RemoveInstanceDomain {
                    instance_id,
                    domain,
                } => self.remove_domains(instance_id, at, check_only, |d| {
                    d.instance_id == *instance_id
                        && d.org_id.is_none()
                        && lower(&d.domain) == lower(domain)
                }),
                DomainChange::RemoveOrganizationDomain {
                    instance_id,
                    org_id,
                    domain,
                } => self.remove_domains(instance_id, at, check_only, |d| {
                    d.instance_id == *instance_id
                        && d.org_id.as_ref() == Some(org_id)
                        && lower(&d.domain) == lower(domain)
                }),
                DomainChange::RemoveDomainsOfOrganization {
                    instance_id,
                    org_id,
                } => self.remove_domains(instance_id, at, check_only, |d| {
                    d.instance_id == *instance_id && d.org_id.as_ref() == Some(org_id)
                }),
                DomainChange::RemoveDomainsOfInstance { instance_id } => {
                    self.remove_domains(instance_id, at, check_only, |d| {
                        d.instance_id == *instance_id
                    })
                }
                DomainChange::SetOrganizationDomainValidationType {
                    instance_id,
                    org_id,
                    domain,
                    validation_type,
                } => {
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
                DomainChange::SetOrganizationDomainVerified {
                    instance_id,
                    org_id,
                    domain,
                } => {
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
    }

    impl InMemoryState {
        /// [`DomainRepository::list_domains`](crate::table::domain::DomainRepository::list_domains) in memory: the same filters, order and keyset.
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

        /// [`DomainRepository::get_domain`](crate::table::domain::DomainRepository::get_domain) in memory.
        pub fn domain(&self, criteria: &DomainCriteria) -> Result<Domain> {
            let mut rows = self.domains(criteria, &Pagination::default())?;
            match rows.len() {
                0 => Err(Error::not_found("domain", describe(criteria))),
                1 => Ok(rows.remove(0)),
                _ => Err(Error::MultipleFound { kind: "domain" }),
            }
        }

        /// Every row, removed ones included, in no particular order.
        pub fn all_domains(&self) -> impl Iterator<Item = &Domain> {
            self.domains.values()
        }

        pub(crate) fn live_domain_id(
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
        pub(crate) fn add_domain(
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

        pub(crate) fn set_domain_primary(
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
        pub(crate) fn remove_domains(
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
        pub(crate) fn instance_domain_rows<'a>(
            &'a self,
            instance_id: &InstanceId,
        ) -> impl Iterator<Item = &'a Domain> + 'a {
            self.domains_of_instance
                .get(instance_id.as_str())
                .into_iter()
                .flatten()
                .filter_map(|id| self.domains.get(id))
        }
    }
}
