//! The in-memory model of the five tables (each table's rules and changes are in its
//! module, `crate::table::<table>`, beside the row and its port): applies [`StateChange`]s with the same rules as
//! the PostgreSQL schema (lengths, uniqueness by `lower(domain)`, foreign keys, one primary,
//! soft delete). `verify` folds the event stream into it; the in-memory adapters of
//! `tenancy-testkit` serve the repository ports from it.

mod rows;

pub use rows::RowDiff;

pub(crate) use std::collections::{BTreeMap, HashMap};

pub(crate) use time::OffsetDateTime;

pub(crate) use crate::error::{Error, Result, Rule};
pub(crate) use crate::event::{LegacyEvent, UniqueConstraint};
pub(crate) use crate::id::{InstanceId, OrgId};
pub(crate) use crate::model::{
    Domain, Instance, InstanceDomain, InstanceDomainKind, InstanceDomainType, Organization,
    OrganizationDomain, OrganizationState,
};
pub(crate) use crate::query::{
    DomainCriteria, DomainOwner, DomainSort, InstanceCriteria, Keyset, NameSort,
    OrganizationCriteria, Pagination, SortOrder,
};
pub(crate) use crate::state::{
    DomainChange, InstanceChange, InstanceDomainChange, OrgDomainChange, OrganizationChange,
    StateChange, reduce,
};

pub(crate) type InstanceDomainKey = (String, InstanceDomainType, String);
pub(crate) type OrgDomainKey = (String, String, String);
pub(crate) type LiveDomainKey = (String, Option<String>, String);

/// The five tables in memory.
#[derive(Debug, Clone, Default)]
pub struct InMemoryState {
    pub(crate) instances: BTreeMap<String, Instance>,
    pub(crate) organizations: BTreeMap<(String, String), Organization>,
    pub(crate) instance_domains: BTreeMap<InstanceDomainKey, InstanceDomain>,
    pub(crate) org_domains: BTreeMap<OrgDomainKey, OrganizationDomain>,
    pub(crate) domains: BTreeMap<i64, Domain>,
    /// `(instance, org, lower(domain))` of live unified rows -> id.
    pub(crate) live_domains: HashMap<LiveDomainKey, i64>,
    /// Ids of the unified rows of each instance (live or not), so per-instance work does
    /// not scan every instance's rows.
    pub(crate) domains_of_instance: HashMap<String, Vec<i64>>,
    /// `lower(domain)` of live unified instance domains (unique across instances) -> id.
    pub(crate) live_instance_domains: HashMap<String, i64>,
    /// `lower(domain)` of custom rows of `instance_domains` (unique across instances) -> instance.
    pub(crate) custom_domains: HashMap<String, String>,
    pub(crate) next_domain_id: i64,
}

pub(crate) fn lower(s: &str) -> String {
    // ASCII only, as the schema's `lower(x COLLATE "C")` (migration 0009).
    s.to_ascii_lowercase()
}

/// The keys of a map keyed by `(instance, ..)` that belong to one instance, in order.
pub(crate) fn keys_of<K: Ord + Clone, V>(
    map: &BTreeMap<K, V>,
    from: K,
    same: impl Fn(&K) -> bool,
) -> Vec<K> {
    map.range(from..)
        .take_while(|(k, _)| same(k))
        .map(|(k, _)| k.clone())
        .collect()
}

pub(crate) fn check_domain_len(domain: &str) -> Result<()> {
    let len = domain.chars().count();
    if (1..=255).contains(&len) {
        Ok(())
    } else {
        Err(Error::invalid(
            "domain",
            format!("length {len} is outside 1..=255"),
        ))
    }
}

pub(crate) fn check_non_empty(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        Err(Error::invalid(field, "must not be empty"))
    } else {
        Ok(())
    }
}

impl InMemoryState {
    /// An empty state: no rows in any table.
    pub fn new() -> Self {
        Self {
            next_domain_id: 1,
            ..Self::default()
        }
    }

    /// Applies one legacy event atomically: every change is checked before any is applied,
    /// so a failing event leaves the state untouched. Returns the rows changed.
    pub fn apply_event(
        &mut self,
        instance_id: &InstanceId,
        aggregate_id: &str,
        event: &LegacyEvent,
        at: OffsetDateTime,
    ) -> Result<u64> {
        let changes = reduce(instance_id, aggregate_id, event)?;
        self.apply_all(&changes, at)
    }

    /// Applies changes atomically (all checked first). The changes of one event touch
    /// different tables, so checking each against the state before any is applied is exact.
    pub fn apply_all(&mut self, changes: &[StateChange], at: OffsetDateTime) -> Result<u64> {
        for change in changes {
            self.run(change, at, true)?;
        }
        let mut rows = 0;
        for change in changes {
            rows += self.run(change, at, false)?;
        }
        Ok(rows)
    }

    /// Applies one change; on error nothing changed.
    pub fn apply(&mut self, change: &StateChange, at: OffsetDateTime) -> Result<u64> {
        self.run(change, at, true)?;
        self.run(change, at, false)
    }

    /// Checks the rules of `change`, then (unless `check_only`) applies it.
    fn run(&mut self, change: &StateChange, at: OffsetDateTime, check_only: bool) -> Result<u64> {
        match change {
            StateChange::Instance(change) => self.run_instance(change, at, check_only),
            StateChange::Organization(change) => self.run_organization(change, at, check_only),
            StateChange::InstanceDomain(change) => self.run_instance_domain(change, at, check_only),
            StateChange::OrgDomain(change) => self.run_org_domain(change, at, check_only),
            StateChange::Domain(change) => self.run_domain(change, at, check_only),
        }
    }

    /// The unique constraints (`eventstore.unique_constraints`) the v3 commands keep for
    /// this state: every live custom instance domain (global), every live organization's
    /// name and verified domains (per instance). All of them adds.
    pub fn unique_constraints(&self) -> Vec<UniqueConstraint> {
        let live_instance = |id: &InstanceId| {
            self.instances
                .get(id.as_str())
                .is_some_and(|i| i.deleted_at.is_none())
        };
        let live_org = |instance: &InstanceId, org: &OrgId| {
            self.organizations
                .get(&(instance.as_str().to_owned(), org.as_str().to_owned()))
                .is_some_and(|o| o.deleted_at.is_none())
        };
        let mut uniques = Vec::new();
        for d in self.instance_domains.values() {
            if matches!(d.kind, InstanceDomainKind::Custom { .. }) && live_instance(&d.instance_id)
            {
                uniques.push(UniqueConstraint::add_instance_domain(&d.domain));
            }
        }
        for o in self.organizations.values() {
            if o.deleted_at.is_none() && live_instance(&o.instance_id) {
                uniques.push(UniqueConstraint::add_org_name(
                    o.instance_id.as_str(),
                    &o.name,
                ));
            }
        }
        for d in self.org_domains.values() {
            if d.is_verified && live_instance(&d.instance_id) && live_org(&d.instance_id, &d.org_id)
            {
                uniques.push(UniqueConstraint::add_org_domain(
                    d.instance_id.as_str(),
                    &d.domain,
                ));
            }
        }
        uniques
    }
}

pub(crate) fn describe(criteria: &DomainCriteria) -> String {
    match (&criteria.id, &criteria.domain) {
        (Some(id), _) => format!("id {id}"),
        (None, Some(m)) => format!("{:?} {:?}", m.operation, m.value),
        (None, None) => "matching the criteria".into(),
    }
}

pub(crate) fn org_domain_key(
    instance_id: &InstanceId,
    org_id: &OrgId,
    domain: &str,
) -> OrgDomainKey {
    (
        instance_id.as_str().to_owned(),
        org_id.as_str().to_owned(),
        lower(domain),
    )
}

/// Sorts instances or organizations by the page's sort, ties broken by the id (their
/// keyset position, as PostgreSQL compares it), then cuts the page.
pub(crate) fn page_named<T>(
    mut rows: Vec<T>,
    page: &Pagination<NameSort>,
    position: impl Fn(&T) -> Keyset,
) -> Result<Vec<T>> {
    sort_rows(&mut rows, page.order, |a, b| {
        let (a, b) = (position(a), position(b));
        (a.value, a.id).cmp(&(b.value, b.id))
    });
    page.cut_after(rows, |row| {
        let k = position(row);
        (k.value, k.id)
    })
}

pub(crate) fn sort_rows<T>(
    rows: &mut [T],
    order: SortOrder,
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
) {
    rows.sort_by(|a, b| match order {
        SortOrder::Ascending => cmp(a, b),
        SortOrder::Descending => cmp(b, a),
    });
}
