//! `verify`: folds the event stream in memory with the core reducers (v3-written events
//! included) and compares the result with the five tables, row by row, a part of the
//! instances at a time.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use tenancy_core::Result;
use tenancy_core::event::{INSTANCE_AGGREGATE, LegacyEvent, SortKey, StoredEvent};
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

/// Instances compared at a time: what `verify` holds in memory is the fold and the rows of
/// this many instances (and the instance aggregates' fold, see [`Engine::verify`]).
const INSTANCES_PER_PART: usize = 500;

impl Engine {
    /// Folds the stream and diffs it with the tables, a few hundred instances at a time,
    /// so that memory follows the largest part, not the store.
    ///
    /// Two passes over the events. The first folds only the instance aggregates' events
    /// in global sort-key order — the order in which cross-instance rules (a custom domain
    /// is live in one instance at most) were judged — and remembers which of them the
    /// rules rejected. The second folds every event of one part of the instances, skipping
    /// the events the first pass rejected, and compares the result with the tables' rows
    /// of that part. Within an instance the outcome of every other event depends only on
    /// that instance's own events, so the fold per part equals the fold of the whole.
    pub async fn verify(&self) -> Result<VerifyReport> {
        self.verify_in_parts(INSTANCES_PER_PART).await
    }

    /// [`Self::verify`] with parts of `instances_per_part` instances (at least one): the
    /// report is the same for every part size, only memory and round trips change.
    pub async fn verify_in_parts(&self, instances_per_part: usize) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        let mut conn = self.pool().acquire().await.map_err(on_constraint)?;

        let mut rejected: HashSet<SortKey> = HashSet::new();
        let mut instances_fold = InMemoryState::new();
        tenancy_eventstore::for_each_in_order(&mut conn, None, &[INSTANCE_AGGREGATE], |event| {
            if fold(&mut instances_fold, &event).is_err() {
                rejected.insert(event.sort_key());
            }
        })
        .await?;
        drop(instances_fold);

        // Instances with events or with rows (rows of an instance without events are
        // differences too).
        let mut instances: BTreeSet<String> =
            tenancy_eventstore::projection_state::instances(self.pool())
                .await?
                .into_iter()
                .collect();
        instances.extend(tenancy_postgres::dump::instance_ids(self.pool()).await?);
        let instances: Vec<String> = instances.into_iter().collect();

        for part in instances.chunks(instances_per_part.max(1)) {
            let ids: Vec<&str> = part.iter().map(String::as_str).collect();
            let mut state = InMemoryState::new();
            report.events += tenancy_eventstore::for_each_in_order(
                &mut conn,
                Some(&ids),
                &tenancy_eventstore::CATALOGUE_AGGREGATES,
                |event| {
                    if rejected.contains(&event.sort_key()) || fold(&mut state, &event).is_err() {
                        report.failed_in_fold += 1;
                    }
                },
            )
            .await?;
            let rows = tenancy_postgres::dump::rows_of_instances(self.pool(), part).await?;
            compare(&state, rows, &mut report.differences);
        }
        Ok(report)
    }
}

/// Appends the rows only in the fold (`- `) and only in the tables (`+ `) to `differences`.
fn compare(state: &InMemoryState, rows: TableRows, differences: &mut Vec<String>) {
    let mut expected = count_lines(
        state
            .all_instances()
            .map(instance_line)
            .chain(state.all_organizations().map(organization_line))
            .chain(state.all_instance_domains().map(instance_domain_line))
            .chain(state.all_org_domains().map(org_domain_line))
            .chain(state.all_domains().map(domain_line)),
    );
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
    } = rows;
    instances.iter().map(instance_line).for_each(&mut matched);
    organizations
        .iter()
        .map(organization_line)
        .for_each(&mut matched);
    instance_domains
        .iter()
        .map(instance_domain_line)
        .for_each(&mut matched);
    org_domains
        .iter()
        .map(org_domain_line)
        .for_each(&mut matched);
    domains.iter().map(domain_line).for_each(&mut matched);
    for (line, n) in &expected {
        for _ in 0..*n {
            differences.push(format!("- {line}"));
        }
    }
    for (line, n) in &unexpected {
        for _ in 0..*n {
            differences.push(format!("+ {line}"));
        }
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
