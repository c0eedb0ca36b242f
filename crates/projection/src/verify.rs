//! `verify`: folds the event stream in memory with the core reducers (v3-written events
//! included) and compares the result with the five tables, row by row.

use std::collections::BTreeMap;

use tenancy_core::Result;
use tenancy_core::event::{LegacyEvent, StoredEvent};
use tenancy_core::id::InstanceId;
use tenancy_core::model::{
    Domain, Instance, InstanceDomain, InstanceDomainKind, Organization, OrganizationDomain,
};
use tenancy_core::state::{InMemoryState, TableRows};
use tenancy_postgres::on_constraint;

use crate::engine::Engine;

/// The result of a verification.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events folded.
    pub events: u64,
    /// Events the fold could not apply (they fail in the projection too).
    pub failed_in_fold: u64,
    /// Rows only in the fold (`- `) or only in the tables (`+ `).
    pub differences: Vec<String>,
}

impl VerifyReport {
    /// Whether the tables equal the fold (no difference).
    pub fn is_equal(&self) -> bool {
        self.differences.is_empty()
    }
}

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
        // Every event is folded, those tenancy's commands wrote included (their rows are
        // in the tables).
        let mut conn = self.pool().acquire().await.map_err(on_constraint)?;
        report.events = tenancy_eventstore::for_each_in_order(&mut conn, None, |event| {
            if fold(&mut state, &event).is_err() {
                report.failed_in_fold += 1;
            }
        })
        .await?;
        drop(conn);
        // Memory: the fold's rows become their lines and go; each table row read is
        // matched against them at once (no second set of lines for the tables).
        let mut expected = count_lines(
            state
                .all_instances()
                .map(instance_line)
                .chain(state.all_organizations().map(organization_line))
                .chain(state.all_instance_domains().map(instance_domain_line))
                .chain(state.all_org_domains().map(org_domain_line))
                .chain(state.all_domains().map(domain_line)),
        );
        drop(state);
        let mut unexpected: BTreeMap<String, i64> = BTreeMap::new();
        let mut matched = |line: String| match expected.get_mut(&line) {
            Some(n) if *n > 0 => *n -= 1,
            _ => *unexpected.entry(line).or_insert(0) += 1,
        };
        let TableRows {
            instances,
            organizations,
            instance_domains,
            org_domains,
            domains,
        } = tenancy_postgres::dump::all_rows(self.pool()).await?;
        instances.iter().map(instance_line).for_each(&mut matched);
        drop(instances);
        organizations
            .iter()
            .map(organization_line)
            .for_each(&mut matched);
        drop(organizations);
        instance_domains
            .iter()
            .map(instance_domain_line)
            .for_each(&mut matched);
        drop(instance_domains);
        org_domains
            .iter()
            .map(org_domain_line)
            .for_each(&mut matched);
        drop(org_domains);
        domains.iter().map(domain_line).for_each(&mut matched);
        drop(domains);
        for (line, n) in &expected {
            for _ in 0..*n {
                report.differences.push(format!("- {line}"));
            }
        }
        for (line, n) in &unexpected {
            for _ in 0..*n {
                report.differences.push(format!("+ {line}"));
            }
        }
        Ok(report)
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
