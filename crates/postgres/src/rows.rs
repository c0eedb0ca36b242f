//! Row types read with `FromRow` and their conversion to the core model. Enums are read
//! as text (`state::text`) so no custom type mapping is needed.

use sqlx::FromRow;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::{
    Domain, Instance, InstanceDomain, InstanceDomainKind, Organization, OrganizationDomain,
    OrganizationState, ValidationType,
};
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

pub(crate) const INSTANCE_COLUMNS: &str = "id, name, default_org_id, iam_project_id, console_client_id, console_app_id, default_language, created_at, updated_at, deleted_at";
pub(crate) const ORGANIZATION_COLUMNS: &str =
    "instance_id, id, name, state::text AS state, created_at, updated_at, deleted_at";
pub(crate) const DOMAIN_COLUMNS: &str = "id, instance_id, org_id, domain, is_verified, is_primary, validation_type, created_at, updated_at, deleted_at";

#[derive(Debug, FromRow)]
pub(crate) struct InstanceRow {
    id: String,
    name: String,
    default_org_id: Option<String>,
    iam_project_id: Option<String>,
    console_client_id: Option<String>,
    console_app_id: Option<String>,
    default_language: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    deleted_at: Option<OffsetDateTime>,
}

impl TryFrom<InstanceRow> for Instance {
    type Error = Error;
    fn try_from(r: InstanceRow) -> Result<Self> {
        Ok(Instance {
            id: InstanceId::new(r.id)?,
            name: r.name,
            default_org_id: r.default_org_id,
            iam_project_id: r.iam_project_id,
            console_client_id: r.console_client_id,
            console_app_id: r.console_app_id,
            default_language: r.default_language,
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted_at: r.deleted_at,
        })
    }
}

#[derive(Debug, FromRow)]
pub(crate) struct OrganizationRow {
    instance_id: String,
    id: String,
    name: String,
    state: String,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    deleted_at: Option<OffsetDateTime>,
}

impl TryFrom<OrganizationRow> for Organization {
    type Error = Error;
    fn try_from(r: OrganizationRow) -> Result<Self> {
        Ok(Organization {
            instance_id: InstanceId::new(r.instance_id)?,
            id: OrgId::new(r.id)?,
            name: r.name,
            state: OrganizationState::parse(&r.state)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted_at: r.deleted_at,
        })
    }
}

#[derive(Debug, FromRow)]
pub(crate) struct InstanceDomainRow {
    instance_id: String,
    domain: String,
    #[sqlx(rename = "type")]
    domain_type: String,
    is_primary: Option<bool>,
    is_generated: Option<bool>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<InstanceDomainRow> for InstanceDomain {
    type Error = Error;
    fn try_from(r: InstanceDomainRow) -> Result<Self> {
        let kind = match r.domain_type.as_str() {
            "custom" => InstanceDomainKind::Custom {
                is_primary: r.is_primary.unwrap_or(false),
                is_generated: r.is_generated.unwrap_or(false),
            },
            "trusted" => InstanceDomainKind::Trusted,
            other => return Err(Error::internal(format!("unknown domain type {other:?}"))),
        };
        Ok(InstanceDomain {
            instance_id: InstanceId::new(r.instance_id)?,
            domain: r.domain,
            kind,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, FromRow)]
pub(crate) struct OrgDomainRow {
    instance_id: String,
    org_id: String,
    domain: String,
    is_verified: bool,
    is_primary: bool,
    validation_type: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl TryFrom<OrgDomainRow> for OrganizationDomain {
    type Error = Error;
    fn try_from(r: OrgDomainRow) -> Result<Self> {
        Ok(OrganizationDomain {
            instance_id: InstanceId::new(r.instance_id)?,
            org_id: OrgId::new(r.org_id)?,
            domain: r.domain,
            is_verified: r.is_verified,
            is_primary: r.is_primary,
            validation_type: r
                .validation_type
                .as_deref()
                .map(ValidationType::parse)
                .transpose()?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, FromRow)]
pub(crate) struct DomainRow {
    id: i64,
    instance_id: String,
    org_id: Option<String>,
    domain: String,
    is_verified: bool,
    is_primary: bool,
    validation_type: Option<i16>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    deleted_at: Option<OffsetDateTime>,
}

impl TryFrom<DomainRow> for Domain {
    type Error = Error;
    fn try_from(r: DomainRow) -> Result<Self> {
        Ok(Domain {
            id: r.id,
            instance_id: InstanceId::new(r.instance_id)?,
            org_id: r.org_id.map(OrgId::new).transpose()?,
            domain: r.domain,
            is_verified: r.is_verified,
            is_primary: r.is_primary,
            // 0 is the legacy "unspecified".
            validation_type: match r.validation_type {
                None | Some(0) => None,
                Some(v) => Some(ValidationType::from_ordinal(i64::from(v))?),
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
            deleted_at: r.deleted_at,
        })
    }
}

/// Converts every row.
pub(crate) fn convert<R, T: TryFrom<R, Error = Error>>(rows: Vec<R>) -> Result<Vec<T>> {
    rows.into_iter().map(T::try_from).collect()
}

/// `rows` with each key once (the first row of it): a load whose arms lock what they find
/// returns a row found by two arms twice.
pub(crate) fn distinct_by<T, K: Eq + std::hash::Hash>(
    rows: Vec<T>,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    rows.into_iter()
        .filter(|row| seen.insert(key(row)))
        .collect()
}

/// How rows are written: new rows, or rows that exist under the same key (an upsert, so
/// that rows are written in the order given: the schema checks unique indexes row by row).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Insert,
    Update,
}

impl Write {
    /// The statement's tail: nothing for inserts, the upsert for updates.
    pub(crate) fn conflict(self, key: &str, columns: &[&str]) -> String {
        match self {
            Write::Insert => String::new(),
            Write::Update => {
                let set: Vec<String> = columns
                    .iter()
                    .map(|c| format!("{c} = EXCLUDED.{c}"))
                    .collect();
                format!(" ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::distinct_by;

    #[test]
    fn distinct_by_keeps_the_first_row_of_each_key_in_order() {
        let rows = vec![(1, "a"), (2, "b"), (1, "c"), (3, "d"), (2, "e")];
        assert_eq!(
            distinct_by(rows, |row| row.0),
            vec![(1, "a"), (2, "b"), (3, "d")]
        );
    }
}
