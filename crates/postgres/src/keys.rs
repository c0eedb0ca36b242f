//! What a batch of changes touches (`crate::batch`): the keys its changes name, from which
//! each table's module reads the rows the batch can touch or collide with.

use std::collections::BTreeSet;

use tenancy_core::model::{InstanceDomainKind, InstanceDomainType};
use tenancy_core::state::{
    DomainChange, InstanceChange, InstanceDomainChange, OrgDomainChange, OrganizationChange,
    StateChange,
};

/// What a batch's changes name, for reading the rows they can touch. Values are as the
/// schema compares them (`lower(name COLLATE "C")`, `lower(domain COLLATE "C")`: ASCII only).
/// Everything a change of an instance names is kept with that instance, so that a batch of
/// several instances (the ordered catch-up) reads each instance's rows for its own keys,
/// not every instance's rows for every key. Each set names what one kind of change needs
/// (the model's rules in `tenancy_core::table`), not everything a change mentions: a
/// renamed organization needs its row, not its domains; a new organization domain needs
/// its own row and its organization's, not the instance's primary; a verified one needs
/// neither the organization's row nor the primary.
#[derive(Debug, Default)]
pub(crate) struct BatchKeys {
    /// Every instance named: its row.
    pub instances: BTreeSet<String>,
    /// (instance, organization) a change of the organization names, or a new domain of it
    /// (which checks that it exists): their rows.
    pub orgs: BTreeSet<Pair>,
    /// (instance, organization name) created or given.
    pub org_names: BTreeSet<Pair>,
    /// (instance, organization, domain) of the organization domains named: those rows, in
    /// `org_domains` and `domains`.
    pub org_domains: BTreeSet<Triple>,
    /// (instance, organization) whose primary domain a change moves: its primary row.
    pub org_primaries: BTreeSet<Pair>,
    /// (instance, organization) all of whose domains a change removes.
    pub orgs_all_domains: BTreeSet<Pair>,
    /// (instance, domain) a change verifies for an organization: the instance's verified
    /// organization rows of that domain (one per instance).
    pub verified_domains: BTreeSet<Pair>,
    /// (instance, domain) of the custom rows named in `instance_domains`.
    pub custom_instance_domains: BTreeSet<Pair>,
    /// (instance, domain) of the trusted rows named in `instance_domains`. Apart from the
    /// custom ones: a change of one type never reads a row of the other (the key is
    /// (instance, type, domain)), and a probe for the other type found nothing but cost
    /// an index probe per custom domain a batch names.
    pub trusted_instance_domains: BTreeSet<Pair>,
    /// Instances whose primary in `instance_domains` a change moves or competes for.
    pub instance_domain_primaries: BTreeSet<String>,
    /// Custom domains inserted into `instance_domains` (unique across instances).
    pub custom_domains_added: BTreeSet<String>,
    /// (instance, domain) of the instance-level rows of `domains` named.
    pub instance_level_domains: BTreeSet<Pair>,
    /// Instances whose instance-level primary in `domains` a change moves.
    pub instance_level_primaries: BTreeSet<String>,
    /// Instance-level domains added to `domains` (unique across instances).
    pub instance_level_domains_added: BTreeSet<String>,
    /// Instances all of whose rows of a table a change touches (the instance removed).
    pub all_organizations: BTreeSet<String>,
    pub all_instance_domains: BTreeSet<String>,
    pub all_org_domains: BTreeSet<String>,
    pub all_domains: BTreeSet<String>,
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
fn columns3(triples: &BTreeSet<Triple>) -> (Vec<String>, Vec<String>, Vec<String>) {
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

    /// A domain of an organization named: its row. Not the organization's: only a new
    /// domain checks that its organization exists ([`Self::new_org_domain`]).
    fn org_domain(
        &mut self,
        instance_id: &impl AsRef<str>,
        org_id: &impl AsRef<str>,
        domain: &str,
    ) {
        self.instance(instance_id);
        self.org_domains.insert((
            instance_id.as_ref().to_owned(),
            org_id.as_ref().to_owned(),
            lower(domain),
        ));
    }

    /// A domain added to an organization: its row, and the organization's, which must exist.
    fn new_org_domain(
        &mut self,
        instance_id: &impl AsRef<str>,
        org_id: &impl AsRef<str>,
        domain: &str,
    ) {
        self.org(instance_id, org_id);
        self.org_domain(instance_id, org_id, domain);
    }

    fn org_primary(&mut self, instance_id: &impl AsRef<str>, org_id: &impl AsRef<str>) {
        self.org_primaries
            .insert(pair(instance_id, org_id.as_ref().to_owned()));
    }

    fn verified_domain(&mut self, instance_id: &impl AsRef<str>, domain: &str) {
        self.verified_domains
            .insert(pair(instance_id, lower(domain)));
    }

    fn instance_domain(
        &mut self,
        instance_id: &impl AsRef<str>,
        domain_type: InstanceDomainType,
        domain: &str,
    ) {
        self.instance(instance_id);
        let named = match domain_type {
            InstanceDomainType::Custom => &mut self.custom_instance_domains,
            InstanceDomainType::Trusted => &mut self.trusted_instance_domains,
        };
        named.insert(pair(instance_id, lower(domain)));
    }

    fn instance_level_domain(&mut self, instance_id: &impl AsRef<str>, domain: &str) {
        self.instance(instance_id);
        self.instance_level_domains
            .insert(pair(instance_id, lower(domain)));
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
                    self.instance_domain(instance_id, kind.domain_type(), domain);
                    if let InstanceDomainKind::Custom { is_primary, .. } = kind {
                        self.custom_domains_added.insert(lower(domain));
                        if *is_primary {
                            self.instance_domain_primaries
                                .insert(instance_id.as_str().to_owned());
                        }
                    }
                }
                InstanceDomainChange::SetPrimary {
                    instance_id,
                    domain,
                } => {
                    self.instance_domain(instance_id, InstanceDomainType::Custom, domain);
                    self.instance_domain_primaries
                        .insert(instance_id.as_str().to_owned());
                }
                InstanceDomainChange::Delete {
                    instance_id,
                    domain,
                    domain_type,
                } => self.instance_domain(instance_id, *domain_type, domain),
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
                } => self.new_org_domain(instance_id, org_id, domain),
                OrgDomainChange::SetValidation {
                    instance_id,
                    org_id,
                    domain,
                    ..
                }
                | OrgDomainChange::Delete {
                    instance_id,
                    org_id,
                    domain,
                } => self.org_domain(instance_id, org_id, domain),
                OrgDomainChange::SetVerified {
                    instance_id,
                    org_id,
                    domain,
                } => {
                    self.org_domain(instance_id, org_id, domain);
                    self.verified_domain(instance_id, domain);
                }
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
                    self.instance(instance_id);
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
                    self.instance_level_domain(instance_id, domain);
                    self.instance_level_domains_added.insert(lower(domain));
                }
                DomainChange::SetInstanceDomainPrimary {
                    instance_id,
                    domain,
                } => {
                    self.instance_level_domain(instance_id, domain);
                    self.instance_level_primaries
                        .insert(instance_id.as_str().to_owned());
                }
                DomainChange::RemoveInstanceDomain {
                    instance_id,
                    domain,
                } => self.instance_level_domain(instance_id, domain),
                DomainChange::AddOrganizationDomain {
                    instance_id,
                    org_id,
                    domain,
                    ..
                } => self.new_org_domain(instance_id, org_id, domain),
                DomainChange::SetOrganizationDomainValidationType {
                    instance_id,
                    org_id,
                    domain,
                    ..
                }
                | DomainChange::RemoveOrganizationDomain {
                    instance_id,
                    org_id,
                    domain,
                } => self.org_domain(instance_id, org_id, domain),
                DomainChange::SetOrganizationDomainVerified {
                    instance_id,
                    org_id,
                    domain,
                } => {
                    self.org_domain(instance_id, org_id, domain);
                    self.verified_domain(instance_id, domain);
                }
                DomainChange::SetOrganizationDomainPrimary {
                    instance_id,
                    org_id,
                    domain,
                } => {
                    self.org_domain(instance_id, org_id, domain);
                    self.org_primary(instance_id, org_id);
                }
                DomainChange::RemoveDomainsOfOrganization {
                    instance_id,
                    org_id,
                } => {
                    self.instance(instance_id);
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

    /// The arrays of the organization domain arms that both domain tables' loads begin
    /// with, in bind order: the named domains (instance, organization, domain), the
    /// primaries (instance, organization), the emptied organizations (instance,
    /// organization), the verified domains (instance, domain).
    pub(crate) fn org_domain_columns(&self) -> [Vec<String>; 9] {
        let (named_instances, named_orgs, named_domains) = columns3(&self.org_domains);
        let (primary_instances, primary_orgs) = columns(&self.org_primaries);
        let (emptied_instances, emptied_orgs) = columns(&self.orgs_all_domains);
        let (verified_instances, verified_domains) = columns(&self.verified_domains);
        [
            named_instances,
            named_orgs,
            named_domains,
            primary_instances,
            primary_orgs,
            emptied_instances,
            emptied_orgs,
            verified_instances,
            verified_domains,
        ]
    }
}

pub(crate) fn list(set: &BTreeSet<String>) -> Vec<String> {
    set.iter().cloned().collect()
}

fn pair(instance_id: &impl AsRef<str>, key: String) -> Pair {
    (instance_id.as_ref().to_owned(), key)
}
