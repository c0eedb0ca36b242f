//! Reliability of the binary: SIGKILL during a prefill, and a database restart while
//! `tenancy start` runs. The scale grows with `TENANCY_SOAK_SCALE` (`cargo xtask bench --soak`).
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

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

fn tenancy() -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("tenancy"));
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
    let root = std::env::temp_dir().join(format!("tenancy-restart-test-{}", std::process::id()));
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = tenancy()
        .args(["start", "--listen", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", &url)
        .env("TENANCY_PROJECTION__SWEEP_INTERVAL_SECS", "1")
        .spawn()
        .unwrap();
    let pool = tenancy_postgres::PgStore::connect(&url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlx::query("SELECT 1 FROM instances LIMIT 1")
        .execute(&pool)
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "schema not migrated by tenancy start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
            Instant::now() < deadline,
            "only {n} of {} instances projected after the restart",
            2 * pushes
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
