//! `zitadel.instance_domains`: the row, its changes (what the reducer and the commands
//! write), its repository port and, below, its rules in memory. In PostgreSQL:
//! `tenancy-postgres`'s `src/instance_domain.rs` and the table's migration.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::id::InstanceId;

/// The kind of an instance domain; primary and generated exist only for custom domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InstanceDomainKind {
    /// A domain the instance is served under (unique across all instances).
    Custom {
        /// Whether this is its owner's primary domain (at most one per owner).
        is_primary: bool,
        /// Whether tenancy generated it for the instance (a generated domain is kept by ZITADEL's rules).
        is_generated: bool,
    },
    /// A domain the instance trusts for redirects and origins (not served under).
    Trusted,
}

/// `zitadel.domain_type`, the kind without its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceDomainType {
    /// `custom`: served under, unique across instances.
    Custom,
    /// `trusted`: trusted for redirects and origins.
    Trusted,
}

impl InstanceDomainType {
    /// The value of `zitadel.domain_type` in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Custom => "custom",
            Self::Trusted => "trusted",
        }
    }
}

impl InstanceDomainKind {
    /// The kind without its flags, as the `domain_type` column stores it.
    pub fn domain_type(self) -> InstanceDomainType {
        match self {
            Self::Custom { .. } => InstanceDomainType::Custom,
            Self::Trusted => InstanceDomainType::Trusted,
        }
    }
}

/// A row of `zitadel.instance_domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceDomain {
    /// The instance (tenant) it belongs to.
    pub instance_id: InstanceId,
    /// The domain name as written; the uniqueness rules compare it ignoring case.
    pub domain: String,
    /// Custom (with its primary and generated flags) or trusted.
    pub kind: InstanceDomainKind,
    /// When the row was created (the command's or the event's time).
    pub created_at: OffsetDateTime,
    /// When the row last changed.
    pub updated_at: OffsetDateTime,
}

/// A change of `zitadel.instance_domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceDomainChange {
    /// Insert a domain (a custom one that is primary demotes no other: see `SetPrimary`).
    #[serde(rename = "InsertInstanceDomain")]
    Insert {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
        /// Custom (with its flags) or trusted.
        kind: InstanceDomainKind,
    },
    /// Make a custom domain the primary one; the previous primary is demoted.
    #[serde(rename = "SetPrimaryInstanceDomain")]
    SetPrimary {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
    },
    /// Delete one domain of the given type (a hard delete: the table keeps no history).
    #[serde(rename = "DeleteInstanceDomain")]
    Delete {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The domain name as written; the uniqueness rules compare it ignoring case.
        domain: String,
        /// Which of the two tables of domains the name is in.
        domain_type: InstanceDomainType,
    },
    /// Delete every domain of an instance (the instance was removed).
    #[serde(rename = "DeleteInstanceDomainsOfInstance")]
    DeleteAllOfInstance {
        /// The removed instance.
        instance_id: InstanceId,
    },
}

/// `zitadel.instance_domains` (custom and trusted; no soft delete).
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait InstanceDomainRepository: Send {
    /// Applies one change of `zitadel.instance_domains`; returns the rows changed.
    async fn apply_instance_domain_change(
        &mut self,
        change: InstanceDomainChange,
        at: OffsetDateTime,
    ) -> Result<u64>;
    /// Every domain of an instance, custom and trusted, ordered by domain.
    async fn list_instance_domains(
        &mut self,
        instance_id: &InstanceId,
    ) -> Result<Vec<InstanceDomain>>;
}

/// In memory: the table's rules and how its changes apply (the model `verify` folds and
/// the in-memory adapters serve; the same rules as the schema).
mod in_memory {
    use crate::state::memory::*;

    impl InMemoryState {
        /// Checks, then (unless `check_only`) applies, a change of `zitadel.instance_domains`.
        pub(crate) fn run_instance_domain(
            &mut self,
            change: &InstanceDomainChange,
            at: OffsetDateTime,
            check_only: bool,
        ) -> Result<u64> {
            match change {
                InstanceDomainChange::Insert {
                    instance_id,
                    domain,
                    kind,
                } => {
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
                                return Err(Error::already_exists(
                                    Rule::CustomInstanceDomain,
                                    domain,
                                ));
                            }
                            if *is_primary && self.primary_instance_domain(instance_id).is_some() {
                                return Err(Error::already_exists(
                                    Rule::PrimaryInstanceDomain,
                                    domain,
                                ));
                            }
                        }
                        InstanceDomainKind::Trusted => {
                            if self.instance_domains.contains_key(&key) {
                                return Err(Error::already_exists(
                                    Rule::TrustedInstanceDomain,
                                    domain,
                                ));
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
                InstanceDomainChange::SetPrimary {
                    instance_id,
                    domain,
                } => {
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
                InstanceDomainChange::Delete {
                    instance_id,
                    domain,
                    domain_type,
                } => {
                    let key = (instance_id.as_str().to_owned(), *domain_type, lower(domain));
                    if check_only {
                        return Ok(0);
                    }
                    Ok(u64::from(self.remove_instance_domain_row(&key)))
                }
                InstanceDomainChange::DeleteAllOfInstance { instance_id } => {
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
            }
        }
    }

    impl InMemoryState {
        /// [`InstanceDomainRepository::list_instance_domains`](crate::table::instance_domain::InstanceDomainRepository::list_instance_domains) in memory.
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

        /// Every row of every instance, in no particular order.
        pub fn all_instance_domains(&self) -> impl Iterator<Item = &InstanceDomain> {
            self.instance_domains.values()
        }

        pub(crate) fn remove_instance_domain_row(&mut self, key: &InstanceDomainKey) -> bool {
            let removed = self.instance_domains.remove(key).is_some();
            if removed && key.1 == InstanceDomainType::Custom {
                self.custom_domains.remove(&key.2);
            }
            removed
        }

        pub(crate) fn primary_instance_domain(
            &self,
            instance_id: &InstanceId,
        ) -> Option<&InstanceDomain> {
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
    }
}
