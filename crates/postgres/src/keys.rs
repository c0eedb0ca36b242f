//! What a batch of changes touches (`crate::batch`): the keys its changes name, from which
//! each table's module reads the rows the batch can touch or collide with.

use std::collections::BTreeSet;

use tenancy_core::model::InstanceDomainKind;
use tenancy_core::state::{
    DomainChange, InstanceChange, InstanceDomainChange, OrgDomainChange, OrganizationChange,
    StateChange,
};

/// What a batch's changes name, for reading the rows they can touch. Values are as the
/// schema compares them (`lower(name COLLATE "C")`, `lower(domain COLLATE "C")`: ASCII only).
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
    s.to_ascii_lowercase()
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
