//! `zitadel.instance_domains`.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, PgConnection};
use tenancy_core::Result;
use tenancy_core::id::InstanceId;
use tenancy_core::model::{InstanceDomain, InstanceDomainKind};
use tenancy_core::ports::InstanceDomainRepository;
use tenancy_core::state::InstanceDomainChange;
use time::OffsetDateTime;

use crate::apply::apply_change;
use crate::error::MapDb;
use crate::keys::{BatchKeys, columns, list};
use crate::rows::{InstanceDomainRow, Write, convert, distinct_by};
use crate::session::PgSession;

#[async_trait]
impl InstanceDomainRepository for PgSession {
    async fn apply_instance_domain_change(
        &mut self,
        change: InstanceDomainChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply_change(self.conn()?, &change.into(), at).await
    }

    async fn list_instance_domains(
        &mut self,
        instance_id: &InstanceId,
    ) -> Result<Vec<InstanceDomain>> {
        let rows: Vec<InstanceDomainRow> = sqlx::query_as(
            "SELECT instance_id, domain, type::text AS type, is_primary, is_generated, created_at, updated_at
             FROM instance_domains WHERE instance_id = $1
             ORDER BY domain COLLATE \"C\", type::text COLLATE \"C\"",
        )
        .bind(instance_id.as_str())
        .fetch_all(self.conn()?)
        .await
        .db()?;
        convert(rows)
    }
}

// Set-based writes (crate::batch).

const COLUMNS: &str =
    "instance_id, domain, type::text AS type, is_primary, is_generated, created_at, updated_at";

/// The instance's domains a batch names (custom or trusted, as each change names them),
/// and its primary where a change moves it or competes for it, locked; and the custom
/// rows of other instances with a custom domain a change inserts (unique across
/// instances; read, not locked).
pub(crate) async fn load(conn: &mut PgConnection, keys: &BatchKeys) -> Result<Vec<InstanceDomain>> {
    if keys.all_instance_domains.is_empty()
        && keys.custom_instance_domains.is_empty()
        && keys.trusted_instance_domains.is_empty()
    {
        return Ok(Vec::new());
    }
    // Each arm an index probe per key that locks what it finds (a row found by two arms
    // comes twice, kept once below: finding the keys first and locking them by key probed
    // each row twice); the custom rows of any instance with a custom domain inserted are
    // added unlocked (those of the batch's instances not named by them included: a batch
    // of several instances may move a domain between them). The locked rows are left out
    // of those by NOT IN, a hashed subplan while they fit in `work_mem` (a batch's rows
    // do, by far); a NOT EXISTS became a nested loop over the CTE in the generic plan (18
    // of 31 ms of a load).
    let sql = format!(
        "WITH locked AS (
             SELECT r.* FROM unnest($1::text[], $2::text[]) AS k(i, d),
             LATERAL (SELECT {COLUMNS} FROM instance_domains t
                  WHERE t.type = 'custom' AND lower(t.domain COLLATE \"C\") = k.d
                  AND t.instance_id = k.i FOR UPDATE) r
             UNION ALL
             SELECT r.* FROM unnest($6::text[], $7::text[]) AS k(i, d),
             LATERAL (SELECT {COLUMNS} FROM instance_domains t
                  WHERE t.type = 'trusted' AND t.instance_id = k.i
                  AND lower(t.domain COLLATE \"C\") = k.d FOR UPDATE) r
             UNION ALL
             SELECT r.* FROM unnest($3::text[]) AS p(i),
             LATERAL (SELECT {COLUMNS} FROM instance_domains t
                  WHERE t.is_primary AND t.instance_id = p.i FOR UPDATE) r
             UNION ALL
             SELECT r.* FROM unnest($4::text[]) AS x(i),
             LATERAL (SELECT {COLUMNS} FROM instance_domains t WHERE t.instance_id = x.i FOR UPDATE) r)
         SELECT * FROM locked
         UNION ALL
         SELECT r.* FROM unnest($5::text[]) AS n(d),
         LATERAL (SELECT {COLUMNS} FROM instance_domains t
              WHERE t.type = 'custom' AND lower(t.domain COLLATE \"C\") = n.d OFFSET 0) r
         WHERE (r.instance_id, r.domain) NOT IN (SELECT l.instance_id, l.domain FROM locked l WHERE l.type = 'custom')"
    );
    let (custom_instances, custom_domains) = columns(&keys.custom_instance_domains);
    let (trusted_instances, trusted_domains) = columns(&keys.trusted_instance_domains);
    let rows: Vec<InstanceDomainRow> = sqlx::query_as(AssertSqlSafe(sql))
        .bind(custom_instances)
        .bind(custom_domains)
        .bind(list(&keys.instance_domain_primaries))
        .bind(list(&keys.all_instance_domains))
        .bind(list(&keys.custom_domains_added))
        .bind(trusted_instances)
        .bind(trusted_domains)
        .fetch_all(conn)
        .await
        .db()?;
    Ok(distinct_by(convert(rows)?, |row: &InstanceDomain| {
        (
            row.instance_id.as_str().to_owned(),
            row.kind.domain_type(),
            row.domain.clone(),
        )
    }))
}

fn flags(row: &InstanceDomain) -> (Option<bool>, Option<bool>) {
    match row.kind {
        InstanceDomainKind::Custom {
            is_primary,
            is_generated,
        } => (Some(is_primary), Some(is_generated)),
        InstanceDomainKind::Trusted => (None, None),
    }
}

/// Writes whole rows, in order.
pub(crate) async fn write(
    conn: &mut PgConnection,
    rows: &[InstanceDomain],
    how: Write,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO instance_domains (instance_id, domain, type, is_primary, is_generated, created_at, updated_at)
         SELECT a, b, c::domain_type, d, e, f, g
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::bool[], $6::timestamptz[], $7::timestamptz[])
             AS t(a, b, c, d, e, f, g){}",
        how.conflict(
            "instance_id, type, domain",
            &["is_primary", "is_generated", "created_at", "updated_at"]
        )
    );
    sqlx::query(AssertSqlSafe(sql))
        .bind(
            rows.iter()
                .map(|r| r.instance_id.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.domain.clone()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.kind.domain_type().as_str().to_owned())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| flags(r).0).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| flags(r).1).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .execute(conn)
        .await
        .db()
        .map(drop)
}

/// Deletes rows by their stored key.
pub(crate) async fn delete(conn: &mut PgConnection, rows: &[InstanceDomain]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "DELETE FROM instance_domains
         WHERE (instance_id, type, domain) IN (
             SELECT a, b::domain_type, c FROM UNNEST($1::text[], $2::text[], $3::text[]) AS t(a, b, c))",
    )
    .bind(rows.iter().map(|r| r.instance_id.to_string()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.kind.domain_type().as_str().to_owned()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.domain.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await
    .db()
    .map(drop)
}
