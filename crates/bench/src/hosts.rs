//! Host resolution through the cache (`tenancy_postgres::hosts`):
//! - cached lookups/s and p99 against a raw prepared SELECT on one local connection, at
//!   several numbers of instances (a curve);
//! - invalidation latency across two processes: a child process (this binary, in writer
//!   mode) removes a domain; this process measures until its cache answers "unknown";
//! - a flood of distinct unknown hosts: how many queries reach the database per second,
//!   and the p99 of known hosts meanwhile.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::json;
use tenancy_core::id::InstanceId;
use tenancy_core::model::InstanceDomainType;
use tenancy_postgres::PgStore;
use tenancy_postgres::hosts::{HostResolver, HostResolverConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::Rng;

use crate::lookup::{fill_hosts, raw_select, sample_hosts};
use crate::{Args, Figure, percentile_ms};
use tenancy_testkit::writes::RepositoryWrites as _;

fn unix_micros() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

pub async fn run(args: &Args) -> Result<Vec<Figure>> {
    let sizes: &[i32] = if args.quick {
        &[200, 2_000]
    } else {
        &[1_000, 10_000, 50_000]
    };
    let lookups = if args.quick { 20_000 } else { 200_000 };
    let mut figures = Vec::new();
    for &instances in sizes {
        figures.extend(lookups_against_raw(instances, lookups).await?);
    }
    figures.extend(invalidation_across_processes(if args.quick { 40 } else { 300 }).await?);
    figures.extend(flood(if args.quick { 1 } else { 3 }).await?);
    Ok(figures)
}

async fn lookups_against_raw(instances: i32, lookups: usize) -> Result<Vec<Figure>> {
    let db = TestDatabase::fresh().await?;
    fill_hosts(&db.pool, instances).await?;
    let hosts = sample_hosts(instances, lookups, 11);
    let (raw, mut raw_samples) = raw_select(&db.options, &hosts).await?;

    let resolver = HostResolver::start(db.pool.clone(), HostResolverConfig::default()).await?;
    // A process that has served for a while: every host asked once.
    for n in 1..=instances {
        resolver
            .instance_by_host(&format!("login.i{n}.example"))
            .await?;
    }
    let mut ours_samples = Vec::with_capacity(lookups);
    let started = Instant::now();
    for host in &hosts {
        let t = Instant::now();
        resolver.instance_by_host(host).await?;
        ours_samples.push(t.elapsed());
    }
    let ours = lookups as f64 / started.elapsed().as_secs_f64();
    let stats = resolver.stats();
    let (ours_p99, raw_p99) = (
        percentile_ms(&mut ours_samples, 0.99),
        percentile_ms(&mut raw_samples, 0.99),
    );
    println!(
        "cached host lookup ({instances} instances): {ours:.0}/s (p99 {ours_p99:.4} ms); raw SELECT {raw:.0}/s (p99 {raw_p99:.3} ms); {stats:?}"
    );
    let parameters = json!({"instances": instances, "lookups": lookups});
    Ok(vec![
        Figure::throughput(
            &format!("cached host lookup {instances}"),
            ours,
            raw,
            "raw prepared SELECT, one local connection",
            "lookups/s",
            parameters.clone(),
        ),
        Figure::latency(
            &format!("cached host lookup p99 {instances}"),
            ours_p99,
            raw_p99,
            "raw prepared SELECT p99",
            "ms",
            parameters,
        ),
    ])
}

/// The child process: for each line `<instance> <domain>` on stdin, removes that custom
/// domain through the repository (its own connection pool, its own commit) and prints the
/// wall-clock time (µs) taken just before the statement.
pub async fn writer(url: &str) -> Result<()> {
    let pool = tenancy_postgres::pool::connect(url).await?;
    let store = PgStore::new(pool);
    let mut session = store.session().await?;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line?;
        let Some((instance, domain)) = line.split_once(' ') else {
            bail!("writer: unexpected line {line:?}");
        };
        let instance = InstanceId::new(instance)?;
        let before = unix_micros();
        session
            .delete_instance_domain(&instance, domain, InstanceDomainType::Custom)
            .await?;
        writeln!(stdout, "{before}")?;
        stdout.flush()?;
    }
    Ok(())
}

async fn invalidation_across_processes(samples: usize) -> Result<Vec<Figure>> {
    let db = TestDatabase::fresh().await?;
    let instances = i32::try_from(samples)?;
    fill_hosts(&db.pool, instances).await?;
    let resolver = HostResolver::start(
        db.pool.clone(),
        HostResolverConfig {
            // Only the notification can make an entry go within this run.
            ttl: Duration::from_secs(3600),
            ..HostResolverConfig::default()
        },
    )
    .await?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--hosts-writer", &db.url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the writer process")?;
    let mut to_child = child.stdin.take().context("writer stdin")?;
    let mut from_child = BufReader::new(child.stdout.take().context("writer stdout")?);
    let mut latencies = Vec::with_capacity(samples);
    for n in 1..=instances {
        let host = format!("login.i{n}.example");
        resolver.instance_by_host(&host).await?;
        writeln!(to_child, "i{n} {host}")?;
        to_child.flush()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let seen = loop {
            if resolver.instance_by_host(&host).await.is_err() {
                break unix_micros();
            }
            if Instant::now() > deadline {
                bail!("{host}: the removal did not reach the cache within 10 s");
            }
            tokio::task::yield_now().await;
        };
        let mut line = String::new();
        from_child.read_line(&mut line)?;
        let before: u128 = line.trim().parse().context("writer output")?;
        latencies.push(Duration::from_micros(
            u64::try_from(seen.saturating_sub(before)).unwrap_or(u64::MAX),
        ));
    }
    drop(to_child);
    let _ = child.wait();
    let p50 = percentile_ms(&mut latencies, 0.50);
    let p99 = percentile_ms(&mut latencies, 0.99);
    println!("invalidation across processes: p50 {p50:.2} ms, p99 {p99:.2} ms over {samples}");
    let parameters = json!({"samples": samples});
    Ok(vec![
        Figure::latency(
            "invalidation p50 (2 processes)",
            p50,
            50.0,
            "target 50 ms",
            "ms",
            parameters.clone(),
        ),
        Figure::latency(
            "invalidation p99 (2 processes)",
            p99,
            50.0,
            "target 50 ms",
            "ms",
            parameters,
        ),
    ])
}

/// 10,000 distinct unknown hosts per second for `seconds`, while one task resolves known
/// hosts.
async fn flood(seconds: u64) -> Result<Vec<Figure>> {
    let db = TestDatabase::fresh().await?;
    fill_hosts(&db.pool, 1_000).await?;
    let resolver = HostResolver::start(db.pool.clone(), HostResolverConfig::default()).await?;
    for n in 1..=1_000 {
        resolver
            .instance_by_host(&format!("login.i{n}.example"))
            .await?;
    }
    let before = resolver.stats();
    let stop = Arc::new(AtomicBool::new(false));
    let known = {
        let (resolver, stop) = (resolver.clone(), stop.clone());
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut rng = Rng(3);
            while !stop.load(Ordering::Relaxed) {
                let host = format!("login.i{}.example", rng.next(1_000) + 1);
                let t = Instant::now();
                let ok = resolver.instance_by_host(&host).await.is_ok();
                samples.push((t.elapsed(), ok));
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            samples
        })
    };
    let answered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let rate_per_tick = 100; // every 10 ms: 10,000/s
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut tasks = Vec::new();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        for _ in 0..rate_per_tick {
            sent += 1;
            let (resolver, answered) = (resolver.clone(), answered.clone());
            let host = format!("random-{sent}-{}.example", unix_micros());
            tasks.push(tokio::spawn(async move {
                if resolver.instance_by_host(&host).await.is_err() {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let known_samples = known.await?;
    let after = resolver.stats();
    let queries = (after.source_queries - before.source_queries) as f64 / elapsed;
    let offered = sent as f64 / elapsed;
    let shed = after.shed - before.shed;
    let failed_known = known_samples.iter().filter(|(_, ok)| !ok).count();
    let mut known_latencies: Vec<Duration> = known_samples.iter().map(|(d, _)| *d).collect();
    let known_p99 = percentile_ms(&mut known_latencies, 0.99);
    println!(
        "unknown-host flood: {offered:.0} distinct hosts/s offered, {queries:.1} database queries/s, {shed} shed; known hosts meanwhile p99 {known_p99:.3} ms, {failed_known} of {} failed",
        known_samples.len()
    );
    let parameters = json!({"seconds": seconds, "offered_per_s": offered, "shed": shed,
        "known_p99_ms": known_p99, "known_failed": failed_known});
    Ok(vec![Figure::latency(
        "unknown-host flood: db queries/s",
        queries,
        offered,
        "one query per lookup (uncached)",
        "queries/s",
        parameters,
    )])
}
