//! One change of every kind, in an order a store accepts (instance `a`, organization
//! `o`): for tests that must prove every change reaches an adapter's code (PostgreSQL's
//! table's function `tenancy.apply_<table>` dispatches on the changes' names).

use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{InstanceDomainKind, InstanceDomainType, ValidationType};
use tenancy_core::state::{
    DomainChange, InstanceChange, InstanceDomainChange, InstanceUpdate, OrgDomainChange,
    OrganizationChange, OrganizationUpdate, StateChange,
};

/// How many kinds of change there are.
pub const KINDS: usize = 28;

/// The kind of a change, `0..KINDS`. The match is exhaustive: a new kind does not
/// compile until it is numbered here, and [`one_of_each`]'s test then asks for an example.
pub fn kind(change: &StateChange) -> usize {
    use DomainChange as D;
    use InstanceChange as I;
    use InstanceDomainChange as ID;
    use OrgDomainChange as OD;
    use OrganizationChange as O;
    match change {
        StateChange::Instance(c) => match c {
            I::Create { .. } => 0,
            I::Update { .. } => 1,
            I::Remove { .. } => 2,
        },
        StateChange::Organization(c) => match c {
            O::Create { .. } => 3,
            O::Update { .. } => 4,
            O::Remove { .. } => 5,
            O::RemoveAllOfInstance { .. } => 6,
        },
        StateChange::InstanceDomain(c) => match c {
            ID::Insert { .. } => 7,
            ID::SetPrimary { .. } => 8,
            ID::Delete { .. } => 9,
            ID::DeleteAllOfInstance { .. } => 10,
        },
        StateChange::OrgDomain(c) => match c {
            OD::Insert { .. } => 11,
            OD::SetValidation { .. } => 12,
            OD::SetVerified { .. } => 13,
            OD::SetPrimary { .. } => 14,
            OD::Delete { .. } => 15,
            OD::DeleteAllOfOrg { .. } => 16,
            OD::DeleteAllOfInstance { .. } => 17,
        },
        StateChange::Domain(c) => match c {
            D::AddInstanceDomain { .. } => 18,
            D::SetInstanceDomainPrimary { .. } => 19,
            D::RemoveInstanceDomain { .. } => 20,
            D::AddOrganizationDomain { .. } => 21,
            D::SetOrganizationDomainValidationType { .. } => 22,
            D::SetOrganizationDomainVerified { .. } => 23,
            D::SetOrganizationDomainPrimary { .. } => 24,
            D::RemoveOrganizationDomain { .. } => 25,
            D::RemoveDomainsOfOrganization { .. } => 26,
            D::RemoveDomainsOfInstance { .. } => 27,
        },
    }
}

/// Every kind of change once, in an order that applies cleanly to an empty store.
pub fn one_of_each() -> Vec<StateChange> {
    let instance_id = InstanceId::new("a").unwrap_or_else(|_| unreachable!());
    let org_id = OrgId::new("o").unwrap_or_else(|_| unreachable!());
    let i = || instance_id.clone();
    let o = || org_id.clone();
    let d = |name: &str| name.to_owned();
    vec![
        InstanceChange::Create {
            id: i(),
            name: d("A"),
        }
        .into(),
        InstanceChange::Update {
            id: i(),
            update: InstanceUpdate {
                name: Some(d("A2")),
                ..InstanceUpdate::default()
            },
        }
        .into(),
        OrganizationChange::Create {
            instance_id: i(),
            id: o(),
            name: d("O"),
        }
        .into(),
        OrganizationChange::Update {
            instance_id: i(),
            id: o(),
            update: OrganizationUpdate {
                name: Some(d("O2")),
                state: None,
            },
        }
        .into(),
        InstanceDomainChange::Insert {
            instance_id: i(),
            domain: d("a.example"),
            kind: InstanceDomainKind::Custom {
                is_primary: false,
                is_generated: false,
            },
        }
        .into(),
        InstanceDomainChange::SetPrimary {
            instance_id: i(),
            domain: d("a.example"),
        }
        .into(),
        DomainChange::AddInstanceDomain {
            instance_id: i(),
            domain: d("a.example"),
        }
        .into(),
        DomainChange::SetInstanceDomainPrimary {
            instance_id: i(),
            domain: d("a.example"),
        }
        .into(),
        OrgDomainChange::Insert {
            instance_id: i(),
            org_id: o(),
            domain: d("o.example"),
        }
        .into(),
        OrgDomainChange::SetValidation {
            instance_id: i(),
            org_id: o(),
            domain: d("o.example"),
            validation_type: ValidationType::Dns,
        }
        .into(),
        OrgDomainChange::SetVerified {
            instance_id: i(),
            org_id: o(),
            domain: d("o.example"),
        }
        .into(),
        OrgDomainChange::SetPrimary {
            instance_id: i(),
            org_id: o(),
            domain: d("o.example"),
        }
        .into(),
        DomainChange::AddOrganizationDomain {
            instance_id: i(),
            org_id: o(),
            domain: d("o.example"),
            validation_type: None,
        }
        .into(),
        DomainChange::SetOrganizationDomainValidationType {
            instance_id: i(),
            org_id: o(),
            domain: d("o.example"),
            validation_type: ValidationType::Http,
        }
        .into(),
        DomainChange::SetOrganizationDomainVerified {
            instance_id: i(),
            org_id: o(),
            domain: d("o.example"),
        }
        .into(),
        DomainChange::SetOrganizationDomainPrimary {
            instance_id: i(),
            org_id: o(),
            domain: d("o.example"),
        }
        .into(),
        OrgDomainChange::Delete {
            instance_id: i(),
            org_id: o(),
            domain: d("o.example"),
        }
        .into(),
        DomainChange::RemoveOrganizationDomain {
            instance_id: i(),
            org_id: o(),
            domain: d("o.example"),
        }
        .into(),
        OrgDomainChange::DeleteAllOfOrg {
            instance_id: i(),
            org_id: o(),
        }
        .into(),
        DomainChange::RemoveDomainsOfOrganization {
            instance_id: i(),
            org_id: o(),
        }
        .into(),
        OrganizationChange::Remove {
            instance_id: i(),
            id: o(),
        }
        .into(),
        InstanceDomainChange::Delete {
            instance_id: i(),
            domain: d("a.example"),
            domain_type: InstanceDomainType::Custom,
        }
        .into(),
        DomainChange::RemoveInstanceDomain {
            instance_id: i(),
            domain: d("a.example"),
        }
        .into(),
        InstanceChange::Remove { id: i() }.into(),
        OrganizationChange::RemoveAllOfInstance { instance_id: i() }.into(),
        InstanceDomainChange::DeleteAllOfInstance { instance_id: i() }.into(),
        OrgDomainChange::DeleteAllOfInstance { instance_id: i() }.into(),
        DomainChange::RemoveDomainsOfInstance { instance_id: i() }.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_of_each_has_every_kind_once() {
        let mut kinds: Vec<usize> = one_of_each().iter().map(kind).collect();
        kinds.sort_unstable();
        assert_eq!(kinds, (0..KINDS).collect::<Vec<_>>());
    }

    #[test]
    fn every_table_has_changes() {
        let tables: std::collections::BTreeSet<_> =
            one_of_each().iter().map(StateChange::table).collect();
        assert_eq!(
            tables.into_iter().collect::<Vec<_>>(),
            tenancy_core::state::Table::ALL.to_vec()
        );
    }

    #[test]
    fn one_of_each_applies_cleanly_in_memory() {
        let mut state = tenancy_core::state::InMemoryState::new();
        for change in one_of_each() {
            let at = time::OffsetDateTime::UNIX_EPOCH;
            assert!(state.apply(&change, at).is_ok(), "{change:?}");
        }
    }
}
