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
    /// Rows of the older state that the newer one no longer has.
    pub deleted: TableRows,
    /// Rows of both states whose columns differ, as the newer state has them.
    pub updated: TableRows,
    /// Rows only the newer state has.
    pub inserted: TableRows,
}

impl RowDiff {
    /// Whether the two states hold the same rows.
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

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::state::{InstanceChange, InstanceDomainChange, OrgDomainChange, OrganizationChange};

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

    fn iid() -> InstanceId {
        InstanceId::new("i1").unwrap()
    }

    fn apply(state: &mut InMemoryState, changes: Vec<StateChange>) {
        for (n, change) in changes.into_iter().enumerate() {
            let at = T0 + time::Duration::seconds(n as i64);
            state.apply(&change, at).unwrap();
        }
    }

    fn custom(domain: &str, is_primary: bool) -> StateChange {
        InstanceDomainChange::Insert {
            instance_id: iid(),
            domain: domain.into(),
            kind: InstanceDomainKind::Custom {
                is_primary,
                is_generated: false,
            },
        }
        .into()
    }

    fn populated() -> InMemoryState {
        let mut state = InMemoryState::new();
        let org = OrgId::new("o1").unwrap();
        apply(
            &mut state,
            vec![
                InstanceChange::Create {
                    id: iid(),
                    name: "I".into(),
                }
                .into(),
                OrganizationChange::Create {
                    instance_id: iid(),
                    id: org.clone(),
                    name: "O".into(),
                }
                .into(),
                custom("a.example", true),
                OrgDomainChange::Insert {
                    instance_id: iid(),
                    org_id: org.clone(),
                    domain: "o.example".into(),
                }
                .into(),
                DomainChange::AddOrganizationDomain {
                    instance_id: iid(),
                    org_id: org,
                    domain: "o.example".into(),
                    validation_type: None,
                }
                .into(),
            ],
        );
        state
    }

    #[test]
    fn a_state_rebuilt_from_its_rows_has_no_difference() {
        let state = populated();
        let everything = state.diff(&InMemoryState::new());
        assert!(everything.deleted.is_empty() && everything.updated.is_empty());
        assert_eq!(everything.inserted.len(), 5);
        let rebuilt = InMemoryState::from_rows(everything.inserted.clone());
        assert!(rebuilt.diff(&state).is_empty());
        assert!(state.diff(&rebuilt).is_empty());
        // The rebuilt model numbers new unified rows after the loaded ones.
        let mut grown = rebuilt.clone();
        apply(
            &mut grown,
            vec![
                DomainChange::AddInstanceDomain {
                    instance_id: iid(),
                    domain: "new.example".into(),
                }
                .into(),
            ],
        );
        let added = grown.diff(&rebuilt).inserted.domains;
        assert_eq!(added.len(), 1);
        assert!(added[0].id > everything.inserted.domains[0].id);
    }

    #[test]
    fn a_primary_switch_writes_the_demoted_row_first() {
        // The promoted domain sorts before the demoted one in the model's order.
        let mut state = populated();
        apply(&mut state, vec![custom("0.example", false)]);
        let before = state.clone();
        apply(
            &mut state,
            vec![
                InstanceDomainChange::SetPrimary {
                    instance_id: iid(),
                    domain: "0.example".into(),
                }
                .into(),
            ],
        );
        let updated = state.diff(&before).updated.instance_domains;
        let order: Vec<_> = updated.iter().map(|d| d.domain.as_str()).collect();
        assert_eq!(order, ["a.example", "0.example"]);
    }

    #[test]
    fn a_domain_added_again_in_other_letters_replaces_the_stored_key() {
        let mut state = populated();
        let before = state.clone();
        apply(
            &mut state,
            vec![
                InstanceDomainChange::Delete {
                    instance_id: iid(),
                    domain: "a.example".into(),
                    domain_type: InstanceDomainType::Custom,
                }
                .into(),
                custom("A.Example", false),
            ],
        );
        let diff = state.diff(&before);
        assert_eq!(diff.deleted.instance_domains[0].domain, "a.example");
        assert_eq!(diff.inserted.instance_domains[0].domain, "A.Example");
        assert!(diff.updated.is_empty());
    }

    #[test]
    fn a_soft_delete_is_an_update_and_a_hard_delete_a_delete() {
        let mut state = populated();
        let before = state.clone();
        let org = OrgId::new("o1").unwrap();
        apply(
            &mut state,
            vec![
                OrganizationChange::Remove {
                    instance_id: iid(),
                    id: org.clone(),
                }
                .into(),
                OrgDomainChange::DeleteAllOfOrg {
                    instance_id: iid(),
                    org_id: org.clone(),
                }
                .into(),
                DomainChange::RemoveDomainsOfOrganization {
                    instance_id: iid(),
                    org_id: org,
                }
                .into(),
            ],
        );
        let diff = state.diff(&before);
        assert_eq!(diff.updated.organizations.len(), 1);
        assert!(diff.updated.organizations[0].deleted_at.is_some());
        assert_eq!(diff.deleted.org_domains.len(), 1);
        assert_eq!(diff.updated.domains.len(), 1);
        assert!(diff.updated.domains[0].deleted_at.is_some());
        assert!(diff.inserted.is_empty());
    }
}
