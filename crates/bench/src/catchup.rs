//! Catch-up on the operator's path — the store imported, `VACUUM ANALYZE`, then the
//! prefill — at several numbers of instances with the same events per instance (the scale
//! curve), each against the limit measured in the same run: the relevant events read in
//! order and the final rows written by COPY. And, at one size, against a ZITADEL-style
//! projection in the same harness (one statement per table change, a savepoint around each
//! event, 200 events per transaction).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Result, ensure};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{Connection, PgPool};
use tenancy_core::event::{EventQuery, LegacyEvent, StoredEvent};
use tenancy_core::id::InstanceId;
use tenancy_core::model::InstanceDomainKind;
use tenancy_core::ports::{EventReader, UnitOfWork};
use tenancy_core::state::{InMemoryState, apply_change};
use tenancy_eventstore::PgEventStore;
use tenancy_eventstore::import::{ImportRow, import_rows_with};
use tenancy_postgres::{PgStore, Savepoint};
use tenancy_projection::{Engine, EngineConfig, relational};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::{Shape, churn_shaped};
use time::{Duration, OffsetDateTime};

use crate::{Args, Figure};

/// Organizations per instance of the benchmark's stream.
pub const ORGS_PER_INSTANCE: u64 = 25;

/// The stream as stored rows: sequences per aggregate, increasing positions. With `moves`,
/// custom domains move between instances all along.
pub fn stream_rows(instances: usize, events: usize, seed: u64, moves: bool) -> Vec<ImportRow> {
    let rounds = events
        .saturating_sub(instances * (3 + ORGS_PER_INSTANCE as usize))
        .max(1);
    let start = OffsetDateTime::now_utc() - Duration::days(30);
    let mut sequences: HashMap<(String, String, String), i64> = HashMap::new();
    let mut rows = Vec::with_capacity(events);
    for push in churn_shaped(
        Shape {
            instances,
            orgs: ORGS_PER_INSTANCE,
            moves,
        },
        rounds,
        seed,
    ) {
        for (order, event) in push.into_iter().enumerate() {
            let n = rows.len() as i64;
            let key = (
                event.instance_id.clone(),
                event.aggregate_type.clone(),
                event.aggregate_id.clone(),
            );
            let sequence = sequences.entry(key).and_modify(|s| *s += 1).or_insert(1);
            rows.push(ImportRow {
                instance_id: event.instance_id,
                aggregate_type: event.aggregate_type,
                aggregate_id: event.aggregate_id,
                event_type: event.event_type,
                sequence: *sequence,
                revision: 1,
                created_at: start + Duration::microseconds(n),
                payload: event.payload,
                creator: event.creator,
                owner: event.owner,
                position: Decimal::new(start.unix_timestamp() * 1_000_000 + n, 6),
                in_tx_order: order as i32 + 1,
                written_by_v3: false,
            });
        }
    }
    rows
}

/// The operator's path: the store imported (`tenancy events import`'s COPY), then
/// `VACUUM ANALYZE` of the whole database — the tables tenancy fills are analysed empty.
pub(crate) async fn loaded(rows: &[ImportRow]) -> Result<TestDatabase> {
    let db = TestDatabase::fresh().await?;
    // The unique constraints play no part in the catch-up: not filled (see import_rows_with).
    for chunk in rows.chunks(200_000) {
        import_rows_with(&db.pool, chunk, false).await?;
    }
    sqlx::raw_sql("VACUUM ANALYZE").execute(&db.pool).await?;
    Ok(db)
}

/// One point of the scale curve.
struct Point {
    instances: usize,
    events: usize,
    ours: f64,
    limit: f64,
    verify: f64,
}

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let per_instance = args
        .per_instance
        .unwrap_or(if args.quick { 150 } else { 700 });
    let sizes = match (&args.sizes, args.quick) {
        (Some(sizes), _) => sizes.clone(),
        (None, true) => vec![20, 60],
        (None, false) => vec![100, 300, 1_000, 3_000],
    };
    let config = EngineConfig::default();
    let mut curve = Vec::new();
    for &instances in &sizes {
        let rows = stream_rows(instances, instances * per_instance, 42, true);
        println!(
            "catch-up after import + VACUUM ANALYZE: {} events over {instances} instances",
            rows.len()
        );
        let (ours, verify) = engine_run(&rows, config.clone()).await?;
        println!("  ours: {ours:.0} events/s; verify {verify:.0} events/s");
        let limit = limit_run(&rows, config.workers).await?;
        println!(
            "  limit (read in order + COPY of the final rows): {limit:.0} events/s; ratio {:.2}",
            ours / limit
        );
        curve.push(Point {
            instances,
            events: rows.len(),
            ours,
            limit,
            verify,
        });
    }
    let mut figures = Vec::new();
    for p in &curve {
        figures.push(Figure::throughput(
            &format!("catch-up vs limit, {} instances", p.instances),
            p.ours,
            p.limit,
            "read in order + COPY of the final rows",
            "events/s",
            json!({"events": p.events, "instances": p.instances, "per_instance": per_instance, "orgs_per_instance": ORGS_PER_INSTANCE,
                   "batch_size": config.batch_size, "workers": config.workers, "path": "import, VACUUM ANALYZE, prefill", "moves": true}),
        ));
    }
    if let (Some(small), Some(large)) = (curve.first(), curve.last())
        && large.instances > small.instances
    {
        // Per-event cost = 1 / rate: the ratio is cost(large) / cost(small).
        let cost = |p: &Point| 1e6 / p.ours;
        println!(
            "  per-event cost {} vs {} instances: {:.2}x",
            large.instances,
            small.instances,
            cost(large) / cost(small)
        );
        figures.push(Figure::cost(
            &format!(
                "per-event cost, {} vs {} instances",
                large.instances, small.instances
            ),
            cost(large),
            cost(small),
            &format!("{} instances", small.instances),
            "us/event",
            json!({"per_instance": per_instance}),
        ));
    }
    if let Some(p) = curve.last() {
        figures.push(Figure::throughput(
            "verify (fold + compare)",
            p.verify,
            p.ours,
            "catch-up",
            "events/s",
            json!({"events": p.events, "instances": p.instances}),
        ));
    }

    // The baselines of the batch path, at one size (the ZITADEL-style run is slow).
    let instances = args
        .baseline_instances
        .unwrap_or(if args.quick { 50 } else { 300 });
    // Without moving domains: the ZITADEL-style projection fails (and drops) the adds it
    // meets out of order, so only this stream compares like with like.
    let rows = stream_rows(instances, instances * per_instance, 42, false);
    let n = rows.len() as f64;
    println!(
        "baselines: {} events over {instances} instances",
        rows.len()
    );
    let (ours, _) = engine_run(&rows, config.clone()).await?;
    let batch_config = EngineConfig {
        bulk_limit: 0,
        ..config.clone()
    };
    let (batches, _) = engine_run(&rows, batch_config).await?;
    println!("  ours: {ours:.0} events/s; batches only: {batches:.0} events/s");
    let db = loaded(&rows).await?;
    let started = Instant::now();
    zitadel_style(&db.pool, config.workers).await?;
    let zitadel = n / started.elapsed().as_secs_f64();
    println!("  ZITADEL-style: {zitadel:.0} events/s");
    drop(db);
    let parameters = json!({"events": rows.len(), "instances": instances, "batch_size": config.batch_size, "workers": config.workers, "moves": false});
    figures.push(Figure::throughput(
        "catch-up vs ZITADEL-style",
        ours,
        zitadel,
        "one statement per change, savepoint per event, 200 per tx",
        "events/s",
        parameters.clone(),
    ));
    figures.push(Figure::throughput(
        "catch-up, batches only vs ZITADEL-style",
        batches,
        zitadel,
        "one statement per change, savepoint per event, 200 per tx",
        "events/s",
        json!({"events": rows.len(), "instances": instances, "batch_size": config.batch_size, "workers": config.workers, "bulk_limit": 0, "moves": false}),
    ));
    Ok(figures)
}

/// The limit on the same loaded store: every relevant event read in order (per instance,
/// as many readers as the engine has workers), then the final rows — folded beforehand,
/// outside the clock — written by COPY in one transaction.
async fn limit_run(rows: &[ImportRow], workers: usize) -> Result<f64> {
    let db = loaded(rows).await?;
    let state = fold(rows)?;
    let instances: Vec<String> = rows
        .iter()
        .map(|r| r.instance_id.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let started = Instant::now();
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(instances));
    let mut readers = Vec::new();
    for _ in 0..workers.max(1) {
        let (events, queue) = (PgEventStore::new(db.pool.clone()), queue.clone());
        readers.push(tokio::spawn(async move {
            let mut read = 0u64;
            loop {
                let Some(instance) = queue.lock().await.pop() else {
                    return Ok::<u64, anyhow::Error>(read);
                };
                let query = EventQuery {
                    instance_id: instance,
                    aggregate_types: relational::aggregate_types(),
                    event_types: relational::event_types(),
                    ..EventQuery::default()
                };
                events
                    .read_in_batches(&query, 500, |batch| {
                        read += batch.len() as u64;
                        Ok(())
                    })
                    .await?;
            }
        }));
    }
    let mut read = 0;
    for reader in readers {
        read += reader.await??;
    }
    ensure!(
        read as usize == rows.len(),
        "the limit read {read} of {} events",
        rows.len()
    );
    // A connection with PostgreSQL's default plan caching: within one COPY the foreign-key
    // checks switch to a generic plan made once the parents are all there, the cheapest way.
    // It names the tables as tenancy does (unqualified): the layout's search path only.
    let layout = tenancy_postgres::pool::layout_of(&db.options, None).await?;
    let options = db
        .options
        .clone()
        .options([("search_path", layout.search_path())]);
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    let mut tx = conn.begin().await?;
    copy_rows(&mut tx, &state).await?;
    tx.commit().await?;
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    conn.close().await?;
    Ok(rate)
}

/// The engine on a freshly loaded store: events/s of the catch-up, and of `verify` after it
/// (which must find no difference, and no event may fail).
async fn engine_run(rows: &[ImportRow], config: EngineConfig) -> Result<(f64, f64)> {
    let db = loaded(rows).await?;
    let engine = Engine::new(db.pool.clone(), config);
    let started = Instant::now();
    let outcome = engine.run_until_caught_up(|_, _, _| {}).await?;
    let rate = rows.len() as f64 / started.elapsed().as_secs_f64();
    let failed = engine.failed().await?;
    ensure!(
        outcome.failed == 0 && failed.is_empty(),
        "events failed: {outcome:?}: {failed:#?}"
    );
    let verify_started = Instant::now();
    let report = engine.verify().await?;
    let verify_rate = report.events as f64 / verify_started.elapsed().as_secs_f64();
    ensure!(
        report.is_equal(),
        "verify found {} differences: {:#?}",
        report.differences.len(),
        report.differences.iter().take(5).collect::<Vec<_>>()
    );
    Ok((rate, verify_rate))
}

/// The baseline: per instance, 200 events per transaction, each event in a savepoint.
async fn zitadel_style(pool: &PgPool, workers: usize) -> Result<()> {
    let instances: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT instance_id FROM eventstore.events2")
            .fetch_all(pool)
            .await?;
    let queue = std::sync::Arc::new(tokio::sync::Mutex::new(instances));
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (pool, queue) = (pool.clone(), queue.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(instance) = queue.lock().await.pop() else {
                    return Ok::<(), anyhow::Error>(());
                };
                project_instance(&pool, &instance).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn project_instance(pool: &PgPool, instance: &str) -> Result<()> {
    let events = PgEventStore::new(pool.clone());
    let store = PgStore::new(pool.clone());
    let mut after = None;
    loop {
        let batch = events
            .read(&EventQuery {
                instance_id: instance.to_owned(),
                aggregate_types: relational::aggregate_types(),
                event_types: relational::event_types(),
                after: after.clone(),
                limit: Some(200),
                ..EventQuery::default()
            })
            .await?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = Some(last.sort_key());
        let mut session = store.transaction().await?;
        for event in &batch {
            session.savepoint(Savepoint::EVENT).await?;
            if apply_one(&mut session, event).await.is_ok() {
                session.release(Savepoint::EVENT).await?;
            } else {
                // As ZITADEL does: the failed event is rolled back and the batch goes on.
                // (Instances run in parallel, so a custom domain re-used by another
                // instance can conflict here; the engine defers such events instead.)
                session.rollback_to(Savepoint::EVENT).await?;
            }
        }
        cursor(&mut session, last).await?;
        session.commit().await?;
    }
}

async fn apply_one(session: &mut tenancy_postgres::PgSession, event: &StoredEvent) -> Result<()> {
    for change in relational::changes(event)? {
        apply_change(session, &change, event.created_at).await?;
    }
    Ok(())
}

/// The baseline keeps its cursor as the engine does, under a name of its own.
async fn cursor(session: &mut tenancy_postgres::PgSession, last: &StoredEvent) -> Result<()> {
    let state = tenancy_eventstore::projection_state::ProjectionState::new(
        "zitadel_style",
        relational::aggregate_types(),
        relational::event_types(),
    );
    Ok(state.set_cursor(session.conn()?, last).await?)
}

pub(crate) fn fold(rows: &[ImportRow]) -> Result<InMemoryState> {
    let mut state = InMemoryState::new();
    for row in rows {
        let event = LegacyEvent::decode(&row.event_type, row.payload.as_ref())?;
        state.apply_event(
            &InstanceId::new(row.instance_id.clone())?,
            &row.aggregate_id,
            &event,
            row.created_at,
        )?;
    }
    Ok(state)
}

fn csv_time(t: OffsetDateTime) -> Result<String> {
    Ok(t.format(&time::format_description::well_known::Rfc3339)?)
}

/// COPY of every row of `state`, parents first (CSV; an empty field is NULL).
pub(crate) async fn copy_rows(conn: &mut sqlx::PgConnection, state: &InMemoryState) -> Result<()> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let opt_time =
        |v: Option<OffsetDateTime>| v.map(csv_time).transpose().map(Option::unwrap_or_default);
    let flag = |b: bool| if b { "t" } else { "f" }.to_owned();
    let mut tables: Vec<(&str, Vec<Vec<String>>)> = Vec::new();
    let mut t = Vec::new();
    for r in state.all_instances() {
        t.push(vec![
            r.id.to_string(),
            r.name.clone(),
            opt(&r.default_org_id),
            opt(&r.iam_project_id),
            opt(&r.console_client_id),
            opt(&r.console_app_id),
            opt(&r.default_language),
            csv_time(r.created_at)?,
            csv_time(r.updated_at)?,
            opt_time(r.deleted_at)?,
        ]);
    }
    tables.push(("instances (id, name, default_org_id, iam_project_id, console_client_id, console_app_id, default_language, created_at, updated_at, deleted_at)", t));
    let mut t = Vec::new();
    for r in state.all_organizations() {
        t.push(vec![
            r.instance_id.to_string(),
            r.id.to_string(),
            r.name.clone(),
            r.state.as_str().to_owned(),
            csv_time(r.created_at)?,
            csv_time(r.updated_at)?,
            opt_time(r.deleted_at)?,
        ]);
    }
    tables.push((
        "organizations (instance_id, id, name, state, created_at, updated_at, deleted_at)",
        t,
    ));
    let mut t = Vec::new();
    for r in state.all_instance_domains() {
        let (primary, generated) = match r.kind {
            InstanceDomainKind::Custom {
                is_primary,
                is_generated,
            } => (flag(is_primary), flag(is_generated)),
            InstanceDomainKind::Trusted => (String::new(), String::new()),
        };
        t.push(vec![
            r.instance_id.to_string(),
            r.domain.clone(),
            r.kind.domain_type().as_str().to_owned(),
            primary,
            generated,
            csv_time(r.created_at)?,
            csv_time(r.updated_at)?,
        ]);
    }
    tables.push(("instance_domains (instance_id, domain, type, is_primary, is_generated, created_at, updated_at)", t));
    let mut t = Vec::new();
    for r in state.all_org_domains() {
        t.push(vec![
            r.instance_id.to_string(),
            r.org_id.to_string(),
            r.domain.clone(),
            flag(r.is_verified),
            flag(r.is_primary),
            r.validation_type
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default(),
            csv_time(r.created_at)?,
            csv_time(r.updated_at)?,
        ]);
    }
    tables.push(("org_domains (instance_id, org_id, domain, is_verified, is_primary, validation_type, created_at, updated_at)", t));
    let mut t = Vec::new();
    for r in state.all_domains() {
        t.push(vec![
            r.instance_id.to_string(),
            r.org_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            r.domain.clone(),
            flag(r.is_verified),
            flag(r.is_primary),
            r.validation_type
                .map(|v| v.ordinal().to_string())
                .unwrap_or_default(),
            csv_time(r.created_at)?,
            csv_time(r.updated_at)?,
            opt_time(r.deleted_at)?,
        ]);
    }
    tables.push(("domains (instance_id, org_id, domain, is_verified, is_primary, validation_type, created_at, updated_at, deleted_at)", t));
    for (target, records) in tables {
        let mut data = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        for record in records {
            data.write_record(&record)?;
        }
        let mut copy = conn
            .copy_in_raw(&format!("COPY {target} FROM STDIN WITH (FORMAT csv)"))
            .await?;
        copy.send(data.into_inner()?).await?;
        copy.finish().await?;
    }
    Ok(())
}
