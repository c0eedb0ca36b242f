//! Reads on a streaming replica (issue 24). On one 2-core machine the replica shares the
//! cores with the primary, so throughput is not the figure: what leaves the primary is.
//! A private primary with a hot standby (local server binaries), filled with `instances`
//! instances (a custom domain and 5 organizations each), `VACUUM ANALYZE`d, the replica
//! caught up; then a steady mix of host lookups (cache misses: a 1 ms TTL) and
//! ListOrganizations pages, 8 tasks, once with reads on the primary only and once with
//! the replica configured. Measured: the primary's transactions/s (`pg_stat_database`,
//! pools closed first so that every backend has reported), the mix's operations/s, and
//! the CPU time of each server's processes. Then, with the replica 300 ms behind
//! (`recovery_min_apply_delay`), how long a domain moved on the primary takes to show in
//! the host cache, and whether a stale answer is ever served after the new one.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use tenancy_core::id::InstanceId;
use tenancy_core::model::{InstanceDomainKind, InstanceDomainType};
use tenancy_core::ports::UnitOfWorkFactory;
use tenancy_core::query::{OrganizationCriteria, Pagination};
use tenancy_postgres::PgStore;
use tenancy_postgres::hosts::{HostResolver, HostResolverConfig};
use tenancy_postgres::replicas::{ReadPools, ReplicaConfig};
use tenancy_testkit::replica::Replicated;
use tenancy_testkit::stream::Rng;
use tenancy_testkit::writes::RepositoryWrites as _;

use crate::{Args, Figure, percentile_ms};

const T0: time::OffsetDateTime = time::macros::datetime!(2026-01-01 00:00:00 UTC);

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let (small, large) = crate::small_and_large(args);
    let (small, large) = (small.min(10_000), large.min(20_000));
    let window = Duration::from_secs(if args.quick { 3 } else { 10 });
    let mut figures = Vec::new();
    for instances in [small, large] {
        let cluster = Replicated::start("")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        fill(&cluster.pool, instances).await?;
        cluster
            .caught_up()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let without = mix(&cluster, instances, false, window).await?;
        let with = mix(&cluster, instances, true, window).await?;
        println!(
            "replicas, {instances} instances: primary {:.0} → {:.0} transactions/s, mix {:.0} → {:.0} ops/s; \
             CPU s primary/replica: none {:.1}/{:.1}, one replica {:.1}/{:.1}",
            without.primary_tps,
            with.primary_tps,
            without.ops,
            with.ops,
            without.cpu.0,
            without.cpu.1,
            with.cpu.0,
            with.cpu.1
        );
        let parameters = json!({
            "instances": instances, "window_s": window.as_secs(), "tasks": 8,
            "cpu_seconds_primary_replica_without": [without.cpu.0, without.cpu.1],
            "cpu_seconds_primary_replica_with": [with.cpu.0, with.cpu.1],
        });
        figures.push(Figure::throughput(
            &format!("replica: primary reads/s kept ({instances})"),
            with.primary_tps,
            without.primary_tps,
            "no replica (lower is better; target <= 0.2)",
            "tx/s",
            parameters.clone(),
        ));
        figures.push(Figure::throughput(
            &format!("replica: lookup+list mix ({instances})"),
            with.ops,
            without.ops,
            "no replica, same cores",
            "ops/s",
            parameters,
        ));
    }
    figures.extend(invalidation(small.min(1_000), if args.quick { 20 } else { 100 }).await?);
    Ok(figures)
}

/// `instances` instances with a custom domain each (`login.i<n>.example`) and 5
/// organizations each; `VACUUM ANALYZE`.
async fn fill(pool: &sqlx::PgPool, instances: usize) -> Result<()> {
    let n = i32::try_from(instances)?;
    crate::lookup::fill_hosts(pool, n).await?;
    sqlx::query(
        "INSERT INTO organizations (instance_id, id, name, created_at)
         SELECT 'i' || n, 'o' || n || '-' || k, 'Organization ' || k, now()
           FROM generate_series(1, $1) n, generate_series(1, 5) k",
    )
    .bind(n)
    .execute(pool)
    .await?;
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    Ok(())
}

struct Mix {
    primary_tps: f64,
    ops: f64,
    /// CPU seconds of the primary's and the replica's processes.
    cpu: (f64, f64),
}

async fn mix(
    cluster: &Replicated,
    instances: usize,
    replica: bool,
    window: Duration,
) -> Result<Mix> {
    // A pool of its own: closed at the end, its backends report their statistics.
    let primary = tenancy_postgres::pool::connect_with(cluster.primary_url().parse()?, 16).await?;
    let pools = if replica {
        ReadPools::connect(
            primary.clone(),
            &[cluster.replica_url()],
            ReplicaConfig::default(),
        )
        .await?
    } else {
        ReadPools::primary_only(primary.clone())
    };
    let store = Arc::new(PgStore::new(primary.clone()).with_read_pools(pools.clone()));
    let config = HostResolverConfig {
        ttl: Duration::from_millis(1),
        negative_ttl: Duration::from_millis(1),
        ..HostResolverConfig::default()
    };
    let resolver = HostResolver::start_with_read_pools(pools.clone(), config).await?;
    let commits_before = commits(&cluster.primary_url()).await?;
    let cpu_before = (
        cpu_seconds(&cluster.primary.data_dir())?,
        cpu_seconds(&cluster.replica.data_dir())?,
    );
    let ops = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let (store, resolver, ops) = (store.clone(), resolver.clone(), ops.clone());
            tokio::spawn(async move {
                let mut rng = Rng(0x5eed + task);
                while started.elapsed() < window {
                    let n = rng.next(instances as u64) + 1;
                    resolver
                        .instance_by_host(&format!("login.i{n}.example"))
                        .await?;
                    let criteria = OrganizationCriteria {
                        instance_id: Some(InstanceId::new(format!("i{n}"))?),
                        ..OrganizationCriteria::default()
                    };
                    let mut uow = store.begin_read(None).await?;
                    let page = Pagination {
                        limit: Some(20),
                        ..Pagination::default()
                    };
                    uow.list_organizations(&criteria, &page).await?;
                    drop(uow);
                    ops.fetch_add(2, Ordering::Relaxed);
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = (
        cpu_seconds(&cluster.primary.data_dir())?,
        cpu_seconds(&cluster.replica.data_dir())?,
    );
    drop((resolver, store, pools));
    primary.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let commits_after = commits(&cluster.primary_url()).await?;
    Ok(Mix {
        primary_tps: (commits_after - commits_before) as f64 / elapsed,
        ops: ops.load(Ordering::Relaxed) as f64 / elapsed,
        cpu: (cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1),
    })
}

/// Committed and rolled back transactions of the primary's `tenancy` database (a read
/// outside a transaction counts as one).
async fn commits(url: &str) -> Result<i64> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let count: i64 = sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = 'tenancy'",
    )
    .fetch_one(&mut conn)
    .await?;
    conn.close().await?;
    Ok(count)
}

/// CPU seconds (user + system) of a server's postmaster and its children, from /proc.
fn cpu_seconds(data_dir: &Path) -> Result<f64> {
    let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .with_context(|| format!("reading {}/postmaster.pid", data_dir.display()))?;
    let postmaster: u32 = pid_file.lines().next().unwrap_or_default().trim().parse()?;
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ... utime(14) stime(15): fields after the comm's ')'.
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let pid: u32 = head
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ppid: u32 = fields.get(1).and_then(|p| p.parse().ok()).unwrap_or(0);
        if pid == postmaster || ppid == postmaster {
            let field = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            ticks += field(11) + field(12);
        }
    }
    // USER_HZ is 100 on Linux.
    Ok(ticks as f64 / 100.0)
}

/// A domain moved between two instances `samples` times, on the primary: how long until
/// the host cache answers the new holder, with the replica 300 ms behind and without
/// replicas; any old answer after the new one is a stale answer served.
async fn invalidation(instances: usize, samples: usize) -> Result<Vec<Figure>> {
    let cluster = Replicated::start("-c recovery_min_apply_delay=300ms")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    fill(&cluster.pool, instances).await?;
    let store = PgStore::new(cluster.pool.clone());
    let custom = InstanceDomainKind::Custom {
        is_primary: false,
        is_generated: false,
    };
    let mut results = Vec::new();
    for replica in [false, true] {
        let pools = if replica {
            ReadPools::connect(
                cluster.pool.clone(),
                &[cluster.replica_url()],
                ReplicaConfig::default(),
            )
            .await?
        } else {
            ReadPools::primary_only(cluster.pool.clone())
        };
        let config = HostResolverConfig {
            ttl: Duration::from_secs(3600),
            negative_ttl: Duration::from_secs(3600),
            ..HostResolverConfig::default()
        };
        let resolver = HostResolver::start_with_read_pools(pools, config).await?;
        let host = format!("moving-{replica}.example");
        let (a, b) = (InstanceId::new("i1")?, InstanceId::new("i2")?);
        let mut s = store.session().await?;
        s.insert_instance_domain(&a, &host, custom, T0).await?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let mut holder = a.clone();
        let (mut latencies, mut stale) = (Vec::new(), 0usize);
        for _ in 0..samples {
            let next = if holder == a { b.clone() } else { a.clone() };
            assert_eq!(resolver.instance_by_host(&host).await?, holder);
            let moved = Instant::now();
            let mut uow = store.begin().await?;
            uow.delete_instance_domain(&holder, &host, InstanceDomainType::Custom)
                .await?;
            uow.insert_instance_domain(&next, &host, custom, T0).await?;
            uow.commit().await?;
            loop {
                if resolver.instance_by_host(&host).await.ok().as_ref() == Some(&next) {
                    break;
                }
                anyhow::ensure!(
                    moved.elapsed() < Duration::from_secs(10),
                    "the move never showed"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            latencies.push(moved.elapsed());
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(5)).await;
                if resolver.instance_by_host(&host).await.ok().as_ref() != Some(&next) {
                    stale += 1;
                }
            }
            holder = next;
        }
        let (p50, p99) = (
            percentile_ms(&mut latencies, 0.5),
            percentile_ms(&mut latencies, 0.99),
        );
        println!(
            "invalidation, replica 300 ms behind = {replica}: move -> visible p50 {p50:.1} ms, p99 {p99:.1} ms, stale answers after the new one: {stale}"
        );
        results.push((p99, stale));
    }
    let parameters = json!({"samples": samples, "replica_delay_ms": 300, "stale_answers": results[1].1,
                            "stale_answers_without_replica": results[0].1});
    Ok(vec![Figure::latency(
        "replica 300ms behind: move visible p99",
        results[1].0,
        results[0].0,
        "no replica (target: p99 <= lag + 50 ms, 0 stale)",
        "ms",
        parameters,
    )])
}
