//! `zitadel.organizations`: the row, its changes (what the reducer and the commands
//! write), its repository port and, below, its rules in memory. In PostgreSQL:
//! `tenancy-postgres`'s `src/organization.rs` and the table's migration.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::id::{InstanceId, OrgId};
use crate::query::{NameSort, OrganizationCriteria, Pagination};

/// `zitadel.organization_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrganizationState {
    /// Its users can sign in.
    Active,
    /// Deactivated: kept, but its users cannot sign in until it is reactivated.
    Inactive,
}

impl OrganizationState {
    /// The value of `zitadel.organization_state` in PostgreSQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }

    /// The inverse of [`Self::as_str`]; anything else is InvalidArgument.
    pub fn parse(value: &str) -> Result<Self> {
        match value {
            "active" => Ok(Self::Active),
            "inactive" => Ok(Self::Inactive),
            other => Err(Error::invalid(
                "state",
                format!("{other:?} is not active or inactive"),
            )),
        }
    }
}

/// An organization (`zitadel.organizations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// The instance (tenant) it belongs to.
    pub instance_id: InstanceId,
    /// Its id, unique within its instance (ZITADEL's aggregate id).
    pub id: OrgId,
    /// The name, as users see it.
    pub name: String,
    /// Active, or deactivated (its users cannot sign in).
    pub state: OrganizationState,
    /// When the row was created (the command's or the event's time).
    pub created_at: OffsetDateTime,
    /// When the row last changed.
    pub updated_at: OffsetDateTime,
    /// When it was removed (soft delete); `None` while live.
    pub deleted_at: Option<OffsetDateTime>,
}

/// Columns of `zitadel.organizations` an update may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationUpdate {
    /// The name, as users see it.
    pub name: Option<String>,
    /// Active, or deactivated (its users cannot sign in).
    pub state: Option<OrganizationState>,
}

/// A change of `zitadel.organizations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrganizationChange {
    /// Insert with state active; a soft-deleted row with that id comes back as new.
    #[serde(rename = "CreateOrganization")]
    Create {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The new organization's id, unique within its instance.
        id: OrgId,
        /// The name, as users see it.
        name: String,
    },
    /// Set one attribute of a live organization (and `updated_at`).
    #[serde(rename = "UpdateOrganization")]
    Update {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization to update.
        id: OrgId,
        /// The attribute and its new value.
        update: OrganizationUpdate,
    },
    /// Soft-delete one organization (its domains are changes of their own tables).
    #[serde(rename = "RemoveOrganization")]
    Remove {
        /// The instance (tenant) it belongs to.
        instance_id: InstanceId,
        /// The organization to remove.
        id: OrgId,
    },
    /// Soft-delete every organization of an instance (the instance was removed).
    #[serde(rename = "RemoveOrganizationsOfInstance")]
    RemoveAllOfInstance {
        /// The removed instance.
        instance_id: InstanceId,
    },
}

/// `zitadel.organizations`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait OrganizationRepository: Send {
    /// Applies one change of `zitadel.organizations`; returns the rows changed.
    async fn apply_organization_change(
        &mut self,
        change: OrganizationChange,
        at: OffsetDateTime,
    ) -> Result<u64>;
    /// A live organization, or NotFound.
    async fn get_organization(
        &mut self,
        instance_id: &InstanceId,
        id: &OrgId,
    ) -> Result<Organization>;
    /// MissingTenant without `criteria.instance_id`.
    async fn list_organizations(
        &mut self,
        criteria: &OrganizationCriteria,
        page: &Pagination<NameSort>,
    ) -> Result<Vec<Organization>>;
    /// How many organizations `list_organizations` finds without a limit.
    async fn count_organizations(&mut self, criteria: &OrganizationCriteria) -> Result<u64>;
}

/// In memory: the table's rules and how its changes apply (the model `verify` folds and
/// the in-memory adapters serve; the same rules as the schema).
mod in_memory {
    use crate::state::memory::*;

    impl InMemoryState {
        /// Checks, then (unless `check_only`) applies, a change of `zitadel.organizations`.
        pub(crate) fn run_organization(
            &mut self,
            change: &OrganizationChange,
            at: OffsetDateTime,
            check_only: bool,
        ) -> Result<u64> {
            match change {
                OrganizationChange::Create {
                    instance_id,
                    id,
                    name,
                } => {
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
                OrganizationChange::Update {
                    instance_id,
                    id,
                    update,
                } => {
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
                OrganizationChange::Remove { instance_id, id } => {
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
                OrganizationChange::RemoveAllOfInstance { instance_id } => {
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
            }
        }
    }

    impl InMemoryState {
        /// [`OrganizationRepository::get_organization`](crate::table::organization::OrganizationRepository::get_organization) in memory.
        pub fn organization(&self, instance_id: &InstanceId, id: &OrgId) -> Result<Organization> {
            self.organizations
                .get(&(instance_id.as_str().to_owned(), id.as_str().to_owned()))
                .filter(|o| o.deleted_at.is_none())
                .cloned()
                .ok_or_else(|| Error::not_found("organization", id))
        }

        /// [`OrganizationRepository::list_organizations`](crate::table::organization::OrganizationRepository::list_organizations) in memory: the same filters, order and keyset.
        pub fn organizations(
            &self,
            criteria: &OrganizationCriteria,
            page: &Pagination<NameSort>,
        ) -> Result<Vec<Organization>> {
            let instance_id = criteria
                .instance_id
                .as_ref()
                .ok_or(Error::MissingTenant("listing organizations"))?;
            let rows: Vec<Organization> = self
                .matching_organizations(instance_id, criteria)
                .cloned()
                .collect();
            page_named(rows, page, |o| {
                Keyset::of_named(
                    page.sort,
                    &o.name,
                    o.created_at,
                    o.updated_at,
                    o.id.as_str(),
                )
            })
        }

        /// [`OrganizationRepository::count_organizations`](crate::table::organization::OrganizationRepository::count_organizations) in memory.
        pub fn count_organizations(&self, criteria: &OrganizationCriteria) -> Result<u64> {
            let instance_id = criteria
                .instance_id
                .as_ref()
                .ok_or(Error::MissingTenant("counting organizations"))?;
            Ok(self.matching_organizations(instance_id, criteria).count() as u64)
        }

        pub(crate) fn matching_organizations<'a>(
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

        /// Every row of every instance, removed ones included, in no particular order.
        pub fn all_organizations(&self) -> impl Iterator<Item = &Organization> {
            self.organizations.values()
        }

        pub(crate) fn check_org_exists(&self, instance_id: &InstanceId, id: &OrgId) -> Result<()> {
            if self
                .organizations
                .contains_key(&(instance_id.as_str().to_owned(), id.as_str().to_owned()))
            {
                Ok(())
            } else {
                Err(Error::not_found("organization", id))
            }
        }

        pub(crate) fn check_org_name_free(
            &self,
            instance_id: &InstanceId,
            id: &OrgId,
            name: &str,
        ) -> Result<()> {
            let (name_lower, from) = (
                lower(name),
                (instance_id.as_str().to_owned(), String::new()),
            );
            let taken = self
                .organizations
                .range(from..)
                .take_while(|((i, _), _)| i == instance_id.as_str())
                .any(|(_, o)| {
                    o.id != *id && o.deleted_at.is_none() && lower(&o.name) == name_lower
                });
            if taken {
                Err(Error::already_exists(Rule::OrganizationName, name))
            } else {
                Ok(())
            }
        }
    }
}
