//! `zitadel.org_domains`.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, PgConnection};
use tenancy_core::Result;
use tenancy_core::id::{InstanceId, OrgId};
use tenancy_core::model::OrganizationDomain;
use tenancy_core::ports::OrgDomainRepository;
use tenancy_core::state::OrgDomainChange;
use time::OffsetDateTime;

use crate::apply::apply_change;
use crate::error::MapDb;
use crate::keys::{BatchKeys, list};
use crate::rows::{OrgDomainRow, Write, convert, distinct_by};
use crate::session::PgSession;

#[async_trait]
impl OrgDomainRepository for PgSession {
    async fn apply_org_domain_change(
        &mut self,
        change: OrgDomainChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply_change(self.conn()?, &change.into(), at).await
    }

    async fn list_org_domains(
        &mut self,
        instance_id: &InstanceId,
        org_id: &OrgId,
    ) -> Result<Vec<OrganizationDomain>> {
        let rows: Vec<OrgDomainRow> = sqlx::query_as(
            "SELECT instance_id, org_id, domain, is_verified, is_primary, validation_type::text AS validation_type,
                    created_at, updated_at
             FROM org_domains WHERE instance_id = $1 AND org_id = $2 ORDER BY domain COLLATE \"C\"",
        )
        .bind(instance_id.as_str())
        .bind(org_id.as_str())
        .fetch_all(self.conn()?)
        .await
        .db()?;
        convert(rows)
    }
}

// Set-based writes (crate::batch).

const COLUMNS: &str = "instance_id, org_id, domain, is_verified, is_primary, validation_type::text AS validation_type, created_at, updated_at";

/// Every domain of the organizations a batch names (their primaries and those a change
/// empties among them), and the verified rows of the instance with a domain named (one
/// organization may verify a domain), locked.
pub(crate) async fn load(
    conn: &mut PgConnection,
    keys: &BatchKeys,
) -> Result<Vec<OrganizationDomain>> {
    if keys.all_org_domains.is_empty()
        && keys.org_domains.is_empty()
        && keys.orgs_all_domains.is_empty()
    {
        return Ok(Vec::new());
    }
    // Per instance: the rows of its named org domains, the primary of an org whose primary
    // a change moves, every row of an org a change empties, its verified rows of a domain
    // a change verifies, every row where the instance is removed; each arm an index probe
    // per key that locks what it finds (a row found by two arms comes twice, kept once
    // below).
    let sql = format!(
        "SELECT r.* FROM unnest($1::text[], $2::text[], $3::text[]) AS o(i, org, d),
         LATERAL (SELECT {COLUMNS} FROM org_domains t
              WHERE t.instance_id = o.i AND t.org_id = o.org AND lower(t.domain COLLATE \"C\") = o.d
              FOR UPDATE) r
         UNION ALL
         SELECT r.* FROM unnest($4::text[], $5::text[]) AS p(i, org),
         LATERAL (SELECT {COLUMNS} FROM org_domains t
              WHERE t.instance_id = p.i AND t.org_id = p.org AND t.is_primary FOR UPDATE) r
         UNION ALL
         SELECT r.* FROM unnest($6::text[], $7::text[]) AS o(i, org),
         LATERAL (SELECT {COLUMNS} FROM org_domains t
              WHERE t.instance_id = o.i AND t.org_id = o.org FOR UPDATE) r
         UNION ALL
         SELECT r.* FROM unnest($8::text[], $9::text[]) AS d(i, d),
         LATERAL (SELECT {COLUMNS} FROM org_domains t
              WHERE t.instance_id = d.i AND t.is_verified
              AND lower(t.domain COLLATE \"C\") = d.d FOR UPDATE) r
         UNION ALL
         SELECT r.* FROM unnest($10::text[]) AS x(i),
         LATERAL (SELECT {COLUMNS} FROM org_domains t WHERE t.instance_id = x.i FOR UPDATE) r"
    );
    let mut query = sqlx::query_as(AssertSqlSafe(sql));
    for column in keys.org_domain_columns() {
        query = query.bind(column);
    }
    let rows: Vec<OrgDomainRow> = query
        .bind(list(&keys.all_org_domains))
        .fetch_all(conn)
        .await
        .db()?;
    Ok(distinct_by(convert(rows)?, |row: &OrganizationDomain| {
        (
            row.instance_id.as_str().to_owned(),
            row.org_id.as_str().to_owned(),
            row.domain.clone(),
        )
    }))
}

/// Writes whole rows, in order.
pub(crate) async fn write(
    conn: &mut PgConnection,
    rows: &[OrganizationDomain],
    how: Write,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO org_domains (instance_id, org_id, domain, is_verified, is_primary, validation_type, created_at, updated_at)
         SELECT a, b, c, d, e, f::domain_validation_type, g, h
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::bool[], $6::text[], $7::timestamptz[], $8::timestamptz[])
             AS t(a, b, c, d, e, f, g, h){}",
        how.conflict(
            "instance_id, org_id, domain",
            &["is_verified", "is_primary", "validation_type", "created_at", "updated_at"]
        )
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(
            rows.iter()
                .map(|r| r.instance_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|r| r.org_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.domain.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.is_verified).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.is_primary).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.validation_type.map(|v| v.as_str().to_owned()))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .execute(conn)
        .await
        .db()
        .map(drop)
}

/// Deletes rows by their stored key.
pub(crate) async fn delete(conn: &mut PgConnection, rows: &[OrganizationDomain]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM org_domains
         WHERE (instance_id, org_id, domain) IN (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]))",
    )
    .bind(
        rows.iter()
            .map(|r| r.instance_id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.org_id.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.domain.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await
    .db()
    .map(drop)
}
