//! Reliability of the binary: SIGKILL during a prefill, a database restart while
//! `tenancy start` runs, and a database that comes up after it. The scale grows with `TENANCY_SOAK_SCALE` (`cargo xtask bench --soak`).
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tenancy_eventstore::PgEventStore;
use tenancy_postgres::embedded::EmbeddedCluster;
use tenancy_projection::{Engine, EngineConfig};
use tenancy_testkit::db::TestDatabase;
use tenancy_testkit::stream::{Rng, churn, inst};

fn scale() -> usize {
    std::env::var("TENANCY_SOAK_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

/// The binary, silent.
fn tenancy() -> Command {
    let mut cmd = common::tenancy();
    cmd.env("TENANCY_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

#[tokio::test]
async fn sigkill_during_prefill_loses_nothing() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    for push in churn(8, 1_500 * scale(), 21) {
        store.push(push).await.unwrap();
    }
    let kills = if scale() > 1 { 20 } else { 6 };
    let mut rng = Rng(4);
    for _ in 0..kills {
        let mut child = tenancy()
            .args(["projections", "run", "--until-caught-up"])
            .env("DATABASE_URL", db.url())
            .env("TENANCY_PROJECTION__BATCH_SIZE", "25")
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20 + rng.next(150))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let status = tenancy()
        .args(["projections", "run", "--until-caught-up"])
        .env("DATABASE_URL", db.url())
        .status()
        .unwrap();
    assert!(status.success());
    let status = tenancy()
        .args(["projections", "verify"])
        .env("DATABASE_URL", db.url())
        .status()
        .unwrap();
    assert!(status.success(), "verify equal after the last restart");
}

#[tokio::test]
async fn a_database_restart_while_start_runs_is_survived() {
    let (root, cluster, url) = own_cluster("tenancy-restart-test").await;
    let port = common::free_port();
    // The server's log, shown when the test fails.
    let log = root.join("tenancy.log");
    let mut server = common::tenancy_start(&url, port)
        .env("TENANCY_PROJECTION__SWEEP_INTERVAL_SECS", "1")
        .env("TENANCY_LOG", "info,tenancy_projection=debug")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Running: migrated, and the port open (a restart before that is waited out as at
    // startup: start_waits_for_a_database_that_comes_up_later).
    common::wait_listening(port).await;
    let pool = tenancy_postgres::PgStore::connect(&url).await.unwrap();
    let store = PgEventStore::new(pool.clone());
    let pushes = 20 * scale();
    for n in 0..pushes {
        let id = format!("before-{n}");
        store
            .push(vec![inst(&id, "instance.added", json!({"name": id}))])
            .await
            .unwrap();
    }
    let restarting = cluster.clone();
    tokio::task::spawn_blocking(move || restarting.restart())
        .await
        .unwrap()
        .unwrap();
    // The pool reconnects; the engine backs off and resumes.
    let mut pushed_after = 0;
    while pushed_after < pushes {
        let id = format!("after-{pushed_after}");
        if store
            .push(vec![inst(&id, "instance.added", json!({"name": id}))])
            .await
            .is_ok()
        {
            pushed_after += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM instances")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        if n as usize == 2 * pushes {
            break;
        }
        assert!(
            Instant::now() < deadline && server.try_wait().unwrap().is_none(),
            "only {n} of {} instances projected after the restart; the server ({}) logged:\n{}",
            2 * pushes,
            match server.try_wait().unwrap() {
                None => "running".to_owned(),
                Some(status) => status.to_string(),
            },
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let engine = Engine::new(pool.clone(), EngineConfig::default());
    assert!(engine.verify().await.unwrap().is_equal());
    assert!(
        server.try_wait().unwrap().is_none(),
        "tenancy start kept running"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    pool.close().await;
    cluster.stop().unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

/// A database that comes up after `tenancy start` (a host's boot, a rollout that starts
/// both): start waits for it, then migrates, serves and projects.
#[tokio::test]
async fn start_waits_for_a_database_that_comes_up_later() {
    let (root, cluster, url) = own_cluster("tenancy-late-db-test").await;
    cluster.stop().unwrap();
    let port = common::free_port();
    let log = root.join("tenancy.log");
    let mut server = common::tenancy_start(&url, port)
        .env("TENANCY_LOG", "warn")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        server.try_wait().unwrap().is_none(),
        "tenancy start did not wait for the database:\n{}",
        log_tail(&log)
    );
    assert!(
        log_tail(&log).contains("waiting for it"),
        "{}",
        log_tail(&log)
    );
    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start_again())
        .await
        .unwrap()
        .unwrap();
    common::wait_listening(port).await;
    let pool = tenancy_postgres::PgStore::connect(&url).await.unwrap();
    PgEventStore::new(pool.clone())
        .push(vec![inst(
            "late",
            "instance.added",
            json!({"name": "late"}),
        )])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM instances WHERE id = 'late'")
        .fetch_one(&pool)
        .await
        .unwrap()
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the push was not projected:\n{}",
            log_tail(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success(), "{}", log_tail(&log));
    pool.close().await;
    cluster.stop().unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

/// A cluster of the test's own in a fresh directory named `name` (the test restarts or
/// stops it), with a database `tenancy`: its directory, the cluster and the database's URL.
async fn own_cluster(name: &str) -> (std::path::PathBuf, EmbeddedCluster, String) {
    let root = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let cluster = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || EmbeddedCluster::start(&root, false))
            .await
            .unwrap()
            .unwrap()
    };
    tenancy_postgres::embedded::ensure_database(&cluster.url(), "tenancy")
        .await
        .unwrap();
    let url = cluster.database_url("tenancy");
    (root, cluster, url)
}

/// The last 200 lines of the log at `path`.
fn log_tail(path: &std::path::Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(200)..].join("\n")
}

/// A `tenancy start` on `db` listening on a free port, killed (SIGKILL) when dropped.
struct Replica(#[allow(dead_code)] common::Process);

impl Replica {
    async fn start(db: &TestDatabase, sweep_secs: &str) -> Self {
        let port = common::free_port();
        let process = common::Process::listening(
            common::tenancy_start(&db.url(), port)
                .env("TENANCY_LOG", "off")
                .stderr(Stdio::null())
                .env("TENANCY_PROJECTION__SWEEP_INTERVAL_SECS", sweep_secs),
            port,
        )
        .await;
        Self(process)
    }
}

/// Committed transactions of `db` over `window` (pg_stat_database, flushed by the
/// backends at most once a second, hence the pause before each reading).
async fn commits_over(db: &TestDatabase, window: Duration) -> i64 {
    let read = || async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        sqlx::query_scalar::<_, i64>(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    let before = read().await;
    tokio::time::sleep(window).await;
    read().await - before
}

/// Issue 25: replicas share the periodic work (one sweep per interval for all of them)
/// instead of multiplying it: idle database load with 3 replicas at most 1.5x that of one.
#[tokio::test]
async fn idle_replicas_do_not_multiply_the_sweep() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    for push in churn(60, 120, 5) {
        store.push(push).await.unwrap();
    }
    // A sweep every second makes the periodic work dominate the idle load.
    let first = Replica::start(&db, "1").await;
    tokio::time::sleep(Duration::from_secs(3)).await; // caught up
    let one = commits_over(&db, Duration::from_secs(6)).await;
    let others = [
        Replica::start(&db, "1").await,
        Replica::start(&db, "1").await,
    ];
    tokio::time::sleep(Duration::from_secs(3)).await;
    let three = commits_over(&db, Duration::from_secs(6)).await;
    drop(others);
    drop(first);
    eprintln!("idle commits over 6 s: one replica {one}, three replicas {three}");
    assert!(
        one > 30,
        "the periodic work (a sweep every second, the poll) shows in the count: {one} commits"
    );
    assert!(
        (three as f64) <= 1.5 * one as f64,
        "3 idle replicas: {three} commits against {one} for one"
    );
}

/// Issue 25: three replicas with a writer for 60 s, one of them SIGKILLed every second or
/// two and restarted: every event applied exactly once (no event past a cursor, no failed
/// event, `verify` equal), and the instances a killed replica held are picked up by the
/// others.
#[tokio::test]
async fn replicas_killed_at_random_lose_nothing() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    let mut replicas = vec![
        Replica::start(&db, "60").await,
        Replica::start(&db, "60").await,
        Replica::start(&db, "60").await,
    ];
    // More pushes than 60 s take; the writer stops at the deadline.
    let pushes = churn(12, 30_000, 17);
    let started = Instant::now();
    let until = Instant::now() + Duration::from_secs(60 * scale() as u64);
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut pushed = 0;
            for push in pushes {
                if Instant::now() >= until {
                    break;
                }
                store.push(push).await.unwrap();
                pushed += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            pushed
        })
    };
    let mut rng = Rng(9);
    while !writer.is_finished() {
        tokio::time::sleep(Duration::from_millis(700 + rng.next(1300))).await;
        let victim = usize::try_from(rng.next(3)).unwrap();
        replicas[victim] = Replica::start(&db, "60").await; // the old one is SIGKILLed on drop
    }
    let total = writer.await.unwrap();
    assert!(total > 100, "{total} pushes");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(60),
        "the writer ran out of pushes at {elapsed:?}"
    );
    eprintln!("{total} pushes in {elapsed:?}, a replica killed every 0.7–2 s");
    // The survivors catch up without a sweep (notifications and their retries).
    let engine = Engine::new(db.pool.clone(), EngineConfig::default());
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.status().await.unwrap().events_behind > 0 {
        assert!(Instant::now() < deadline, "replicas did not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(replicas);
    assert!(engine.failed().await.unwrap().is_empty());
    let report = engine.verify().await.unwrap();
    assert!(report.is_equal(), "{}", report.differences.join("\n"));
}

/// Issue 25: `tenancy projections rebuild` (side by side) killed with SIGKILL at random
/// points, then run again, ends with the tables of a prefill; while one runs, a second is
/// refused naming it.
#[tokio::test]
async fn a_rebuild_killed_at_random_points_resumes_and_ends_equal() {
    let db = TestDatabase::fresh().await.unwrap();
    let store = PgEventStore::new(db.pool.clone());
    for push in churn(10, 800 * scale(), 27) {
        store.push(push).await.unwrap();
    }
    let run = |args: &[&str]| {
        tenancy()
            .args(args)
            .env("DATABASE_URL", db.url())
            .env("TENANCY_PROJECTION__BATCH_SIZE", "25")
            .env("TENANCY_PROJECTION__BULK_LIMIT", "0")
            .status()
            .unwrap()
    };
    assert!(run(&["projections", "run", "--until-caught-up"]).success());
    let snapshot = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM
             (SELECT (i.*)::text AS t FROM instances i UNION ALL SELECT (o.*)::text FROM organizations o
              UNION ALL SELECT (d.*)::text FROM instance_domains d UNION ALL SELECT (d.*)::text FROM org_domains d) x",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
    };
    let prefilled = snapshot().await;
    let mut rng = Rng(12);
    let mut interrupted = 0;
    for _ in 0..4 {
        let mut child = tenancy()
            .args(["projections", "rebuild"])
            .env("DATABASE_URL", db.url())
            .env("TENANCY_PROJECTION__BATCH_SIZE", "25")
            .env("TENANCY_PROJECTION__BULK_LIMIT", "0")
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100 + rng.next(400))).await;
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
            // While it runs, a second rebuild is refused.
            let second = tenancy()
                .args(["projections", "rebuild"])
                .env("DATABASE_URL", db.url())
                .stderr(Stdio::piped())
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&second.stderr);
            if !second.status.success() {
                assert!(said.contains("another rebuild is running"), "{said}");
            }
            child.kill().unwrap(); // SIGKILL
        }
        child.wait().unwrap();
    }
    assert!(interrupted > 0, "no run was interrupted");
    // The interrupted runs' lock goes with their connections; a rerun may find it still held.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !run(&["projections", "rebuild"]).success() {
        assert!(Instant::now() < deadline, "the rebuild never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        snapshot().await,
        prefilled,
        "the rebuilt tables are the prefill's"
    );
    assert!(run(&["projections", "verify"]).success());
    assert!(run(&["projections", "drop-previous"]).success());
    // `remove` takes the generations of a rebuild along (they use the schema's types).
    assert!(run(&["projections", "rebuild"]).success());
    assert!(run(&["remove", "--yes"]).success());
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname IN ('tenancy', 'tenancy_next', 'tenancy_previous')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
}
