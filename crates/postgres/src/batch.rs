//! A batch of state changes applied set-based: the rows the changes can touch or collide
//! with are read (locked, for the rows of the batch's own instances), the changes are
//! applied in order to the in-memory model of those rows (the same rules as the schema),
//! and only the net difference is written, a few statements per table. The schema's
//! indexes still judge the result: a collision the loaded rows could not show (a row
//! written concurrently) fails the write, and the caller falls back to applying change by
//! change (`crate::apply`).
//!
//! Exactness rests on the load: every row a change addresses, and every row that a unique
//! index could compare with a value the batch writes (a name, a domain, the primary of an
//! owner), is in the model, so an intermediate state that would collide collides there.

use std::collections::BTreeSet;

use sqlx::PgConnection;
use tenancy_core::model::InstanceDomainKind;
use tenancy_core::state::{
    DomainChange, InMemoryState, InstanceChange, InstanceDomainChange, OrgDomainChange,
    OrganizationChange, RowDiff, StateChange, Table, TableRows,
};
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::{domain, instance, instance_domain, org_domain, organization};

/// What a batch's changes name, for reading the rows they can touch. Values are as the
/// schema compares them (`lower(name)`, `lower(domain)`).
#[derive(Debug, Default)]
pub(crate) struct BatchKeys {
    /// Every instance named (a projection batch names one).
    pub instances: BTreeSet<String>,
    /// Organizations named: their rows, and their domains' primary.
    pub orgs: BTreeSet<String>,
    /// Organization names created or given.
    pub org_names: BTreeSet<String>,
    /// Domains named, in any table.
    pub domains: BTreeSet<String>,
    /// Organizations all of whose domains a change touches.
    pub orgs_all_domains: BTreeSet<String>,
    /// Owners in the unified table (an org id, or "" for the instance) a change names.
    pub owners: BTreeSet<String>,
    pub all_organizations: bool,
    pub all_instance_domains: bool,
    pub all_org_domains: bool,
    pub all_domains: bool,
    /// A custom instance domain is inserted: unique across instances.
    pub custom_instance_domain_added: bool,
    /// An instance's unified domain is added: unique across instances.
    pub instance_level_domain_added: bool,
}

fn lower(s: &str) -> String {
    s.to_lowercase()
}

impl BatchKeys {
    pub(crate) fn of<'a>(changes: impl IntoIterator<Item = &'a StateChange>) -> Self {
        let mut keys = Self::default();
        for change in changes {
            keys.add(change);
        }
        keys
    }

    fn instance(&mut self, id: &impl AsRef<str>) {
        self.instances.insert(id.as_ref().to_owned());
    }

    fn org(&mut self, instance_id: &impl AsRef<str>, org_id: &impl AsRef<str>) {
        self.instance(instance_id);
        self.orgs.insert(org_id.as_ref().to_owned());
    }

    fn domain(&mut self, domain: &str) {
        self.domains.insert(lower(domain));
    }

    /// Exhaustive over every change: a new one does not compile until it says what it reads.
    fn add(&mut self, change: &StateChange) {
        match change {
            StateChange::Instance(change) => match change {
                InstanceChange::Create { id, .. }
                | InstanceChange::Update { id, .. }
                | InstanceChange::Remove { id } => self.instance(id),
            },
            StateChange::Organization(change) => match change {
                OrganizationChange::Create {
                    instance_id,
                    id,
                    name,
                } => {
                    self.org(instance_id, id);
                    self.org_names.insert(lower(name));
                }
                OrganizationChange::Update {
                    instance_id,
                    id,
                    update,
                } => {
                    self.org(instance_id, id);
                    if let Some(name) = &update.name {
                        self.org_names.insert(lower(name));
                    }
                }
                OrganizationChange::Remove { instance_id, id } => self.org(instance_id, id),
                OrganizationChange::RemoveAllOfInstance { instance_id } => {
                    self.instance(instance_id);
                    self.all_organizations = true;
                }
            },
            StateChange::InstanceDomain(change) => match change {
                InstanceDomainChange::Insert {
                    instance_id,
                    domain,
                    kind,
                } => {
                    self.instance(instance_id);
                    self.domain(domain);
                    if matches!(kind, InstanceDomainKind::Custom { .. }) {
                        self.custom_instance_domain_added = true;
                    }
                }
                InstanceDomainChange::SetPrimary {
                    instance_id,
                    domain,
                }
                | InstanceDomainChange::Delete {
                    instance_id,
                    domain,
                    ..
                } => {
                    self.instance(instance_id);
                    self.domain(domain);
                }
                InstanceDomainChange::DeleteAllOfInstance { instance_id } => {
                    self.instance(instance_id);
                    self.all_instance_domains = true;
                }
            },
            StateChange::OrgDomain(change) => match change {
                OrgDomainChange::Insert {
                    instance_id,
                    org_id,
                    domain,
                }
                | OrgDomainChange::SetValidation {
                    instance_id,
                    org_id,
                    domain,
                    ..
                }
                | OrgDomainChange::SetVerified {
                    instance_id,
                    org_id,
                    domain,
                }
                | OrgDomainChange::SetPrimary {
                    instance_id,
                    org_id,
                    domain,
                }
                | OrgDomainChange::Delete {
                    instance_id,
                    org_id,
                    domain,
                } => {
                    self.org(instance_id, org_id);
                    self.domain(domain);
                }
                OrgDomainChange::DeleteAllOfOrg {
                    instance_id,
                    org_id,
                } => {
                    self.org(instance_id, org_id);
                    self.orgs_all_domains.insert(org_id.as_str().to_owned());
                }
                OrgDomainChange::DeleteAllOfInstance { instance_id } => {
                    self.instance(instance_id);
                    self.all_org_domains = true;
                }
            },
            StateChange::Domain(change) => match change {
                DomainChange::AddInstanceDomain {
                    instance_id,
                    domain,
                } => {
                    self.instance(instance_id);
                    self.domain(domain);
                    self.owners.insert(String::new());
                    self.instance_level_domain_added = true;
                }
                DomainChange::SetInstanceDomainPrimary {
                    instance_id,
                    domain,
                }
                | DomainChange::RemoveInstanceDomain {
                    instance_id,
                    domain,
                } => {
                    self.instance(instance_id);
                    self.domain(domain);
                    self.owners.insert(String::new());
                }
                DomainChange::AddOrganizationDomain {
                    instance_id,
                    org_id,
                    domain,
                    ..
                }
                | DomainChange::SetOrganizationDomainValidationType {
                    instance_id,
                    org_id,
                    domain,
                    ..
                }
                | DomainChange::SetOrganizationDomainVerified {
                    instance_id,
                    org_id,
                    domain,
                }
                | DomainChange::SetOrganizationDomainPrimary {
                    instance_id,
                    org_id,
                    domain,
                }
                | DomainChange::RemoveOrganizationDomain {
                    instance_id,
                    org_id,
                    domain,
                } => {
                    self.org(instance_id, org_id);
                    self.domain(domain);
                    self.owners.insert(org_id.as_str().to_owned());
                }
                DomainChange::RemoveDomainsOfOrganization {
                    instance_id,
                    org_id,
                } => {
                    self.org(instance_id, org_id);
                    self.orgs_all_domains.insert(org_id.as_str().to_owned());
                }
                DomainChange::RemoveDomainsOfInstance { instance_id } => {
                    self.instance(instance_id);
                    self.all_domains = true;
                }
            },
        }
    }

    pub(crate) fn instances(&self) -> Vec<String> {
        self.instances.iter().cloned().collect()
    }
}

pub(crate) fn list(set: &BTreeSet<String>) -> Vec<String> {
    set.iter().cloned().collect()
}

/// Applies `changes` in order, each at its time, set-based (see the module). All or
/// nothing: an error leaves the transaction to be rolled back (or rolled back to a
/// savepoint) by the caller. Returns the rows written.
pub async fn apply_batch(
    conn: &mut PgConnection,
    changes: &[(StateChange, OffsetDateTime)],
) -> Result<u64> {
    if changes.is_empty() {
        return Ok(0);
    }
    let keys = BatchKeys::of(changes.iter().map(|(c, _)| c));
    let loaded = TableRows {
        instances: instance::load(conn, &keys).await?,
        organizations: organization::load(conn, &keys).await?,
        instance_domains: instance_domain::load(conn, &keys).await?,
        org_domains: org_domain::load(conn, &keys).await?,
        domains: domain::load(conn, &keys).await?,
    };
    let mut state = InMemoryState::from_rows(loaded);
    let before = state.clone();
    for (change, at) in changes {
        state.apply(change, *at)?;
    }
    write_rows(conn, &state.diff(&before)).await
}

/// Writes a difference of rows: deletes first (children before parents), then per table,
/// parents first, the updates (rows giving up a unique claim first) and the inserts.
/// Exhaustive over the table registry: a new table does not compile until it is written.
/// Returns the rows written.
pub async fn write_rows(conn: &mut PgConnection, diff: &RowDiff) -> Result<u64> {
    let (deleted, updated, inserted) = (&diff.deleted, &diff.updated, &diff.inserted);
    for table in Table::ALL.into_iter().rev() {
        if deleted.len_of(table) == 0 {
            continue;
        }
        match table {
            Table::OrgDomains => org_domain::delete(conn, &deleted.org_domains).await?,
            Table::InstanceDomains => {
                instance_domain::delete(conn, &deleted.instance_domains).await?;
            }
            Table::Instances | Table::Organizations | Table::Domains => {
                return Err(Error::internal(format!(
                    "a change removed a row of {table}, whose rows are only soft-deleted"
                )));
            }
        }
    }
    for table in Table::ALL {
        for (rows, how) in [(updated, Write::Update), (inserted, Write::Insert)] {
            match table {
                Table::Instances => instance::write(conn, &rows.instances, how).await?,
                Table::Organizations => organization::write(conn, &rows.organizations, how).await?,
                Table::InstanceDomains => {
                    instance_domain::write(conn, &rows.instance_domains, how).await?;
                }
                Table::OrgDomains => org_domain::write(conn, &rows.org_domains, how).await?,
                Table::Domains => domain::write(conn, &rows.domains, how).await?,
            }
        }
    }
    Ok(diff.len() as u64)
}

/// How rows are written: new rows, or rows that exist under the same key (an upsert, so
/// that rows are written in the order given: the schema checks unique indexes row by row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Insert,
    Update,
}

impl Write {
    /// The statement's tail: nothing for inserts, the upsert for updates.
    pub(crate) fn conflict(self, key: &str, columns: &[&str]) -> String {
        match self {
            Write::Insert => String::new(),
            Write::Update => {
                let set: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{c} = EXCLUDED.{c}"))
                    .collect();
                format!(" ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", "))
            }
        }
    }
}
