//! State changes: what one legacy event does to the five `zitadel.*` tables (the effects
//! tables of events.md), as data. The projection, the v3 commands and the in-memory model
//! all apply the same changes, so a fold of the stream equals the tables.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::event::LegacyEvent;
use crate::id::{InstanceId, OrgId};
use crate::model::{InstanceDomainKind, InstanceDomainType, OrganizationState};
pub use crate::table::domain::DomainChange;
pub use crate::table::instance::{InstanceChange, InstanceUpdate};
pub use crate::table::instance_domain::InstanceDomainChange;
pub use crate::table::org_domain::OrgDomainChange;
pub use crate::table::organization::{OrganizationChange, OrganizationUpdate};

/// One change to one table: the table is the variant, what happens to it the table's
/// own change type (which its repository port takes). Serialized as the inner change
/// alone (`{"CreateInstance": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StateChange {
    /// A change of `zitadel.instances`.
    Instance(InstanceChange),
    /// A change of `zitadel.organizations`.
    Organization(OrganizationChange),
    /// A change of `zitadel.instance_domains`.
    InstanceDomain(InstanceDomainChange),
    /// A change of `zitadel.org_domains`.
    OrgDomain(OrgDomainChange),
    /// A change of `zitadel.domains`.
    Domain(DomainChange),
}

macro_rules! table_change {
    ($($variant:ident($change:ident)),* $(,)?) => {
        $(
            impl From<$change> for StateChange {
                fn from(change: $change) -> Self {
                    Self::$variant(change)
                }
            }
        )*
    };
}

table_change!(
    Instance(InstanceChange),
    Organization(OrganizationChange),
    InstanceDomain(InstanceDomainChange),
    OrgDomain(OrgDomainChange),
    Domain(DomainChange),
);

/// Reduces one legacy event of `instance_id`, aggregate `aggregate_id`, to its changes, in
/// the order they must be applied.
pub fn reduce(
    instance_id: &InstanceId,
    aggregate_id: &str,
    event: &LegacyEvent,
) -> Result<Vec<StateChange>> {
    use LegacyEvent as E;
    use StateChange as C;
    let inst = || instance_id.clone();
    let org = || OrgId::new(aggregate_id);
    let update =
        |update: InstanceUpdate| vec![C::Instance(InstanceChange::Update { id: inst(), update })];
    Ok(match event {
        E::InstanceAdded { name } => vec![C::Instance(InstanceChange::Create {
            id: inst(),
            name: name.clone(),
        })],
        E::InstanceChanged { name } => update(InstanceUpdate {
            name: Some(name.clone()),
            ..InstanceUpdate::default()
        }),
        E::InstanceRemoved => vec![
            C::Instance(InstanceChange::Remove { id: inst() }),
            C::Organization(OrganizationChange::RemoveAllOfInstance {
                instance_id: inst(),
            }),
            C::InstanceDomain(InstanceDomainChange::DeleteAllOfInstance {
                instance_id: inst(),
            }),
            C::OrgDomain(OrgDomainChange::DeleteAllOfInstance {
                instance_id: inst(),
            }),
            C::Domain(DomainChange::RemoveDomainsOfInstance {
                instance_id: inst(),
            }),
        ],
        E::InstanceDefaultOrgSet { org_id } => update(InstanceUpdate {
            default_org_id: Some(org_id.clone()),
            ..InstanceUpdate::default()
        }),
        E::InstanceIamProjectSet { iam_project_id } => update(InstanceUpdate {
            iam_project_id: Some(iam_project_id.clone()),
            ..InstanceUpdate::default()
        }),
        E::InstanceIamConsoleSet { client_id, app_id } => update(InstanceUpdate {
            console_client_id: Some(client_id.clone()),
            console_app_id: Some(app_id.clone()),
            ..InstanceUpdate::default()
        }),
        E::InstanceDefaultLanguageSet { language } => update(InstanceUpdate {
            default_language: Some(language.clone()),
            ..InstanceUpdate::default()
        }),
        E::InstanceDomainAdded { domain, generated } => vec![
            C::InstanceDomain(InstanceDomainChange::Insert {
                instance_id: inst(),
                domain: domain.clone(),
                kind: InstanceDomainKind::Custom {
                    is_primary: false,
                    is_generated: *generated,
                },
            }),
            C::Domain(DomainChange::AddInstanceDomain {
                instance_id: inst(),
                domain: domain.clone(),
            }),
        ],
        E::InstanceDomainPrimarySet { domain } => vec![
            C::InstanceDomain(InstanceDomainChange::SetPrimary {
                instance_id: inst(),
                domain: domain.clone(),
            }),
            C::Domain(DomainChange::SetInstanceDomainPrimary {
                instance_id: inst(),
                domain: domain.clone(),
            }),
        ],
        E::InstanceDomainRemoved { domain } => vec![
            C::InstanceDomain(InstanceDomainChange::Delete {
                instance_id: inst(),
                domain: domain.clone(),
                domain_type: InstanceDomainType::Custom,
            }),
            C::Domain(DomainChange::RemoveInstanceDomain {
                instance_id: inst(),
                domain: domain.clone(),
            }),
        ],
        E::InstanceTrustedDomainAdded { domain } => {
            vec![C::InstanceDomain(InstanceDomainChange::Insert {
                instance_id: inst(),
                domain: domain.clone(),
                kind: InstanceDomainKind::Trusted,
            })]
        }
        E::InstanceTrustedDomainRemoved { domain } => {
            vec![C::InstanceDomain(InstanceDomainChange::Delete {
                instance_id: inst(),
                domain: domain.clone(),
                domain_type: InstanceDomainType::Trusted,
            })]
        }
        E::OrgAdded { name } => vec![C::Organization(OrganizationChange::Create {
            instance_id: inst(),
            id: org()?,
            name: name.clone(),
        })],
        E::OrgChanged { name: None } => vec![],
        E::OrgChanged { name: Some(name) } => vec![C::Organization(OrganizationChange::Update {
            instance_id: inst(),
            id: org()?,
            update: OrganizationUpdate {
                name: Some(name.clone()),
                state: None,
            },
        })],
        E::OrgDeactivated | E::OrgReactivated => {
            vec![C::Organization(OrganizationChange::Update {
                instance_id: inst(),
                id: org()?,
                update: OrganizationUpdate {
                    name: None,
                    state: Some(if matches!(event, E::OrgDeactivated) {
                        OrganizationState::Inactive
                    } else {
                        OrganizationState::Active
                    }),
                },
            })]
        }
        E::OrgRemoved => vec![
            C::Organization(OrganizationChange::Remove {
                instance_id: inst(),
                id: org()?,
            }),
            C::OrgDomain(OrgDomainChange::DeleteAllOfOrg {
                instance_id: inst(),
                org_id: org()?,
            }),
            C::Domain(DomainChange::RemoveDomainsOfOrganization {
                instance_id: inst(),
                org_id: org()?,
            }),
        ],
        E::OrgDomainAdded { domain } => vec![
            C::OrgDomain(OrgDomainChange::Insert {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            }),
            C::Domain(DomainChange::AddOrganizationDomain {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
                validation_type: None,
            }),
        ],
        E::OrgDomainVerificationAdded {
            domain,
            validation_type,
            ..
        } => vec![
            C::OrgDomain(OrgDomainChange::SetValidation {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
                validation_type: *validation_type,
            }),
            C::Domain(DomainChange::SetOrganizationDomainValidationType {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
                validation_type: *validation_type,
            }),
        ],
        E::OrgDomainVerificationFailed { .. } => vec![],
        E::OrgDomainVerified { domain } => vec![
            C::OrgDomain(OrgDomainChange::SetVerified {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            }),
            C::Domain(DomainChange::SetOrganizationDomainVerified {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            }),
        ],
        E::OrgDomainPrimarySet { domain } => vec![
            C::OrgDomain(OrgDomainChange::SetPrimary {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            }),
            C::Domain(DomainChange::SetOrganizationDomainPrimary {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            }),
        ],
        E::OrgDomainRemoved { domain } => vec![
            C::OrgDomain(OrgDomainChange::Delete {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            }),
            C::Domain(DomainChange::RemoveOrganizationDomain {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            }),
        ],
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::event::EVENT_TYPES;
    use crate::event::spec_samples;
    use crate::state::Table;

    fn reduced(event_type: &str, payload: Value) -> Vec<StateChange> {
        let event = LegacyEvent::decode(event_type, Some(&payload)).expect("a valid payload");
        let aggregate = if event_type.starts_with("org.") {
            "o1"
        } else {
            "i1"
        };
        reduce(&InstanceId::new("i1").expect("an id"), aggregate, &event).expect("reduces")
    }

    /// The fields of a change as its wire form has them.
    fn fields(change: &StateChange) -> serde_json::Map<String, Value> {
        let Value::Object(outer) = serde_json::to_value(change).expect("encodes") else {
            panic!("{change:?} is not an object");
        };
        match outer.into_iter().next() {
            Some((_, Value::Object(fields))) => fields,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_event_type_reduces_within_its_instance_and_organization() {
        let mut covered = std::collections::BTreeSet::new();
        for (event_type, payload) in spec_samples() {
            covered.insert(event_type);
            for change in reduced(event_type, payload) {
                let f = fields(&change);
                let instance = match change.table() {
                    Table::Instances => &f["id"],
                    _ => &f["instance_id"],
                };
                assert_eq!(instance, "i1", "{event_type}: {change:?}");
                let org = match change.table() {
                    Table::Organizations => f.get("id"),
                    _ => f.get("org_id"),
                };
                if let Some(org) = org {
                    assert_eq!(org, "o1", "{event_type}: {change:?}");
                }
            }
        }
        assert_eq!(covered.len(), EVENT_TYPES.len(), "every catalogue type");
    }

    #[test]
    fn removals_cascade_to_every_table_of_the_owner_parents_first() {
        let tables = |event_type| -> Vec<Table> {
            reduced(event_type, json!({}))
                .iter()
                .map(StateChange::table)
                .collect()
        };
        assert_eq!(tables("instance.removed"), Table::ALL.to_vec());
        assert_eq!(
            tables("org.removed"),
            [Table::Organizations, Table::OrgDomains, Table::Domains]
        );
    }

    #[test]
    fn events_without_an_effect_reduce_to_nothing() {
        assert!(
            reduced(
                "org.domain.verification.failed",
                json!({"domain": "o.example"})
            )
            .is_empty()
        );
        assert!(reduced("org.changed", json!({})).is_empty());
    }

    #[test]
    fn an_organization_event_needs_an_organization_id() {
        let event = LegacyEvent::decode("org.added", Some(&json!({"name": "Org"}))).unwrap();
        let error = reduce(&InstanceId::new("i1").unwrap(), "", &event).unwrap_err();
        assert!(
            matches!(error, crate::Error::InvalidArgument { .. }),
            "{error}"
        );
    }
}
