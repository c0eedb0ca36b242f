//! The tables tenancy keeps, one module each (the row, its changes, its repository port),
//! and listed once. What must cover every table iterates
//! [`Table::ALL`] (rebuild's reset, the planner statistics) or is tested against it (the
//! bulk writer, `verify`, the change kinds), so a table added here and forgotten
//! elsewhere fails a test instead of being skipped in silence.

pub mod domain;
pub mod instance;
pub mod instance_domain;
pub mod org_domain;
pub mod organization;

use crate::model::{Domain, Instance, InstanceDomain, Organization, OrganizationDomain};
use crate::state::StateChange;

/// The five tables of the relational model, in the `zitadel` schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `zitadel.instances`.
    Instances,
    /// `zitadel.organizations`.
    Organizations,
    /// `zitadel.instance_domains`.
    InstanceDomains,
    /// `zitadel.org_domains`.
    OrgDomains,
    /// `zitadel.domains`, the unified view of both kinds of domains.
    Domains,
}

impl Table {
    /// Every table, each after the tables its foreign keys point to.
    pub const ALL: [Table; 5] = [
        Table::Instances,
        Table::Organizations,
        Table::InstanceDomains,
        Table::OrgDomains,
        Table::Domains,
    ];

    /// The table's name in the relational schema.
    pub fn name(self) -> &'static str {
        match self {
            Self::Instances => "instances",
            Self::Organizations => "organizations",
            Self::InstanceDomains => "instance_domains",
            Self::OrgDomains => "org_domains",
            Self::Domains => "domains",
        }
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl StateChange {
    /// The table this change writes.
    pub fn table(&self) -> Table {
        match self {
            Self::Instance(_) => Table::Instances,
            Self::Organization(_) => Table::Organizations,
            Self::InstanceDomain(_) => Table::InstanceDomains,
            Self::OrgDomain(_) => Table::OrgDomains,
            Self::Domain(_) => Table::Domains,
        }
    }
}

/// Rows of the five tables (a dump, a loaded part of them, or what a write changes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableRows {
    /// Rows of `zitadel.instances`.
    pub instances: Vec<Instance>,
    /// Rows of `zitadel.organizations`.
    pub organizations: Vec<Organization>,
    /// Rows of `zitadel.instance_domains`.
    pub instance_domains: Vec<InstanceDomain>,
    /// Rows of `zitadel.org_domains`.
    pub org_domains: Vec<OrganizationDomain>,
    /// Rows of `zitadel.domains`.
    pub domains: Vec<Domain>,
}

impl TableRows {
    /// How many rows `table` holds (exhaustive: a new table does not compile until it is
    /// listed here too).
    pub fn len_of(&self, table: Table) -> usize {
        match table {
            Table::Instances => self.instances.len(),
            Table::Organizations => self.organizations.len(),
            Table::InstanceDomains => self.instance_domains.len(),
            Table::OrgDomains => self.org_domains.len(),
            Table::Domains => self.domains.len(),
        }
    }

    /// Rows in all tables.
    pub fn len(&self) -> usize {
        Table::ALL.iter().map(|t| self.len_of(*t)).sum()
    }

    /// Whether no table holds a row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves every row of `other` after the rows of the same table here.
    pub fn append(&mut self, other: TableRows) {
        // Destructured: a new table does not compile until it is appended here too.
        let TableRows {
            mut instances,
            mut organizations,
            mut instance_domains,
            mut org_domains,
            mut domains,
        } = other;
        self.instances.append(&mut instances);
        self.organizations.append(&mut organizations);
        self.instance_domains.append(&mut instance_domains);
        self.org_domains.append(&mut org_domains);
        self.domains.append(&mut domains);
    }
}
