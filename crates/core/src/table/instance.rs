//! `zitadel.instances`: the row, its changes (what the reducer and the commands
//! write), its repository port and, below, its rules in memory. In PostgreSQL:
//! `tenancy-postgres`'s `src/instance.rs` and the table's migration.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::Result;
use crate::id::InstanceId;
use crate::query::{InstanceCriteria, NameSort, Pagination};

/// A tenant (`zitadel.instances`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Its id (ZITADEL's aggregate id), unique across instances.
    pub id: InstanceId,
    /// The name, as users see it.
    pub name: String,
    /// The organization users land in when no other is chosen.
    pub default_org_id: Option<String>,
    /// The instance's IAM project (ZITADEL's own management project).
    pub iam_project_id: Option<String>,
    /// The OIDC client id of the instance's management console.
    pub console_client_id: Option<String>,
    /// The application id of the instance's management console.
    pub console_app_id: Option<String>,
    /// The instance's default language (a BCP-47 tag).
    pub default_language: Option<String>,
    /// When the row was created (the command's or the event's time).
    pub created_at: OffsetDateTime,
    /// When the row last changed.
    pub updated_at: OffsetDateTime,
    /// When it was removed (soft delete); `None` while live.
    pub deleted_at: Option<OffsetDateTime>,
}

/// Columns of `zitadel.instances` an update may set (`None` = leave as is).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceUpdate {
    /// The name, as users see it.
    pub name: Option<String>,
    /// The organization users land in when no other is chosen.
    pub default_org_id: Option<String>,
    /// The instance's IAM project (ZITADEL's own management project).
    pub iam_project_id: Option<String>,
    /// The OIDC client id of the instance's management console.
    pub console_client_id: Option<String>,
    /// The application id of the instance's management console.
    pub console_app_id: Option<String>,
    /// The instance's default language (a BCP-47 tag).
    pub default_language: Option<String>,
}

/// A change of `zitadel.instances`. Serialized under the names the table's function
/// `tenancy.apply_instances` dispatches on (migration 0008): a rename here
/// is a rename there (a PostgreSQL test compares both lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceChange {
    /// Insert; a soft-deleted row with that id comes back as new.
    #[serde(rename = "CreateInstance")]
    Create {
        /// The new instance's id.
        id: InstanceId,
        /// Its name.
        name: String,
    },
    /// Set one attribute of a live instance (and `updated_at`).
    #[serde(rename = "UpdateInstance")]
    Update {
        /// The instance to update.
        id: InstanceId,
        /// The attribute and its new value.
        update: InstanceUpdate,
    },
    /// Soft-delete the instance row only (the reducer lists the cascade explicitly).
    #[serde(rename = "RemoveInstance")]
    Remove {
        /// The instance to remove.
        id: InstanceId,
    },
}

/// `zitadel.instances`.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait InstanceRepository: Send {
    /// Applies one change of `zitadel.instances`; returns the rows changed.
    async fn apply_instance_change(
        &mut self,
        change: InstanceChange,
        at: OffsetDateTime,
    ) -> Result<u64>;
    /// A live instance, or NotFound.
    async fn get_instance(&mut self, id: &InstanceId) -> Result<Instance>;
    /// A page of live instances matching `criteria`, in `page`'s order.
    async fn list_instances(
        &mut self,
        criteria: &InstanceCriteria,
        page: &Pagination<NameSort>,
    ) -> Result<Vec<Instance>>;
    /// How many instances `list_instances` finds without a limit (a total for offset paging).
    async fn count_instances(&mut self, criteria: &InstanceCriteria) -> Result<u64>;
    /// The live instance owning the live custom domain of `host`, or NotFound. `host` is
    /// what an HTTP `Host` header carries: case, a `:port` and a trailing dot do not
    /// matter (`Login.ACME.example:443`); something that is no domain is InvalidArgument.
    async fn instance_by_host(&mut self, host: &str) -> Result<Instance>;
}

/// In memory: the table's rules and how its changes apply (the model `verify` folds and
/// the in-memory adapters serve; the same rules as the schema).
mod in_memory {
    use crate::state::memory::*;

    impl InMemoryState {
        /// Checks, then (unless `check_only`) applies, a change of `zitadel.instances`.
        pub(crate) fn run_instance(
            &mut self,
            change: &InstanceChange,
            at: OffsetDateTime,
            check_only: bool,
        ) -> Result<u64> {
            match change {
                InstanceChange::Create { id, name } => {
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
                InstanceChange::Update { id, update } => {
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
                InstanceChange::Remove { id } => {
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
            }
        }
    }

    impl InMemoryState {
        /// [`InstanceRepository::get_instance`](crate::table::instance::InstanceRepository::get_instance) in memory.
        pub fn instance(&self, id: &InstanceId) -> Result<Instance> {
            self.instances
                .get(id.as_str())
                .filter(|i| i.deleted_at.is_none())
                .cloned()
                .ok_or_else(|| Error::not_found("instance", id))
        }

        /// [`InstanceRepository::list_instances`](crate::table::instance::InstanceRepository::list_instances) in memory: the same filters, order and keyset.
        pub fn instances(
            &self,
            criteria: &InstanceCriteria,
            page: &Pagination<NameSort>,
        ) -> Result<Vec<Instance>> {
            let rows: Vec<Instance> = self.matching_instances(criteria).cloned().collect();
            page_named(rows, page, |i| {
                Keyset::of_named(
                    page.sort,
                    &i.name,
                    i.created_at,
                    i.updated_at,
                    i.id.as_str(),
                )
            })
        }

        /// [`InstanceRepository::count_instances`](crate::table::instance::InstanceRepository::count_instances) in memory.
        pub fn count_instances(&self, criteria: &InstanceCriteria) -> u64 {
            self.matching_instances(criteria).count() as u64
        }

        pub(crate) fn matching_instances<'a>(
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

        /// [`InstanceRepository::instance_by_host`](crate::table::instance::InstanceRepository::instance_by_host) in memory (a host header: port, case and a trailing dot do not matter).
        pub fn instance_by_host(&self, host: &str) -> Result<Instance> {
            let host = lower(crate::value::DomainName::from_host(host)?.as_str());
            self.custom_domains
                .get(&host)
                .and_then(|instance| InstanceId::new(instance.clone()).ok())
                .and_then(|id| self.instance(&id).ok())
                .ok_or_else(|| Error::not_found("instance for host", host))
        }

        /// Every row of every table, for comparisons (`verify`).
        pub fn all_instances(&self) -> impl Iterator<Item = &Instance> {
            self.instances.values()
        }

        pub(crate) fn check_instance_exists(&self, id: &InstanceId) -> Result<()> {
            // The foreign key references the row, soft-deleted or not.
            if self.instances.contains_key(id.as_str()) {
                Ok(())
            } else {
                Err(Error::not_found("instance", id))
            }
        }
    }
}
