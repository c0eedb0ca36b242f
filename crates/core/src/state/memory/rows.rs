//! The model as rows: built from rows read from the tables (a part of them is enough for
//! the changes that touch only that part), and the difference of two states as the rows
//! to delete, update and insert, so that an adapter writes a batch set-based.

use super::*;
use crate::state::{Table, TableRows};

/// What turns the rows of one state into those of another, per table. Rows keep the key
/// they are stored under (`domain` as written, not lower-cased); `updated` rows exist in
/// both states, `inserted` ones only in the newer (new unified domains carry the model's
/// provisional id, in the order the identity column is to number them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RowDiff {
    pub deleted: TableRows,
    pub updated: TableRows,
    pub inserted: TableRows,
}

impl RowDiff {
    pub fn is_empty(&self) -> bool {
        self.deleted.is_empty() && self.updated.is_empty() && self.inserted.is_empty()
    }

    /// Rows written (deleted, updated or inserted).
    pub fn len(&self) -> usize {
        self.deleted.len() + self.updated.len() + self.inserted.len()
    }
}

impl InMemoryState {
    /// A state holding exactly `rows` (they satisfy the schema's rules: they come from it).
    pub fn from_rows(rows: TableRows) -> Self {
        // Destructured: a new table does not compile until it is loaded here.
        let TableRows {
            instances,
            organizations,
            instance_domains,
            org_domains,
            domains,
        } = rows;
        let mut state = Self::new();
        for row in instances {
            state.instances.insert(row.id.as_str().to_owned(), row);
        }
        for row in organizations {
            let key = (
                row.instance_id.as_str().to_owned(),
                row.id.as_str().to_owned(),
            );
            state.organizations.insert(key, row);
        }
        for row in instance_domains {
            let key = (
                row.instance_id.as_str().to_owned(),
                row.kind.domain_type(),
                lower(&row.domain),
            );
            if key.1 == InstanceDomainType::Custom {
                state.custom_domains.insert(key.2.clone(), key.0.clone());
            }
            state.instance_domains.insert(key, row);
        }
        for row in org_domains {
            let key = org_domain_key(&row.instance_id, &row.org_id, &row.domain);
            state.org_domains.insert(key, row);
        }
        for row in domains {
            let instance = row.instance_id.as_str().to_owned();
            if row.deleted_at.is_none() {
                let owner = row.org_id.as_ref().map(|o| o.as_str().to_owned());
                if owner.is_none() {
                    state
                        .live_instance_domains
                        .insert(lower(&row.domain), row.id);
                }
                state
                    .live_domains
                    .insert((instance.clone(), owner, lower(&row.domain)), row.id);
            }
            state
                .domains_of_instance
                .entry(instance)
                .or_default()
                .push(row.id);
            state.next_domain_id = state.next_domain_id.max(row.id + 1);
            state.domains.insert(row.id, row);
        }
        for ids in state.domains_of_instance.values_mut() {
            ids.sort_unstable();
        }
        state
    }

    /// The rows that turn `before` into `self`. Within `updated`, the rows that give up a
    /// unique claim (soft-deleted, no longer primary or verified) come first: the schema
    /// checks unique indexes row by row, so the demoted row must be written before the
    /// promoted one.
    pub fn diff(&self, before: &InMemoryState) -> RowDiff {
        let mut diff = RowDiff::default();
        let (d, u, i) = (&mut diff.deleted, &mut diff.updated, &mut diff.inserted);
        // Exhaustive over the registry: a new table does not compile until it is diffed.
        for table in Table::ALL {
            match table {
                Table::Instances => split(
                    &before.instances,
                    &self.instances,
                    |a, b| a.id == b.id,
                    (&mut d.instances, &mut u.instances, &mut i.instances),
                ),
                Table::Organizations => {
                    split(
                        &before.organizations,
                        &self.organizations,
                        |a, b| a.id == b.id,
                        (
                            &mut d.organizations,
                            &mut u.organizations,
                            &mut i.organizations,
                        ),
                    );
                    u.organizations.sort_by_key(|o| o.deleted_at.is_none());
                }
                Table::InstanceDomains => {
                    split(
                        &before.instance_domains,
                        &self.instance_domains,
                        |a, b| a.domain == b.domain,
                        (
                            &mut d.instance_domains,
                            &mut u.instance_domains,
                            &mut i.instance_domains,
                        ),
                    );
                    u.instance_domains.sort_by_key(|d| {
                        matches!(
                            d.kind,
                            InstanceDomainKind::Custom {
                                is_primary: true,
                                ..
                            }
                        )
                    });
                }
                Table::OrgDomains => {
                    split(
                        &before.org_domains,
                        &self.org_domains,
                        |a, b| a.domain == b.domain,
                        (&mut d.org_domains, &mut u.org_domains, &mut i.org_domains),
                    );
                    u.org_domains.sort_by_key(|d| (d.is_primary, d.is_verified));
                }
                Table::Domains => {
                    split(
                        &before.domains,
                        &self.domains,
                        |a, b| a.id == b.id,
                        (&mut d.domains, &mut u.domains, &mut i.domains),
                    );
                    u.domains
                        .sort_by_key(|d| (d.deleted_at.is_none(), d.is_primary, d.is_verified));
                }
            }
        }
        diff
    }
}

/// Sorts the rows of one table into deleted / updated / inserted. A row under the same
/// model key whose stored key differs (`same_key` false: e.g. the domain re-added in
/// another letter case) is a delete of the old row and an insert of the new one.
fn split<K: Ord, V: Clone + PartialEq>(
    before: &BTreeMap<K, V>,
    after: &BTreeMap<K, V>,
    same_key: impl Fn(&V, &V) -> bool,
    (deleted, updated, inserted): (&mut Vec<V>, &mut Vec<V>, &mut Vec<V>),
) {
    for (key, old) in before {
        match after.get(key) {
            None => deleted.push(old.clone()),
            Some(new) if !same_key(old, new) => {
                deleted.push(old.clone());
                inserted.push(new.clone());
            }
            Some(new) if new != old => updated.push(new.clone()),
            Some(_) => {}
        }
    }
    for (key, new) in after {
        if !before.contains_key(key) {
            inserted.push(new.clone());
        }
    }
}
