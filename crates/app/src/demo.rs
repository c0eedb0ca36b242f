//! `tenancy demo`: a realistic dataset through both write paths, projected and verified.

use std::sync::Arc;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use sqlx::PgPool;
use tenancy_core::command::{
    self, AddInstance, AddInstanceDomain, AddOrganization, AddOrganizationDomain,
    AddOrganizationDomainVerification, CommandContext, SetInstanceDomainPrimary,
    SetOrganizationDomainPrimary, VerifyOrganizationDomain,
};
use tenancy_core::event::NewEvent;
use tenancy_core::model::ValidationType;
use tenancy_core::ports::{InstanceRepository, SystemClock};
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::PgStore;
use tenancy_projection::Engine;

fn legacy(
    instance: &str,
    aggregate_type: &str,
    aggregate_id: &str,
    event_type: &str,
    payload: Value,
) -> NewEvent {
    NewEvent::legacy(
        instance,
        aggregate_type,
        aggregate_id,
        event_type,
        payload,
        "demo-legacy",
    )
}

/// The legacy events of three tenants, as an existing store would hold them.
fn legacy_events() -> Vec<Vec<NewEvent>> {
    let mut pushes = Vec::new();
    for (id, name) in [
        ("acme", "ACME"),
        ("globex", "Globex"),
        ("initech", "Initech"),
    ] {
        let i = |t: &str, p: Value| legacy(id, "instance", id, t, p);
        pushes.push(vec![
            i("instance.added", json!({"name": name})),
            i(
                "instance.domain.added",
                json!({"domain": format!("{id}.tenancy.example"), "generated": true}),
            ),
            i(
                "instance.domain.primary.set",
                json!({"domain": format!("{id}.tenancy.example")}),
            ),
            i(
                "instance.domain.added",
                json!({"domain": format!("login.{id}.example")}),
            ),
            i(
                "instance.domain.primary.set",
                json!({"domain": format!("login.{id}.example")}),
            ),
            i(
                "instance.trusted_domains.added",
                json!({"domain": format!("{id}.example")}),
            ),
            i("instance.default.language.set", json!({"language": "en"})),
        ]);
        for (org, org_name) in [
            ("sales", "Sales"),
            ("eng", "Engineering"),
            ("legal", "Legal"),
        ] {
            let org_id = format!("{id}-{org}");
            let o = |t: &str, p: Value| legacy(id, "org", &org_id, t, p);
            let domain = format!("{org}.{id}.example");
            pushes.push(vec![
                o("org.added", json!({"name": org_name})),
                o("org.domain.added", json!({"domain": domain})),
                o("org.domain.verification.added", json!({"domain": domain, "validationType": 2, "validationCode": {"crypted": "…"}})),
                o("org.domain.verified", json!({"domain": domain})),
                o("org.domain.primary.set", json!({"domain": domain})),
                o("org.domain.added", json!({"domain": format!("old-{domain}")})),
                o("org.domain.removed", json!({"domain": format!("old-{domain}")})),
            ]);
        }
        pushes.push(vec![legacy(
            id,
            "instance",
            id,
            "instance.default.org.set",
            json!({"orgId": format!("{id}-sales")}),
        )]);
        pushes.push(vec![legacy(
            id,
            "org",
            &format!("{id}-legal"),
            "org.deactivated",
            json!({}),
        )]);
    }
    pushes.push(vec![legacy(
        "initech",
        "org",
        "initech-legal",
        "org.removed",
        json!({}),
    )]);
    pushes
}

pub async fn run(pool: &PgPool, engine: &Engine) -> Result<()> {
    let existing: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM eventstore.events2) + (SELECT count(*) FROM instances)",
    )
    .fetch_one(pool)
    .await?;
    if existing > 0 {
        bail!(
            "the database is not empty; the demo fills an empty one (use another --database-url or --data-dir)"
        );
    }
    let events = Arc::new(PgEventStore::new(pool.clone()));
    let mut pushed = 0;
    for push in legacy_events() {
        pushed += push.len();
        events.push(push).await?;
    }
    println!("pushed {pushed} legacy events for 3 instances");
    // The tables are the write model of v3 commands: prefill them before the first command.
    let prefill = engine.run_until_caught_up(|_, _, _| {}).await?;
    println!(
        "prefilled: {} events applied, {} failed",
        prefill.applied, prefill.failed
    );

    let store = PgStore::with_events(pool.clone(), events);
    let ctx = CommandContext {
        clock: Arc::new(SystemClock),
        ids: Arc::new(tenancy_postgres::ids::LeasedIds::lease(pool).await?),
        tokens: Arc::new(tenancy_core::challenge::OsTokens),
        creator: "demo-v3".into(),
    };
    let umbrella = command::run(
        &store,
        &ctx,
        &AddInstance {
            name: "Umbrella".into(),
        },
    )
    .await?;
    command::run(
        &store,
        &ctx,
        &AddInstanceDomain {
            instance_id: umbrella.clone(),
            domain: "login.umbrella.example".into(),
            generated: true,
        },
    )
    .await?;
    command::run(
        &store,
        &ctx,
        &SetInstanceDomainPrimary {
            instance_id: umbrella.clone(),
            domain: "login.umbrella.example".into(),
        },
    )
    .await?;
    let research = command::run(
        &store,
        &ctx,
        &AddOrganization {
            id: None,
            instance_id: umbrella.clone(),
            name: "Research".into(),
        },
    )
    .await?;
    let domain = "research.umbrella.example";
    command::run(
        &store,
        &ctx,
        &AddOrganizationDomain {
            instance_id: umbrella.clone(),
            org_id: research.clone(),
            domain: domain.into(),
        },
    )
    .await?;
    command::run(
        &store,
        &ctx,
        &AddOrganizationDomainVerification {
            instance_id: umbrella.clone(),
            org_id: research.clone(),
            domain: domain.into(),
            validation_type: ValidationType::Http,
        },
    )
    .await?;
    command::run(
        &store,
        &ctx,
        &VerifyOrganizationDomain {
            instance_id: umbrella.clone(),
            org_id: research.clone(),
            domain: domain.into(),
        },
    )
    .await?;
    command::run(
        &store,
        &ctx,
        &SetOrganizationDomainPrimary {
            instance_id: umbrella.clone(),
            org_id: research,
            domain: domain.into(),
        },
    )
    .await?;
    // A rule at work: the custom domain of one tenant cannot be taken by another.
    let taken = command::run(
        &store,
        &ctx,
        &AddInstanceDomain {
            instance_id: umbrella,
            domain: "login.acme.example".into(),
            generated: false,
        },
    )
    .await;
    println!(
        "ran 8 v3 commands; taking login.acme.example for Umbrella was refused: {}",
        taken.err().map(|e| e.to_string()).unwrap_or_default()
    );

    let outcome = engine.run_until_caught_up(|_, _, _| {}).await?;
    println!(
        "projected again: {} events applied, {} skipped (written by v3), {} failed",
        outcome.applied, outcome.skipped, outcome.failed
    );
    for table in [
        "instances",
        "organizations",
        "instance_domains",
        "org_domains",
        "domains",
    ] {
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(pool)
                .await?;
        println!("  {table:<25} {n:>4} rows");
    }
    let host = "LOGIN.acme.example";
    let instance = store.session().await?.instance_by_host(host).await?;
    println!(
        "host {host} -> instance {} ({})",
        instance.id, instance.name
    );
    let report = engine.verify().await?;
    if report.is_equal() {
        println!(
            "verify: the tables equal the fold of {} events",
            report.events
        );
        Ok(())
    } else {
        for line in &report.differences {
            println!("  {line}");
        }
        bail!("verify found {} differences", report.differences.len())
    }
}
