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
/// Everything a change of an instance names is kept with that instance, so that a batch of
/// several instances (the ordered catch-up) reads each instance's rows for its own keys,
/// not every instance's rows for every key.
#[derive(Debug, Default)]
pub(crate) struct BatchKeys {
    /// Every instance named.
    pub instances: BTreeSet<String>,
    /// (instance, organization) named: their rows.
    pub orgs: BTreeSet<Pair>,
    /// (instance, organization, domain) of the organization domains named: those rows
    /// (in both domain tables), not every domain of the organization.
    pub org_domains: BTreeSet<Triple>,
    /// (instance, organization) whose primary domain a change can move: its primary row.
    pub org_primaries: BTreeSet<Pair>,
    /// (instance, organization name) created or given.
    pub org_names: BTreeSet<Pair>,
    /// (instance, domain) named, in any table.
    pub domains: BTreeSet<Pair>,
    /// (instance, organization) all of whose domains a change touches.
    pub orgs_all_domains: BTreeSet<Pair>,
    /// (instance, owner in the unified table: an org id, or "" for the instance) named.
    pub owners: BTreeSet<Pair>,
    /// Instances all of whose rows of a table a change touches (the instance removed).
    pub all_organizations: BTreeSet<String>,
    pub all_instance_domains: BTreeSet<String>,
    pub all_org_domains: BTreeSet<String>,
    pub all_domains: BTreeSet<String>,
    /// A custom instance domain is inserted: unique across instances.
    pub custom_instance_domain_added: bool,
    /// An instance's unified domain is added: unique across instances.
    pub instance_level_domain_added: bool,
}

/// An instance and a key of one of its rows.
pub(crate) type Pair = (String, String);
/// An instance, an organization and one of its domains.
pub(crate) type Triple = (String, String, String);

/// A set of pairs as the two arrays a statement unnests.
pub(crate) fn columns(pairs: &BTreeSet<Pair>) -> (Vec<String>, Vec<String>) {
    pairs.iter().cloned().unzip()
}

/// A set of triples as the three arrays a statement unnests.
pub(crate) fn columns3(triples: &BTreeSet<Triple>) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut columns = (Vec::new(), Vec::new(), Vec::new());
    for (a, b, c) in triples {
        columns.0.push(a.clone());
        columns.1.push(b.clone());
        columns.2.push(c.clone());
    }
    columns
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
        self.orgs
            .insert(pair(instance_id, org_id.as_ref().to_owned()));
    }

    fn domain(&mut self, instance_id: &impl AsRef<str>, domain: &str) {
        self.instance(instance_id);
        self.domains.insert(pair(instance_id, lower(domain)));
    }

    /// A domain of an organization named: its row, and the organization's.
    fn org_domain(
        &mut self,
        instance_id: &impl AsRef<str>,
        org_id: &impl AsRef<str>,
        domain: &str,
    ) {
        self.org(instance_id, org_id);
        self.domain(instance_id, domain);
        self.org_domains.insert((
            instance_id.as_ref().to_owned(),
            org_id.as_ref().to_owned(),
            lower(domain),
        ));
    }

    fn org_primary(&mut self, instance_id: &impl AsRef<str>, org_id: &impl AsRef<str>) {
        self.org_primaries
            .insert(pair(instance_id, org_id.as_ref().to_owned()));
    }

    fn owner(&mut self, instance_id: &impl AsRef<str>, owner: &str) {
        self.owners.insert(pair(instance_id, owner.to_owned()));
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
                    self.org_names.insert(pair(instance_id, lower(name)));
                }
                OrganizationChange::Update {
                    instance_id,
                    id,
                    update,
                } => {
                    self.org(instance_id, id);
                    if let Some(name) = &update.name {
                        self.org_names.insert(pair(instance_id, lower(name)));
                    }
                }
                OrganizationChange::Remove { instance_id, id } => self.org(instance_id, id),
                OrganizationChange::RemoveAllOfInstance { instance_id } => {
                    self.instance(instance_id);
                    self.all_organizations
                        .insert(instance_id.as_str().to_owned());
                }
            },
            StateChange::InstanceDomain(change) => match change {
                InstanceDomainChange::Insert {
                    instance_id,
                    domain,
                    kind,
                } => {
                    self.instance(instance_id);
                    self.domain(instance_id, domain);
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
                    self.domain(instance_id, domain);
                }
                InstanceDomainChange::DeleteAllOfInstance { instance_id } => {
                    self.instance(instance_id);
                    self.all_instance_domains
                        .insert(instance_id.as_str().to_owned());
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
                | OrgDomainChange::Delete {
                    instance_id,
                    org_id,
                    domain,
                } => self.org_domain(instance_id, org_id, domain),
                OrgDomainChange::SetPrimary {
                    instance_id,
                    org_id,
                    domain,
                } => {
                    self.org_domain(instance_id, org_id, domain);
                    self.org_primary(instance_id, org_id);
                }
                OrgDomainChange::DeleteAllOfOrg {
                    instance_id,
                    org_id,
                } => {
                    self.org(instance_id, org_id);
                    self.orgs_all_domains
                        .insert(pair(instance_id, org_id.as_str().to_owned()));
                }
                OrgDomainChange::DeleteAllOfInstance { instance_id } => {
                    self.instance(instance_id);
                    self.all_org_domains.insert(instance_id.as_str().to_owned());
                }
            },
            StateChange::Domain(change) => match change {
                DomainChange::AddInstanceDomain {
                    instance_id,
                    domain,
                } => {
                    self.instance(instance_id);
                    self.domain(instance_id, domain);
                    self.owner(instance_id, "");
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
                    self.domain(instance_id, domain);
                    self.owner(instance_id, "");
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
                | DomainChange::RemoveOrganizationDomain {
                    instance_id,
                    org_id,
                    domain,
                } => {
                    self.org_domain(instance_id, org_id, domain);
                    self.owner(instance_id, org_id.as_str());
                }
                DomainChange::SetOrganizationDomainPrimary {
                    instance_id,
                    org_id,
                    domain,
                } => {
                    self.org_domain(instance_id, org_id, domain);
                    self.owner(instance_id, org_id.as_str());
                    self.org_primary(instance_id, org_id);
                }
                DomainChange::RemoveDomainsOfOrganization {
                    instance_id,
                    org_id,
                } => {
                    self.org(instance_id, org_id);
                    self.orgs_all_domains
                        .insert(pair(instance_id, org_id.as_str().to_owned()));
                }
                DomainChange::RemoveDomainsOfInstance { instance_id } => {
                    self.instance(instance_id);
                    self.all_domains.insert(instance_id.as_str().to_owned());
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

fn pair(instance_id: &impl AsRef<str>, key: String) -> Pair {
    (instance_id.as_ref().to_owned(), key)
}

impl BatchKeys {
    /// Every domain named, whatever its instance (for the rules across instances).
    pub(crate) fn domain_names(&self) -> Vec<String> {
        self.domains
            .iter()
            .map(|(_, d)| d.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    }
}
