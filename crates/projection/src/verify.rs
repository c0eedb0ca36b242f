//! `verify`: folds the event stream in memory with the core reducers (v3-written events
//! included) and compares the result with the five tables, row by row.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use tenancy_core::Result;
use tenancy_core::event::{LegacyEvent, StoredEvent};
use tenancy_core::id::InstanceId;
use tenancy_core::model::{
    Domain, Instance, InstanceDomain, InstanceDomainKind, Organization, OrganizationDomain,
};
use tenancy_core::state::InMemoryState;
use tenancy_postgres::on_constraint;
use time::OffsetDateTime;

use crate::engine::Engine;
use crate::relational;

/// The result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
    /// Events the fold could not apply (they fail in the projection too).
    pub failed_in_fold: u64,
    /// Rows only in the fold (`- `) or only in the tables (`+ `).
    pub differences: Vec<String>,
}

impl VerifyReport {
    pub fn is_equal(&self) -> bool {
        self.differences.is_empty()
    }
}

type EventRow = (
    String,
    String,
    String,
    String,
    i64,
    i16,
    OffsetDateTime,
    Option<serde_json::Value>,
    String,
    String,
    Decimal,
    i32,
    bool,
);

fn instance_line(i: &Instance) -> String {
    format!(
        "instances {} name={:?} default_org={:?} iam_project={:?} console=({:?},{:?}) language={:?} created={} updated={} deleted={:?}",
        i.id,
        i.name,
        i.default_org_id,
        i.iam_project_id,
        i.console_client_id,
        i.console_app_id,
        i.default_language,
        i.created_at,
        i.updated_at,
        i.deleted_at
    )
}

fn organization_line(o: &Organization) -> String {
    format!(
        "organizations {}/{} name={:?} state={} created={} updated={} deleted={:?}",
        o.instance_id,
        o.id,
        o.name,
        o.state.as_str(),
        o.created_at,
        o.updated_at,
        o.deleted_at
    )
}

fn instance_domain_line(d: &InstanceDomain) -> String {
    let flags = match d.kind {
        InstanceDomainKind::Custom {
            is_primary,
            is_generated,
        } => format!("custom primary={is_primary} generated={is_generated}"),
        InstanceDomainKind::Trusted => "trusted".to_owned(),
    };
    format!(
        "instance_domains {} {:?} {flags} created={} updated={}",
        d.instance_id, d.domain, d.created_at, d.updated_at
    )
}

fn org_domain_line(d: &OrganizationDomain) -> String {
    format!(
        "org_domains {}/{} {:?} verified={} primary={} validation={:?} created={} updated={}",
        d.instance_id,
        d.org_id,
        d.domain,
        d.is_verified,
        d.is_primary,
        d.validation_type,
        d.created_at,
        d.updated_at
    )
}

/// The surrogate id is left out: it depends on insertion order across instances.
fn domain_line(d: &Domain) -> String {
    format!(
        "domains {}/{} {:?} verified={} primary={} validation={:?} created={} updated={} deleted={:?}",
        d.instance_id,
        d.org_id.as_ref().map_or("-", |o| o.as_str()),
        d.domain,
        d.is_verified,
        d.is_primary,
        d.validation_type,
        d.created_at,
        d.updated_at,
        d.deleted_at
    )
}

fn count_lines(lines: impl Iterator<Item = String>) -> BTreeMap<String, i64> {
    let mut map = BTreeMap::new();
    for line in lines {
        *map.entry(line).or_insert(0) += 1;
    }
    map
}

impl Engine {
    /// Folds the stream (global sort-key order, so cross-instance rules such as global
    /// custom domains judge as the tables did) and diffs it with the tables.
    pub async fn verify(&self) -> Result<VerifyReport> {
        let mut state = InMemoryState::new();
        let mut report = VerifyReport::default();
        let mut after: Option<(Decimal, i32, String, String, String, i64)> = None;
        loop {
            // Every event is folded, those tenancy's commands wrote included (their rows
            // are in the tables): the column is not needed, and older stores lack it.
            let rows: Vec<EventRow> = sqlx::query_as(
                "SELECT instance_id, aggregate_type, aggregate_id, event_type, \"sequence\", revision, created_at,
                        payload, creator, \"owner\", \"position\", in_tx_order, false
                 FROM eventstore.events2
                 WHERE instance_id <> '' AND aggregate_type = ANY($1) AND event_type = ANY($2)
                   AND ($3::numeric IS NULL OR (\"position\", in_tx_order, instance_id, aggregate_type, aggregate_id, \"sequence\")
                        > ($3, $4, $5, $6, $7, $8))
                 ORDER BY \"position\", in_tx_order, instance_id, aggregate_type, aggregate_id, \"sequence\"
                 LIMIT 10000",
            )
            .bind(relational::aggregate_types())
            .bind(relational::event_types())
            .bind(after.as_ref().map(|a| a.0))
            .bind(after.as_ref().map(|a| a.1))
            .bind(after.as_ref().map(|a| a.2.clone()))
            .bind(after.as_ref().map(|a| a.3.clone()))
            .bind(after.as_ref().map(|a| a.4.clone()))
            .bind(after.as_ref().map(|a| a.5))
            .fetch_all(self.pool())
            .await
            .map_err(on_constraint)?;
            let Some(last) = rows.last() else { break };
            after = Some((
                last.10,
                last.11,
                last.0.clone(),
                last.1.clone(),
                last.2.clone(),
                last.4,
            ));
            for row in rows {
                let event = StoredEvent {
                    instance_id: row.0,
                    aggregate_type: row.1,
                    aggregate_id: row.2,
                    event_type: row.3,
                    sequence: row.4,
                    revision: row.5,
                    created_at: row.6,
                    payload: row.7,
                    creator: row.8,
                    owner: row.9,
                    position: row.10,
                    in_tx_order: row.11,
                    written_by_v3: row.12,
                };
                report.events += 1;
                if fold(&mut state, &event).is_err() {
                    report.failed_in_fold += 1;
                }
            }
        }
        let expected = count_lines(
            state
                .all_instances()
                .map(instance_line)
                .chain(state.all_organizations().map(organization_line))
                .chain(state.all_instance_domains().map(instance_domain_line))
                .chain(state.all_org_domains().map(org_domain_line))
                .chain(state.all_domains().map(domain_line)),
        );
        let actual = count_lines(self.table_lines().await?.into_iter());
        for (line, n) in &expected {
            for _ in *actual.get(line).unwrap_or(&0)..*n {
                report.differences.push(format!("- {line}"));
            }
        }
        for (line, n) in &actual {
            for _ in *expected.get(line).unwrap_or(&0)..*n {
                report.differences.push(format!("+ {line}"));
            }
        }
        Ok(report)
    }

    async fn table_lines(&self) -> Result<Vec<String>> {
        let rows = tenancy_postgres::dump::all_rows(self.pool()).await?;
        Ok(rows
            .instances
            .iter()
            .map(instance_line)
            .chain(rows.organizations.iter().map(organization_line))
            .chain(rows.instance_domains.iter().map(instance_domain_line))
            .chain(rows.org_domains.iter().map(org_domain_line))
            .chain(rows.domains.iter().map(domain_line))
            .collect())
    }
}

fn fold(state: &mut InMemoryState, event: &StoredEvent) -> Result<u64> {
    let decoded = LegacyEvent::decode(&event.event_type, event.payload.as_ref())?;
    state.apply_event(
        &InstanceId::new(event.instance_id.clone())?,
        &event.aggregate_id,
        &decoded,
        event.created_at,
    )
}
