//! Host lookup: instance-by-host through the repository, against a raw prepared SELECT on
//! the same index, both on one connection, sequentially.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use sqlx::Connection;
use tenancy_core::ports::InstanceRepository;
use tenancy_postgres::PgStore;
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::Rng;

use crate::{Args, Figure, percentile_ms};

/// `instances` instances, each with the custom domain `login.i<n>.example`; then
/// `VACUUM ANALYZE`, as an operator would after a load.
pub(crate) async fn fill_hosts(pool: &sqlx::PgPool, instances: i32) -> Result<()> {
    sqlx::query(
        "INSERT INTO instances (id, name) SELECT 'i' || n, 'Instance ' || n FROM generate_series(1, $1) n",
    )
    .bind(instances)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO instance_domains (instance_id, domain, type, is_primary, is_generated)
         SELECT 'i' || n, 'login.i' || n || '.example', 'custom', true, false FROM generate_series(1, $1) n",
    )
    .bind(instances)
    .execute(pool)
    .await?;
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    Ok(())
}

/// `lookups` hosts of [`fill_hosts`]'s instances, in random order and upper case.
pub(crate) fn sample_hosts(instances: i32, lookups: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    let n = u64::try_from(instances).unwrap_or(1);
    (0..lookups)
        .map(|_| format!("LOGIN.i{}.example", rng.next(n) + 1))
        .collect()
}

/// The baseline: a raw prepared SELECT on the same index over one plain connection, one
/// lookup after the other; lookups/s and every lookup's time.
pub(crate) async fn raw_select(
    options: &sqlx::postgres::PgConnectOptions,
    hosts: &[String],
) -> Result<(f64, Vec<Duration>)> {
    let mut conn = sqlx::PgConnection::connect_with(options).await?;
    let mut samples = Vec::with_capacity(hosts.len());
    let started = Instant::now();
    for host in hosts {
        let t = Instant::now();
        let _: Option<(String,)> = sqlx::query_as(
            // A plain connection, names qualified: the test database's layout keeps the
            // relational tables in `zitadel`.
            "SELECT i.id FROM zitadel.instance_domains d JOIN zitadel.instances i ON i.id = d.instance_id
             WHERE lower(d.domain COLLATE \"C\") = lower($1 COLLATE \"C\") AND d.type = 'custom' AND i.deleted_at IS NULL",
        )
        .bind(host)
        .fetch_optional(&mut conn)
        .await?;
        samples.push(t.elapsed());
    }
    let rate = hosts.len() as f64 / started.elapsed().as_secs_f64();
    let _ = conn.close().await;
    Ok((rate, samples))
}

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let db = TestDatabase::fresh().await?;
    let instances: i32 = if args.quick { 200 } else { 5_000 };
    let lookups = if args.quick { 2_000 } else { 50_000 };
    fill_hosts(&db.pool, instances).await?;
    let hosts = sample_hosts(instances, lookups, 9);

    let store = PgStore::new(db.pool.clone());
    let mut session = store.session().await?;
    let mut ours_samples: Vec<Duration> = Vec::with_capacity(lookups);
    let started = Instant::now();
    for host in &hosts {
        let t = Instant::now();
        session.instance_by_host(host).await?;
        ours_samples.push(t.elapsed());
    }
    let ours = lookups as f64 / started.elapsed().as_secs_f64();
    drop(session);

    let (raw, mut raw_samples) = raw_select(&db.options, &hosts).await?;
    let (ours_p99, raw_p99) = (
        percentile_ms(&mut ours_samples, 0.99),
        percentile_ms(&mut raw_samples, 0.99),
    );
    println!(
        "host lookup: {ours:.0}/s (p99 {ours_p99:.2} ms); raw SELECT {raw:.0}/s (p99 {raw_p99:.2} ms)"
    );
    let parameters = json!({"instances": instances, "lookups": lookups});
    Ok(vec![
        Figure::throughput(
            "host lookup",
            ours,
            raw,
            "raw prepared SELECT on the same index",
            "queries/s",
            parameters.clone(),
        ),
        Figure::latency(
            "host lookup p99",
            ours_p99,
            raw_p99,
            "raw prepared SELECT p99",
            "ms",
            parameters,
        ),
    ])
}
