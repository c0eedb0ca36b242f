//! The unified `zitadel.domains` table (soft delete; live reads filter `deleted_at IS NULL`).

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, PgConnection, Postgres, QueryBuilder};
use tenancy_core::model::{Domain, ValidationType};
use tenancy_core::ports::DomainRepository;
use tenancy_core::query::{DomainCriteria, DomainOwner, DomainSort, Pagination};
use tenancy_core::state::DomainChange;
use tenancy_core::{Error, Result};
use time::OffsetDateTime;

use crate::apply::apply_change;
use crate::error::MapDb;
use crate::keys::{BatchKeys, columns, list};
use crate::rows::{DOMAIN_COLUMNS, DomainRow, Write, convert, distinct_by};
use crate::session::{PgSession, push_page, push_text};

#[async_trait]
impl DomainRepository for PgSession {
    async fn apply_domain_change(
        &mut self,
        change: DomainChange,
        at: OffsetDateTime,
    ) -> Result<u64> {
        apply_change(self.conn()?, &change.into(), at).await
    }

    async fn get_domain(&mut self, criteria: &DomainCriteria) -> Result<Domain> {
        // Two rows are enough to tell "one" from "more than one".
        let page = Pagination {
            limit: Some(2),
            ..Pagination::default()
        };
        let mut rows = self.list_domains(criteria, &page).await?;
        match rows.len() {
            0 => Err(Error::not_found("domain", "matching the criteria")),
            1 => Ok(rows.remove(0)),
            _ => Err(Error::MultipleFound { kind: "domain" }),
        }
    }

    async fn list_domains(
        &mut self,
        criteria: &DomainCriteria,
        page: &Pagination<DomainSort>,
    ) -> Result<Vec<Domain>> {
        let instance_id = criteria
            .instance_id
            .as_ref()
            .ok_or(Error::MissingTenant("listing domains"))?;
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {DOMAIN_COLUMNS} FROM domains WHERE instance_id = "
        ));
        qb.push_bind(instance_id.as_str().to_owned());
        if !criteria.include_deleted {
            qb.push(" AND deleted_at IS NULL");
        }
        if let Some(id) = criteria.id {
            qb.push(" AND id = ").push_bind(id);
        }
        if let Some(m) = &criteria.domain {
            push_text(&mut qb, "domain", m);
        }
        match &criteria.owner {
            None => {}
            Some(DomainOwner::InstanceOnly) => {
                qb.push(" AND org_id IS NULL");
            }
            Some(DomainOwner::Organization(org)) => {
                qb.push(" AND org_id = ").push_bind(org.as_str().to_owned());
            }
            Some(DomainOwner::Organizations(orgs)) => {
                let orgs: Vec<String> = orgs.iter().map(|o| o.as_str().to_owned()).collect();
                qb.push(" AND org_id = ANY(").push_bind(orgs).push(")");
            }
        }
        if let Some(v) = criteria.is_verified {
            qb.push(" AND is_verified = ").push_bind(v);
        }
        if let Some(v) = criteria.is_primary {
            qb.push(" AND is_primary = ").push_bind(v);
        }
        let column = match page.sort {
            DomainSort::CreatedAt => "created_at",
            DomainSort::UpdatedAt => "updated_at",
            DomainSort::Domain => "domain COLLATE \"C\"",
        };
        push_page(&mut qb, column, "id", page)?;
        let rows: Vec<DomainRow> = qb.build_query_as().fetch_all(self.conn()?).await.db()?;
        convert(rows)
    }
}

// Set-based writes (crate::batch).

/// The live unified rows a batch can touch, locked: the named domains of an org, the
/// primary of an org whose primary a change moves, every row of an org all of whose
/// domains a change removes, the named instance-level rows and the instance-level primary
/// a change moves, the instance's verified organization rows of a domain a change
/// verifies; and the instance-level rows of any instance with a domain a change adds at
/// instance level (unique across instances; read, not locked). Soft-deleted rows never
/// change again, so they are not read.
pub(crate) async fn load(conn: &mut PgConnection, keys: &BatchKeys) -> Result<Vec<Domain>> {
    if keys.org_domains.is_empty()
        && keys.orgs_all_domains.is_empty()
        && keys.instance_level_domains.is_empty()
        && keys.all_domains.is_empty()
    {
        return Ok(Vec::new());
    }
    // Per instance, each arm an index probe per key that locks what it finds. A row found
    // by two arms comes twice (kept once below): finding the ids first and locking them
    // by id probed each row twice. The instance-level rows of any instance with a domain
    // added at instance level are added unlocked.
    let sql = format!(
        "WITH locked AS (
             SELECT r.* FROM unnest($1::text[], $2::text[], $3::text[]) AS o(i, org, d),
             LATERAL (SELECT {DOMAIN_COLUMNS} FROM domains t WHERE t.deleted_at IS NULL AND t.instance_id = o.i
                  AND coalesce(t.org_id, '') = o.org AND lower(t.domain COLLATE \"C\") = o.d FOR UPDATE) r
             UNION ALL
             SELECT r.* FROM unnest($4::text[], $5::text[]) AS p(i, org),
             LATERAL (SELECT {DOMAIN_COLUMNS} FROM domains t WHERE t.deleted_at IS NULL AND t.org_id IS NOT NULL
                  AND t.is_primary AND t.instance_id = p.i AND t.org_id = p.org FOR UPDATE) r
             UNION ALL
             SELECT r.* FROM unnest($6::text[], $7::text[]) AS o(i, org),
             LATERAL (SELECT {DOMAIN_COLUMNS} FROM domains t WHERE t.deleted_at IS NULL AND t.org_id IS NOT NULL
                  AND t.instance_id = o.i AND t.org_id = o.org FOR UPDATE) r
             UNION ALL
             SELECT r.* FROM unnest($10::text[], $11::text[]) AS d(i, d),
             LATERAL (SELECT {DOMAIN_COLUMNS} FROM domains t WHERE t.deleted_at IS NULL AND t.instance_id = d.i
                  AND coalesce(t.org_id, '') = '' AND lower(t.domain COLLATE \"C\") = d.d FOR UPDATE) r
             UNION ALL
             SELECT r.* FROM unnest($12::text[]) AS p(i),
             LATERAL (SELECT {DOMAIN_COLUMNS} FROM domains t WHERE t.deleted_at IS NULL AND t.org_id IS NULL
                  AND t.is_primary AND t.instance_id = p.i FOR UPDATE) r
             UNION ALL
             SELECT r.* FROM unnest($8::text[], $9::text[]) AS d(i, d),
             LATERAL (SELECT {DOMAIN_COLUMNS} FROM domains t WHERE t.deleted_at IS NULL AND t.org_id IS NOT NULL
                  AND t.is_verified AND t.instance_id = d.i AND lower(t.domain COLLATE \"C\") = d.d
                  FOR UPDATE) r
             UNION ALL
             SELECT r.* FROM unnest($13::text[]) AS x(i),
             LATERAL (SELECT {DOMAIN_COLUMNS} FROM domains t WHERE t.deleted_at IS NULL AND t.instance_id = x.i
                  FOR UPDATE) r)
         SELECT * FROM locked
         UNION ALL
         SELECT r.* FROM unnest($14::text[]) AS w(d),
         LATERAL (SELECT {DOMAIN_COLUMNS} FROM domains t WHERE t.deleted_at IS NULL AND t.org_id IS NULL
              AND lower(t.domain COLLATE \"C\") = w.d OFFSET 0) r
         WHERE r.id NOT IN (SELECT l.id FROM locked l)"
    );
    let (level_instances, level_domains) = columns(&keys.instance_level_domains);
    let mut query = sqlx::query_as(AssertSqlSafe(sql));
    for column in keys.org_domain_columns() {
        query = query.bind(column);
    }
    let rows: Vec<DomainRow> = query
        .bind(level_instances)
        .bind(level_domains)
        .bind(list(&keys.instance_level_primaries))
        .bind(list(&keys.all_domains))
        .bind(list(&keys.instance_level_domains_added))
        .fetch_all(conn)
        .await
        .db()?;
    Ok(distinct_by(convert(rows)?, |row: &Domain| row.id))
}

/// Writes whole rows, in order: updates by id; inserts without one (the identity column
/// numbers them in the order given).
pub(crate) async fn write(conn: &mut PgConnection, rows: &[Domain], how: Write) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let (id_column, id_value, overriding) = match how {
        Write::Insert => ("", "", ""),
        Write::Update => ("id, ", "z, ", " OVERRIDING SYSTEM VALUE"),
    };
    let sql = format!(
        "INSERT INTO domains ({id_column}instance_id, org_id, domain, is_verified, is_primary, validation_type,
             created_at, updated_at, deleted_at){overriding}
         SELECT {id_value}a, b, c, d, e, f, g, h, i
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bool[], $5::bool[], $6::int2[], $7::timestamptz[],
             $8::timestamptz[], $9::timestamptz[], $10::int8[]) AS t(a, b, c, d, e, f, g, h, i, z){}",
        how.conflict(
            "id",
            &["is_verified", "is_primary", "validation_type", "updated_at", "deleted_at"]
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
                .map(|r| r.org_id.as_ref().map(ToString::to_string))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.domain.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.is_verified).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.is_primary).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.validation_type.map(ValidationType::ordinal))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.deleted_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .execute(conn)
        .await
        .db()
        .map(drop)
}
