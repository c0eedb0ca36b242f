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

/// One change to one table. Each variant is one write method of a repository port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateChange {
    /// Insert; a soft-deleted row with that id comes back as new.
    CreateInstance {
        id: InstanceId,
        name: String,
    },
    UpdateInstance {
        id: InstanceId,
        update: InstanceUpdate,
    },
    /// Soft-delete the instance row only (the reducer lists the cascade explicitly).
    RemoveInstance {
        id: InstanceId,
    },

    /// Insert with state active; a soft-deleted row with that id comes back as new.
    CreateOrganization {
        instance_id: InstanceId,
        id: OrgId,
        name: String,
    },
    UpdateOrganization {
        instance_id: InstanceId,
        id: OrgId,
        update: OrganizationUpdate,
    },
    RemoveOrganization {
        instance_id: InstanceId,
        id: OrgId,
    },
    RemoveOrganizationsOfInstance {
        instance_id: InstanceId,
    },

    /// `zitadel.instance_domains`.
    InsertInstanceDomain {
        instance_id: InstanceId,
        domain: String,
        kind: InstanceDomainKind,
    },
    SetPrimaryInstanceDomain {
        instance_id: InstanceId,
        domain: String,
    },
    DeleteInstanceDomain {
        instance_id: InstanceId,
        domain: String,
        domain_type: InstanceDomainType,
    },
    DeleteInstanceDomainsOfInstance {
        instance_id: InstanceId,
    },

    /// `zitadel.org_domains`.
    InsertOrgDomain {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
    },
    SetOrgDomainValidation {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
        validation_type: ValidationType,
    },
    SetOrgDomainVerified {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
    },
    SetPrimaryOrgDomain {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
    },
    DeleteOrgDomain {
        instance_id: InstanceId,
        org_id: OrgId,
        domain: String,
    },
    DeleteOrgDomainsOfOrg {
        instance_id: InstanceId,
        org_id: OrgId,
    },
    DeleteOrgDomainsOfInstance {
        instance_id: InstanceId,
    },

    /// The unified `zitadel.domains` (soft delete).
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
    let update = |update: InstanceUpdate| vec![C::UpdateInstance { id: inst(), update }];
    Ok(match event {
        E::InstanceAdded { name } => vec![C::CreateInstance {
            id: inst(),
            name: name.clone(),
        }],
        E::InstanceChanged { name } => update(InstanceUpdate {
            name: Some(name.clone()),
            ..InstanceUpdate::default()
        }),
        E::InstanceRemoved => vec![
            C::RemoveInstance { id: inst() },
            C::RemoveOrganizationsOfInstance {
                instance_id: inst(),
            },
            C::DeleteInstanceDomainsOfInstance {
                instance_id: inst(),
            },
            C::DeleteOrgDomainsOfInstance {
                instance_id: inst(),
            },
            C::RemoveDomainsOfInstance {
                instance_id: inst(),
            },
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
            C::InsertInstanceDomain {
                instance_id: inst(),
                domain: domain.clone(),
                kind: InstanceDomainKind::Custom {
                    is_primary: false,
                    is_generated: *generated,
                },
            },
            C::AddInstanceDomain {
                instance_id: inst(),
                domain: domain.clone(),
            },
        ],
        E::InstanceDomainPrimarySet { domain } => vec![
            C::SetPrimaryInstanceDomain {
                instance_id: inst(),
                domain: domain.clone(),
            },
            C::SetInstanceDomainPrimary {
                instance_id: inst(),
                domain: domain.clone(),
            },
        ],
        E::InstanceDomainRemoved { domain } => vec![
            C::DeleteInstanceDomain {
                instance_id: inst(),
                domain: domain.clone(),
                domain_type: InstanceDomainType::Custom,
            },
            C::RemoveInstanceDomain {
                instance_id: inst(),
                domain: domain.clone(),
            },
        ],
        E::InstanceTrustedDomainAdded { domain } => vec![C::InsertInstanceDomain {
            instance_id: inst(),
            domain: domain.clone(),
            kind: InstanceDomainKind::Trusted,
        }],
        E::InstanceTrustedDomainRemoved { domain } => vec![C::DeleteInstanceDomain {
            instance_id: inst(),
            domain: domain.clone(),
            domain_type: InstanceDomainType::Trusted,
        }],
        E::OrgAdded { name } => vec![C::CreateOrganization {
            instance_id: inst(),
            id: org()?,
            name: name.clone(),
        }],
        E::OrgChanged { name: None } => vec![],
        E::OrgChanged { name: Some(name) } => vec![C::UpdateOrganization {
            instance_id: inst(),
            id: org()?,
            update: OrganizationUpdate {
                name: Some(name.clone()),
                state: None,
            },
        }],
        E::OrgDeactivated | E::OrgReactivated => vec![C::UpdateOrganization {
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
        }],
        E::OrgRemoved => vec![
            C::RemoveOrganization {
                instance_id: inst(),
                id: org()?,
            },
            C::DeleteOrgDomainsOfOrg {
                instance_id: inst(),
                org_id: org()?,
            },
            C::RemoveDomainsOfOrganization {
                instance_id: inst(),
                org_id: org()?,
            },
        ],
        E::OrgDomainAdded { domain } => vec![
            C::InsertOrgDomain {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            },
            C::AddOrganizationDomain {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
                validation_type: None,
            },
        ],
        E::OrgDomainVerificationAdded {
            domain,
            validation_type,
            ..
        } => vec![
            C::SetOrgDomainValidation {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
                validation_type: *validation_type,
            },
            C::SetOrganizationDomainValidationType {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
                validation_type: *validation_type,
            },
        ],
        E::OrgDomainVerificationFailed { .. } => vec![],
        E::OrgDomainVerified { domain } => vec![
            C::SetOrgDomainVerified {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            },
            C::SetOrganizationDomainVerified {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            },
        ],
        E::OrgDomainPrimarySet { domain } => vec![
            C::SetPrimaryOrgDomain {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            },
            C::SetOrganizationDomainPrimary {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            },
        ],
        E::OrgDomainRemoved { domain } => vec![
            C::DeleteOrgDomain {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            },
            C::RemoveOrganizationDomain {
                instance_id: inst(),
                org_id: org()?,
                domain: domain.clone(),
            },
        ],
    })
}
