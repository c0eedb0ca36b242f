//! `zitadel.org_domains`: the row, its changes (what the reducer and the commands
//! write), its repository port and, below, its rules in memory. In PostgreSQL:
//! `tenancy-postgres`'s `src/org_domain.rs` and the table's migration.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::id::{InstanceId, OrgId};

/// How an organization proves it owns a domain; the legacy ordinal is 1 (http), 2 (dns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValidationType {
    /// A file with the token, fetched over HTTP(S) from the domain.
    Http,
    /// A TXT record with the token, under `_zitadel-challenge.<domain>`.
    Dns,
}

impl ValidationType {
    /// The legacy events' number for it (`validationType` in the payload).
    pub fn ordinal(self) -> i16 {
        match self {
            Self::Http => 1,
            Self::Dns => 2,
        }
    }

    /// `0`, unknown values and absence are errors: the legacy writers never meant them.
    pub fn from_ordinal(value: i64) -> Result<Self> {
        match value {
            1 => Ok(Self::Http),
            2 => Ok(Self::Dns),
            other => Err(Error::invalid(
                "validationType",
                format!("{other} is neither 1 (http) nor 2 (dns)"),
            )),
        }
    }

    /// The value of `zitadel.domain_validation_type` in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Dns => "dns",
        }
    }

    /// The inverse of [`Self::as_str`]; anything else is InvalidArgument.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "http" => Ok(Self::Http),
            "dns" => Ok(Self::Dns),
            other => Err(Error::invalid(
                "validation_type",
                format!("{other:?} is neither http nor dns"),
            )),
        }
    }
}

/// A row of `zitadel.org_domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationDomain {
    /// The instance (tenant) it belongs to.
    pub instance_id: InstanceId,
    /// The organization it belongs to.
    pub org_id: OrgId,
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
}

/// A change of `zitadel.org_domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrgDomainChange {
    /// Add an unverified, non-primary domain to an organization.
    #[serde(rename = "InsertOrgDomain")]
    Insert {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
    },
    /// Record how the domain is to be validated (a validation token was generated).
    #[serde(rename = "SetOrgDomainValidation")]
    SetValidation {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
        /// How control of the domain is proven: DNS TXT record or HTTP file.
        validation_type: ValidationType,
    },
    /// Mark the domain verified (its token was found where it was published).
    #[serde(rename = "SetOrgDomainVerified")]
    SetVerified {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
    },
    /// Make the domain its organization's primary one; the previous primary is demoted.
    #[serde(rename = "SetPrimaryOrgDomain")]
    SetPrimary {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
    },
    /// Delete one domain of an organization (a hard delete).
    #[serde(rename = "DeleteOrgDomain")]
    Delete {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
    },
    /// Delete every domain of an organization (it was removed).
    #[serde(rename = "DeleteOrgDomainsOfOrg")]
    DeleteAllOfOrg {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization it belongs to.
        org_id: OrgId,
    },
    /// Delete every organization domain of an instance (it was removed).
    #[serde(rename = "DeleteOrgDomainsOfInstance")]
    DeleteAllOfInstance {
        /// The removed instance.
        instance_id: InstanceId,
    },
}

/// `zitadel.org_domains` (no soft delete).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrgDomainRepository: Send {
    /// Applies one change of `zitadel.org_domains`; returns the rows changed.
    async fn apply_org_domain_change(
        &mut self,
        change: OrgDomainChange,
        at: OffsetDateTime,
    ) -> Result<u64>;
    /// The domains of one org.
    async fn list_org_domains(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
    ) -> Result<Vec<OrganizationDomain>>;
}

/// In memory: the table's rules and how its changes apply (the model `verify` folds and
/// the in-memory adapters serve; the same rules as the schema).
mod in_memory {
    use crate::state::memory::*;

    impl InMemoryState {
        /// Checks, then (unless `check_only`) applies, a change of `zitadel.org_domains`.
        pub(crate) fn run_org_domain(
            &mut self,
            change: &OrgDomainChange,
            at: OffsetDateTime,
            check_only: bool,
        ) -> Result<u64> {
            match change {
                OrgDomainChange::Insert {
                    instance_id,
                    org_id,
                    domain,
                } => {
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
                OrgDomainChange::SetValidation {
                    instance_id,
                    org_id,
                    domain,
                    validation_type,
                } => {
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
                OrgDomainChange::SetVerified {
                    instance_id,
                    org_id,
                    domain,
                } => {
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
                OrgDomainChange::SetPrimary {
                    instance_id,
                    org_id,
                    domain,
                } => {
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
                OrgDomainChange::Delete {
                    instance_id,
                    org_id,
                    domain,
                } => {
                    if check_only {
                        return Ok(0);
                    }
                    let key = org_domain_key(instance_id, org_id, domain);
                    Ok(u64::from(self.org_domains.remove(&key).is_some()))
                }
                OrgDomainChange::DeleteAllOfOrg {
                    instance_id,
                    org_id,
                } => {
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
                OrgDomainChange::DeleteAllOfInstance { instance_id } => {
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
            }
        }
    }

    impl InMemoryState {
        /// [`OrgDomainRepository::list_org_domains`](crate::table::org_domain::OrgDomainRepository::list_org_domains) in memory: the same filters, order and keyset.
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

        /// Every row of every instance, in no particular order.
        pub fn all_org_domains(&self) -> impl Iterator<Item = &OrganizationDomain> {
            self.org_domains.values()
        }
    }
}
