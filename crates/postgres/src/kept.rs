//! Rows a catch-up keeps across its batches, so that a later batch of the same instances
//! finds them in memory instead of loading them again ([`crate::batch::apply_batch_keeping`]).
//!
//! In an outage catch-up 84 % of the rows a batch loaded had been loaded by an earlier
//! batch, mostly many windows before (benchmarks.md, third session of 2026-12-06): only
//! rows kept across commits are found again, so what guards them must hold across
//! commits too. The guard is a counter per instance, `tenancy.row_versions`:
//! - every write of an instance's rows that does not keep them — a v3 command's change
//!   ([`crate::apply::apply_change`]) — bumps the instance's counter first, in its own
//!   transaction, and holds the row's lock until it commits;
//! - a batch that keeps rows bumps the counters of its instances before it reads
//!   anything (so a command on them waits for the batch, and the batch for a command
//!   under way) and keeps an instance's rows only if the counter moved by exactly its own
//!   bump since the batch that kept them. The projection's other writers (another
//!   process, the exact path) move the instance's cursor, which the ordered catch-up
//!   checks under its locks; a switch of generations or a rebuild in place gives the
//!   tables new files, which the batch compares too.
//!
//! What is kept is what the batch's lookups by key found, as complete answers: the row
//! of an instance or an organization (or that there is none), the rows of one domain of
//! an instance in `instance_domains`, of one domain of an organization in `org_domains`
//! and among the live rows of `domains`, and of one instance-level domain among the live
//! rows of `domains`. A batch's other lookups (the primaries, the verified rows, the rows
//! of other instances, every row of an owner) still go to the tables. A new row of
//! `domains` carries the model's provisional id until the identity column numbers it, so
//! the answer of its domain is forgotten rather than kept.

use std::collections::HashMap;
use std::sync::Mutex;

use tenancy_core::model::{Domain, Instance, InstanceDomain, Organization, OrganizationDomain};
use tenancy_core::state::{RowDiff, TableRows};

use crate::keys::BatchKeys;
use crate::rows::distinct_by;

/// Rows kept at most (over every instance); past it the others' rows are forgotten.
const MAX_ROWS: usize = 200_000;

/// The rows kept for the batches of one catch-up, per instance. Batches side by side
/// take the rows of their own instances ([`KeptRows::take`]) and give them back once
/// committed ([`KeptRows::put`]); rows of a batch that failed are not given back.
#[derive(Debug, Default)]
pub struct KeptRows {
    instances: Mutex<HashMap<String, InstanceRows>>,
}

impl KeptRows {
    /// Takes out what is kept for `instances` (for one batch).
    pub fn take<'a>(&self, instances: impl IntoIterator<Item = &'a String>) -> KeptSet {
        let mut kept = self
            .instances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        KeptSet {
            instances: instances
                .into_iter()
                .filter_map(|i| kept.remove_entry(i))
                .collect(),
        }
    }

    /// Gives back what a committed batch kept.
    pub fn put(&self, set: KeptSet) {
        let mut kept = self
            .instances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let held: usize = kept.values().map(InstanceRows::len).sum();
        let adding: usize = set.instances.values().map(InstanceRows::len).sum();
        if held + adding > MAX_ROWS {
            kept.clear();
        }
        kept.extend(set.instances);
    }

    /// Rows kept, over every instance.
    pub fn len(&self) -> usize {
        self.instances
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .map(InstanceRows::len)
            .sum()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is kept for the instances of one batch.
#[derive(Debug, Default)]
pub struct KeptSet {
    instances: HashMap<String, InstanceRows>,
}

/// The answers kept for one instance, valid while its counter and tables are as recorded.
#[derive(Debug, Default)]
struct InstanceRows {
    version: i64,
    tables: Vec<i64>,
    /// `Some(None)`: no such instance row.
    instance: Option<Option<Instance>>,
    organizations: HashMap<String, Option<Organization>>,
    /// lower(domain) -> its custom and trusted rows.
    instance_domains: HashMap<String, Vec<InstanceDomain>>,
    /// (organization, lower(domain)) -> its rows of `org_domains`.
    org_domains: HashMap<(String, String), Vec<OrganizationDomain>>,
    /// (organization, lower(domain)) -> its live rows of `domains`.
    org_level_domains: HashMap<(String, String), Vec<Domain>>,
    /// lower(domain) -> its live instance-level rows of `domains`.
    instance_level_domains: HashMap<String, Vec<Domain>>,
}

impl InstanceRows {
    fn new(version: i64, tables: Vec<i64>) -> Self {
        Self {
            version,
            tables,
            ..Self::default()
        }
    }

    /// Answers kept (an empty answer counts as one).
    fn len(&self) -> usize {
        1 + self.organizations.len()
            + self.instance_domains.len()
            + self.org_domains.len()
            + self.org_level_domains.len()
            + self.instance_level_domains.len()
    }
}

/// The rows answered from memory followed by those loaded, each row once (a row that a
/// lookup answered from memory and another lookup loaded is the same row: the guard
/// holds).
pub(crate) fn merged(served: TableRows, loaded: TableRows) -> TableRows {
    fn chain<T>(mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
        a.extend(b);
        a
    }
    // Destructured: a new table does not compile until it is merged here.
    let TableRows {
        instances,
        organizations,
        instance_domains,
        org_domains,
        domains,
    } = loaded;
    TableRows {
        instances: distinct_by(chain(served.instances, instances), |r| r.id.clone()),
        organizations: distinct_by(chain(served.organizations, organizations), |r| {
            (r.instance_id.clone(), r.id.clone())
        }),
        instance_domains: distinct_by(chain(served.instance_domains, instance_domains), |r| {
            (
                r.instance_id.clone(),
                r.kind.domain_type(),
                r.domain.clone(),
            )
        }),
        org_domains: distinct_by(chain(served.org_domains, org_domains), |r| {
            (r.instance_id.clone(), r.org_id.clone(), r.domain.clone())
        }),
        domains: distinct_by(chain(served.domains, domains), |r| r.id),
    }
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn org_of(row: &Domain) -> &str {
    row.org_id.as_ref().map_or("", |o| o.as_str())
}

/// The lookups by key a batch made, answered from memory or from the tables.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    instances: Vec<String>,
    orgs: Vec<(String, String)>,
    instance_domains: Vec<(String, String)>,
    org_domains: Vec<(String, String, String)>,
    instance_level_domains: Vec<(String, String)>,
}

impl KeptSet {
    /// The instances whose counters a batch of `keys` bumps: those its changes name and
    /// those it holds rows of.
    pub(crate) fn to_bump(&self, keys: &BatchKeys) -> Vec<String> {
        let mut instances: Vec<String> = keys
            .instances
            .iter()
            .chain(self.instances.keys())
            .cloned()
            .collect();
        instances.sort();
        instances.dedup();
        instances
    }

    /// The guard (see the module): `versions` are the instances' counters after this
    /// batch's bump, `tables` the tables' files now. Forgets what no longer holds.
    pub(crate) fn check(&mut self, versions: &[(String, i64)], tables: &[i64]) {
        for (instance, version) in versions {
            let valid = self.instances.get(instance).is_some_and(|kept| {
                kept.version + 1 == *version && kept.tables == tables
            });
            if valid {
                if let Some(kept) = self.instances.get_mut(instance) {
                    kept.version = *version;
                }
            } else {
                self.instances.insert(
                    instance.clone(),
                    InstanceRows::new(*version, tables.to_vec()),
                );
            }
        }
        // An instance not bumped keeps nothing: its counter was not checked.
        self.instances
            .retain(|instance, _| versions.iter().any(|(i, _)| i == instance));
    }

    /// Takes out of `keys` the lookups by key that are answered from memory, and returns
    /// their rows and every lookup by key the batch makes.
    pub(crate) fn serve(&self, keys: &mut BatchKeys) -> (TableRows, Lookups) {
        let mut rows = TableRows::default();
        let lookups = Lookups {
            instances: keys.instances.iter().cloned().collect(),
            orgs: keys.orgs.iter().cloned().collect(),
            instance_domains: keys.instance_domains.iter().cloned().collect(),
            org_domains: keys.org_domains.iter().cloned().collect(),
            instance_level_domains: keys.instance_level_domains.iter().cloned().collect(),
        };
        let kept = |instance: &str| self.instances.get(instance);
        keys.instances
            .retain(|i| match kept(i).and_then(|k| k.instance.as_ref()) {
                Some(row) => {
                    rows.instances.extend(row.clone());
                    false
                }
                None => true,
            });
        keys.orgs.retain(
            |(i, org)| match kept(i).and_then(|k| k.organizations.get(org)) {
                Some(row) => {
                    rows.organizations.extend(row.clone());
                    false
                }
                None => true,
            },
        );
        keys.instance_domains.retain(|(i, d)| {
            match kept(i).and_then(|k| k.instance_domains.get(d)) {
                Some(found) => {
                    rows.instance_domains.extend(found.iter().cloned());
                    false
                }
                None => true,
            }
        });
        keys.org_domains.retain(|(i, org, d)| {
            let key = (org.clone(), d.clone());
            let found = kept(i)
                .and_then(|k| Some((k.org_domains.get(&key)?, k.org_level_domains.get(&key)?)));
            match found {
                Some((org_domains, domains)) => {
                    rows.org_domains.extend(org_domains.iter().cloned());
                    rows.domains.extend(domains.iter().cloned());
                    false
                }
                None => true,
            }
        });
        keys.instance_level_domains.retain(|(i, d)| {
            match kept(i).and_then(|k| k.instance_level_domains.get(d)) {
                Some(found) => {
                    rows.domains.extend(found.iter().cloned());
                    false
                }
                None => true,
            }
        });
        (rows, lookups)
    }

    /// Keeps the answers of this batch's lookups as the tables hold them once `diff` is
    /// written: `before` holds every row of each lookup (from memory or the tables) as
    /// the batch found them, and `diff` every row it wrote.
    pub(crate) fn record(&mut self, lookups: &Lookups, before: &TableRows, diff: &RowDiff) {
        for id in &lookups.instances {
            if let Some(kept) = self.instances.get_mut(id) {
                let found = before.instances.iter().find(|r| r.id.as_str() == id);
                kept.instance = Some(found.cloned());
            }
        }
        for (i, org) in &lookups.orgs {
            if let Some(kept) = self.instances.get_mut(i) {
                let found = before
                    .organizations
                    .iter()
                    .find(|r| r.instance_id.as_str() == i && r.id.as_str() == org);
                kept.organizations.insert(org.clone(), found.cloned());
            }
        }
        for (i, d) in &lookups.instance_domains {
            if let Some(kept) = self.instances.get_mut(i) {
                let found = before
                    .instance_domains
                    .iter()
                    .filter(|r| r.instance_id.as_str() == i && lower(&r.domain) == *d)
                    .cloned()
                    .collect();
                kept.instance_domains.insert(d.clone(), found);
            }
        }
        for (i, org, d) in &lookups.org_domains {
            if let Some(kept) = self.instances.get_mut(i) {
                let key = (org.clone(), d.clone());
                let org_domains = before
                    .org_domains
                    .iter()
                    .filter(|r| {
                        r.instance_id.as_str() == i
                            && r.org_id.as_str() == org
                            && lower(&r.domain) == *d
                    })
                    .cloned()
                    .collect();
                let domains = before
                    .domains
                    .iter()
                    .filter(|r| {
                        r.deleted_at.is_none()
                            && r.instance_id.as_str() == i
                            && org_of(r) == org
                            && lower(&r.domain) == *d
                    })
                    .cloned()
                    .collect();
                kept.org_domains.insert(key.clone(), org_domains);
                kept.org_level_domains.insert(key, domains);
            }
        }
        for (i, d) in &lookups.instance_level_domains {
            if let Some(kept) = self.instances.get_mut(i) {
                let found = before
                    .domains
                    .iter()
                    .filter(|r| {
                        r.deleted_at.is_none()
                            && r.instance_id.as_str() == i
                            && org_of(r).is_empty()
                            && lower(&r.domain) == *d
                    })
                    .cloned()
                    .collect();
                kept.instance_level_domains.insert(d.clone(), found);
            }
        }
        self.apply(diff);
    }

    /// Brings the answers kept up to date with the rows a batch wrote: a row leaves the
    /// answer it no longer belongs to and joins the one it belongs to, where that answer
    /// is kept (an answer not kept stays unknown).
    fn apply(&mut self, diff: &RowDiff) {
        for (rows, deleted) in [(&diff.deleted, true), (&diff.updated, false)] {
            for row in &rows.instance_domains {
                let Some(kept) = self.instances.get_mut(row.instance_id.as_str()) else {
                    continue;
                };
                if let Some(found) = kept.instance_domains.get_mut(&lower(&row.domain)) {
                    found.retain(|r| {
                        !(r.domain == row.domain && r.kind.domain_type() == row.kind.domain_type())
                    });
                    if !deleted {
                        found.push(row.clone());
                    }
                }
            }
            for row in &rows.org_domains {
                let Some(kept) = self.instances.get_mut(row.instance_id.as_str()) else {
                    continue;
                };
                let key = (row.org_id.as_str().to_owned(), lower(&row.domain));
                if let Some(found) = kept.org_domains.get_mut(&key) {
                    found.retain(|r| r.domain != row.domain);
                    if !deleted {
                        found.push(row.clone());
                    }
                }
            }
        }
        for row in &diff.updated.instances {
            if let Some(kept) = self.instances.get_mut(row.id.as_str())
                && kept.instance.is_some()
            {
                kept.instance = Some(Some(row.clone()));
            }
        }
        for row in &diff.inserted.instances {
            if let Some(kept) = self.instances.get_mut(row.id.as_str()) {
                kept.instance = Some(Some(row.clone()));
            }
        }
        for row in diff
            .updated
            .organizations
            .iter()
            .chain(&diff.inserted.organizations)
        {
            if let Some(kept) = self.instances.get_mut(row.instance_id.as_str())
                && let Some(found) = kept.organizations.get_mut(row.id.as_str())
            {
                *found = Some(row.clone());
            }
        }
        for row in &diff.inserted.instance_domains {
            if let Some(kept) = self.instances.get_mut(row.instance_id.as_str())
                && let Some(found) = kept.instance_domains.get_mut(&lower(&row.domain))
            {
                found.push(row.clone());
            }
        }
        for row in &diff.inserted.org_domains {
            if let Some(kept) = self.instances.get_mut(row.instance_id.as_str()) {
                let key = (row.org_id.as_str().to_owned(), lower(&row.domain));
                if let Some(found) = kept.org_domains.get_mut(&key) {
                    found.push(row.clone());
                }
            }
        }
        for row in &diff.updated.domains {
            let Some(kept) = self.instances.get_mut(row.instance_id.as_str()) else {
                continue;
            };
            let (org, domain) = (org_of(row).to_owned(), lower(&row.domain));
            let found = if org.is_empty() {
                kept.instance_level_domains.get_mut(&domain)
            } else {
                kept.org_level_domains.get_mut(&(org, domain))
            };
            if let Some(found) = found {
                found.retain(|r| r.id != row.id);
                if row.deleted_at.is_none() {
                    found.push(row.clone());
                }
            }
        }
        // Their ids are provisional until written: the answer is forgotten.
        for row in &diff.inserted.domains {
            let Some(kept) = self.instances.get_mut(row.instance_id.as_str()) else {
                continue;
            };
            let (org, domain) = (org_of(row).to_owned(), lower(&row.domain));
            if org.is_empty() {
                kept.instance_level_domains.remove(&domain);
            } else {
                kept.org_level_domains.remove(&(org, domain));
            }
        }
    }
}
