//! State changes: what one legacy event does to the five `zitadel.*` tables (the effects
//! tables of events.md), as data. The projection, the v3 commands and the in-memory model
//! all apply the same changes, so a fold of the stream equals the tables.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::event::LegacyEvent;
use crate::id::{InstanceId, OrgId};
use crate::model::{InstanceDomainKind, InstanceDomainType, OrganizationState, ValidationType};

/// Columns of `zitadel.instances` an update may set (`None` = leave as is).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceUpdate {
    pub name: Option<String>,
    pub default_org_id: Option<String>,
    pub iam_project_id: Option<String>,
    pub console_client_id: Option<String>,
    pub console_app_id: Option<String>,
    pub default_language: Option<String>,
}

/// Columns of `zitadel.organizations` an update may set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationUpdate {
    pub name: Option<String>,
    pub state: Option<OrganizationState>,
}

/// A change of `zitadel.instances`. Serialized under the names the table's function
/// `tenancy.apply_instances` dispatches on (migration 0008): a rename here
/// is a rename there (a PostgreSQL test compares both lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceChange {
    /// Insert; a soft-deleted row with that id comes back as new.
    #[serde(rename = "CreateInstance")]
    Create { id: InstanceId, name: String },
    #[serde(rename = "UpdateInstance")]
    Update {
        id: InstanceId,
        update: InstanceUpdate,
    },
    /// Soft-delete the instance row only (the reducer lists the cascade explicitly).
    #[serde(rename = "RemoveInstance")]
    Remove { id: InstanceId },
}

/// A change of `zitadel.organizations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrganizationChange {
    /// Insert with state active; a soft-deleted row with that id comes back as new.
    #[serde(rename = "CreateOrganization")]
    Create {
        instance_id: InstanceId,
        id: OrgId,
        name: String,
    },
    #[serde(rename = "UpdateOrganization")]
    Update {
        instance_id: InstanceId,
        id: OrgId,
        update: OrganizationUpdate,
    },
    #[serde(rename = "RemoveOrganization")]
    Remove { instance_id: InstanceId, id: OrgId },
    #[serde(rename = "RemoveOrganizationsOfInstance")]
    RemoveAllOfInstance { instance_id: InstanceId },
}

/// A change of `zitadel.instance_domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InstanceDomainChange {
    #[serde(rename = "InsertInstanceDomain")]
    Insert {
        instance_id: InstanceId,
        domain: String,
        kind: InstanceDomainKind,
    },
    #[serde(rename = "SetPrimaryInstanceDomain")]
    SetPrimary {
        instance_id: InstanceId,
        domain: String,
    },
    #[serde(rename = "DeleteInstanceDomain")]
    Delete {
        instance_id: InstanceId,
        domain: String,
        domain_type: InstanceDomainType,
    },
    #[serde(rename = "DeleteInstanceDomainsOfInstance")]
    DeleteAllOfInstance { instance_id: InstanceId },
}

/// A change of `zitadel.org_domains`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrgDomainChange {
    #[serde(rename = "InsertOrgDomain")]
    Insert {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
    },
    #[serde(rename = "SetOrgDomainValidation")]
    SetValidation {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
        validation_type: ValidationType,
    },
    #[serde(rename = "SetOrgDomainVerified")]
    SetVerified {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
    },
    #[serde(rename = "SetPrimaryOrgDomain")]
    SetPrimary {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
    },
    #[serde(rename = "DeleteOrgDomain")]
    Delete {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
    },
    #[serde(rename = "DeleteOrgDomainsOfOrg")]
    DeleteAllOfOrg {
        instance_id: InstanceId,
        org_id: OrgId,
    },
    #[serde(rename = "DeleteOrgDomainsOfInstance")]
    DeleteAllOfInstance { instance_id: InstanceId },
}

/// A change of the unified `zitadel.domains` (soft delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainChange {
    AddInstanceDomain {
        instance_id: InstanceId,
        domain: String,
    },
    SetInstanceDomainPrimary {
        instance_id: InstanceId,
        domain: String,
    },
    RemoveInstanceDomain {
        instance_id: InstanceId,
        domain: String,
    },
    AddOrganizationDomain {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
        validation_type: Option<ValidationType>,
    },
    SetOrganizationDomainValidationType {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
        validation_type: ValidationType,
    },
    SetOrganizationDomainVerified {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
    },
    SetOrganizationDomainPrimary {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
    },
    RemoveOrganizationDomain {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
    },
    RemoveDomainsOfOrganization {
        instance_id: InstanceId,
        org_id: OrgId,
    },
    RemoveDomainsOfInstance {
        instance_id: InstanceId,
    },
}

/// One change to one table: the table is the variant, what happens to it the table's
/// own change type (which its repository port takes). Serialized as the inner change
/// alone (`{"CreateInstance": {...}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StateChange {
    Instance(InstanceChange),
    Organization(OrganizationChange),
    InstanceDomain(InstanceDomainChange),
    OrgDomain(OrgDomainChange),
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
