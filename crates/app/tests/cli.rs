//! The `tenancy` binary end to end (a fresh database per test).
#![allow(clippy::unwrap_used)] // integration tests: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command as StdCommand;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::json;
use tenancy_core::event::NewEvent;
use tenancy_eventstore::PgEventStore;
use tenancy_testkit::db::TestDatabase;

fn tenancy(db: &TestDatabase) -> Command {
    let mut cmd = Command::cargo_bin("tenancy").unwrap();
    cmd.env("DATABASE_URL", db.url())
        .env_remove("TENANCY_CONFIG")
        .env("TENANCY_LOG", "warn");
    cmd
}

fn stdout(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A database with no tables yet (the testkit's are migrated from a template).
async fn empty_database() -> TestDatabase {
    let db = TestDatabase::fresh().await.unwrap();
    sqlx::raw_sql(
        "DROP SCHEMA eventstore CASCADE; DROP SCHEMA tenancy CASCADE; DROP SCHEMA zitadel CASCADE",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    db
}

#[tokio::test]
async fn migrate_demo_and_projection_commands() {
    let db = empty_database().await;
    let pending = tenancy(&db)
        .args(["projections", "status"])
        .output()
        .unwrap();
    assert!(!pending.status.success());
    assert!(String::from_utf8_lossy(&pending.stderr).contains("run `tenancy migrate` first"));

    assert!(
        stdout(tenancy(&db).arg("migrate")).contains(&format!("applied {:?}", every_migration()))
    );
    assert!(
        stdout(tenancy(&db).arg("migrate")).contains("up to date"),
        "idempotent"
    );
    let demo = stdout(tenancy(&db).arg("demo"));
    assert!(demo.contains("verify: the tables equal"), "{demo}");
    assert!(
        demo.contains("host LOGIN.acme.example -> instance acme"),
        "{demo}"
    );
    let status = stdout(tenancy(&db).args(["projections", "status"]));
    assert!(
        status
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()[1..]
            == ["4", "0", "0.0", "0"],
        "{status}"
    );
    assert!(
        stdout(tenancy(&db).args(["projections", "run", "--until-caught-up"]))
            .contains("0 events applied")
    );
    assert!(stdout(tenancy(&db).args(["projections", "verify"])).contains("0 differences"));
    assert!(stdout(tenancy(&db).args(["projections", "failed"])).contains("no failed events"));
    assert!(stdout(tenancy(&db).args(["projections", "rebuild"])).contains("0 failed"));
    assert!(stdout(tenancy(&db).args(["projections", "verify"])).contains("0 differences"));

    // A difference makes verify fail, naming the row.
    sqlx::query("UPDATE organizations SET name = 'Tampered' WHERE id = 'acme-sales'")
        .execute(&db.pool)
        .await
        .unwrap();
    let out = tenancy(&db)
        .args(["projections", "verify"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Tampered"));
}

#[tokio::test]
async fn events_import_and_a_failing_prefill() {
    let db = TestDatabase::fresh().await.unwrap();
    let file =
        std::env::temp_dir().join(format!("tenancy-cli-import-{}.jsonl", std::process::id()));
    let line = |seq: i64, event_type: &str, payload: serde_json::Value| {
        json!({"instance_id": "i", "aggregate_type": "instance", "aggregate_id": "i", "event_type": event_type, "sequence": seq,
               "revision": 1, "created_at": "2024-05-01T10:00:00Z", "payload": payload, "creator": "u", "owner": "i",
               "position": format!("1714557600.{seq}"), "in_tx_order": 1})
        .to_string()
    };
    std::fs::write(
        &file,
        [
            line(1, "instance.added", json!({"name": "I"})),
            line(2, "instance.changed", json!({"name": ""})),
        ]
        .join("\n"),
    )
    .unwrap();
    let imported = stdout(tenancy(&db).args(["events", "import"]).arg(&file));
    assert!(
        imported.contains("2 rows, 2 added, 0 already present"),
        "{imported}"
    );
    assert!(
        stdout(tenancy(&db).args(["events", "import"]).arg(&file))
            .contains("0 added, 2 already present")
    );
    let run = tenancy(&db)
        .args(["projections", "run", "--until-caught-up"])
        .output()
        .unwrap();
    assert!(
        !run.status.success(),
        "an event that fails makes the prefill exit non-zero"
    );
    let failed = stdout(tenancy(&db).args(["projections", "failed"]));
    assert!(failed.contains("name"), "{failed}");

    std::fs::write(&file, "{\"instance_id\": \"i\"}\n").unwrap();
    let bad = tenancy(&db)
        .args(["events", "import"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with("error: line 1:") && err.lines().count() == 1,
        "one line: {err}"
    );
    let _ = std::fs::remove_file(&file);
}

#[test]
fn expected_failures_print_one_line() {
    let out = Command::cargo_bin("tenancy")
        .unwrap()
        .args([
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "projections",
            "status",
        ])
        .env("TENANCY_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: cannot connect to the database") && err.lines().count() == 1,
        "{err}"
    );

    let out = Command::cargo_bin("tenancy")
        .unwrap()
        .args(["--database-url", "mysql://x", "migrate"])
        .env("TENANCY_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);

    let data = std::env::temp_dir().join(format!("tenancy-cli-nobin-{}", std::process::id()));
    let out = Command::cargo_bin("tenancy")
        .unwrap()
        .args(["--data-dir"])
        .arg(&data)
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env("PG_BINDIR", "/nonexistent")
        .env("TENANCY_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PG_BINDIR")
            && err.contains("postgresql")
            && err.contains("DATABASE_URL")
            && err.lines().count() == 1,
        "{err}"
    );
}

/// `tenancy start` waits for an unavailable database for `server.database_wait_secs`, then
/// gives up with one line; a database that does not exist fails it at once.
#[tokio::test]
async fn start_waits_for_an_unavailable_database_and_not_for_a_wrong_one() {
    let started = Instant::now();
    let out = common::tenancy_start("postgres://nobody@127.0.0.1:1/none", common::free_port())
        .env("TENANCY_SERVER__DATABASE_WAIT_SECS", "2")
        .env("TENANCY_LOG", "warn")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        took >= Duration::from_secs(2),
        "gave up after {took:?}, not after the 2 s of server.database_wait_secs: {err}"
    );
    assert!(err.matches("waiting for it").count() >= 2, "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: the database was still unavailable after 2 s")
            && last.contains("server.database_wait_secs")
            && last.contains("cannot connect to the database"),
        "{err}"
    );

    let db = TestDatabase::fresh().await.unwrap();
    use sqlx::ConnectOptions as _;
    let unknown: sqlx::postgres::PgConnectOptions = db.url().parse().unwrap();
    let unknown = unknown
        .database("no_such_database")
        .to_url_lossy()
        .to_string();
    let started = Instant::now();
    let out = common::tenancy_start(&unknown, common::free_port())
        .env("TENANCY_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "waited {:?} (the default wait is 60 s) for a database that does not exist: {err}",
        started.elapsed()
    );
    assert!(
        err.starts_with("error: cannot connect to the database")
            && err.contains("no_such_database")
            && err.lines().count() == 1,
        "{err}"
    );
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// The value of an unlabelled series in a /metrics text.
fn series(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} missing from:\n{metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// Issue 25 (M6 of the security review): the projection's series are computed at scrape
/// time and present from start; a stall shows as rising lag and catch-up returns it to
/// zero; API requests are counted per method and code.
#[tokio::test]
async fn metrics_at_scrape_show_a_stall_and_its_end() {
    let db = TestDatabase::fresh().await.unwrap();
    let port = common::free_port();
    let _server =
        common::Process::listening(&mut common::tenancy_start(&db.url(), port), port).await;
    let (_, metrics) = get(port, "/metrics").unwrap();
    assert_eq!(series(&metrics, "tenancy_projection_events_behind"), 0.0);
    assert_eq!(
        series(
            &metrics,
            "tenancy_projection_oldest_unprojected_age_seconds"
        ),
        0.0
    );
    assert_eq!(series(&metrics, "tenancy_projection_failed_events"), 0.0);
    assert!(metrics.contains("tenancy_projection_instance_lag_seconds_bucket"));

    // A stall: the projection cannot write while another transaction locks its table.
    let mut lock = db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE instances IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let store = PgEventStore::new(db.pool.clone());
    store
        .push(vec![NewEvent::legacy(
            "stall",
            "instance",
            "stall",
            "instance.added",
            json!({"name": "Stall"}),
            "test",
        )])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, first) = get(port, "/metrics").unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, second) = get(port, "/metrics").unwrap();
    assert_eq!(
        series(&first, "tenancy_projection_events_behind"),
        1.0,
        "{first}"
    );
    let (age1, age2) = (
        series(&first, "tenancy_projection_oldest_unprojected_age_seconds"),
        series(&second, "tenancy_projection_oldest_unprojected_age_seconds"),
    );
    assert!(
        age1 >= 1.0 && age2 > age1,
        "the lag rises while stalled: {age1} -> {age2}"
    );
    assert!(
        second.contains("tenancy_projection_oldest_instance_lag_seconds{instance_id=\"stall\"}"),
        "{second}"
    );
    lock.rollback().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, now) = get(port, "/metrics").unwrap();
        if series(&now, "tenancy_projection_events_behind") == 0.0 {
            assert_eq!(
                series(&now, "tenancy_projection_oldest_unprojected_age_seconds"),
                0.0
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lag never returned to zero:\n{now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // API requests by method and code; a path that is no method is `unknown`.
    let mut call = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(call, "POST /tenancy.instance.v2.InstanceService/GetInstance HTTP/1.1\r\nHost: x.example\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    let mut answer = String::new();
    call.read_to_string(&mut answer).unwrap();
    let mut probe = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(probe, "POST /no.Such/Method-{} HTTP/1.1\r\nHost: x.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", std::process::id()).unwrap();
    probe.read_to_string(&mut answer).unwrap();
    let (_, metrics) = get(port, "/metrics").unwrap();
    for line in [
        "tenancy_api_requests_total{method=\"tenancy.instance.v2.InstanceService/GetInstance\",protocol=\"connect\",code=\"unauthenticated\"} 1",
        "tenancy_api_requests_total{method=\"unknown\",protocol=\"connect\",code=\"unauthenticated\"} 1",
        "tenancy_api_request_duration_seconds_bucket{",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    // Every series the alert rules and the dashboard use exists.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ops");
    for file in ["prometheus/alerts.yml", "grafana/tenancy.json"] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        for (at, _) in text.match_indices("tenancy_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if name.ends_with('_') || !name.contains("_") || name == "tenancy_" {
                continue;
            }
            assert!(
                metrics.contains(&name),
                "{file} uses {name}, which /metrics lacks"
            );
        }
    }
}

#[tokio::test]
async fn start_serves_health_readiness_metrics_and_projects_pushed_events() {
    let db = TestDatabase::fresh().await.unwrap();
    let port = common::free_port();
    let server =
        common::Process::listening(&mut common::tenancy_start(&db.url(), port), port).await;
    assert_eq!(get(port, "/healthz").unwrap(), (200, "ok\n".to_owned()));
    let (status, body) = get(port, "/readyz").unwrap();
    assert_eq!(status, 200, "{body}");

    let store = PgEventStore::new(db.pool.clone());
    store
        .push(vec![NewEvent::legacy(
            "live",
            "instance",
            "live",
            "instance.added",
            json!({"name": "Live"}),
            "test",
        )])
        .await
        .unwrap();
    let mut visible = false;
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM instances")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        if n == 1 {
            visible = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        visible,
        "a pushed event becomes visible while tenancy start runs"
    );
    let (status, metrics) = get(port, "/metrics").unwrap();
    assert_eq!(status, 200);
    for name in [
        "tenancy_projection_events_applied_total{projection=\"relational_tables\"} 1",
        "tenancy_projection_failures_total",
        "tenancy_projection_batch_duration_seconds_bucket",
        "tenancy_projection_lag_seconds",
        "tenancy_db_pool_connections",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    // SIGTERM stops it gracefully (exit 0).
    let pid = server.0.id();
    StdCommand::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn layout_refusal_and_remove_on_zitadel_databases() {
    use tenancy_testkit::zitadel::{self, INIT, V4};
    // A ZITADEL database: `layout` shows the decision before anything is created.
    let db = zitadel::database(&[INIT, V4]).await.unwrap();
    let shown = stdout(tenancy(&db).arg("layout"));
    assert!(
        shown.contains("not migrated yet")
            && shown.contains("ZITADEL present:    yes")
            && shown.contains("adopted")
            && shown.contains("schema tenancy"),
        "{shown}"
    );
    assert!(
        stdout(tenancy(&db).arg("migrate")).contains(&format!("applied {:?}", every_migration()))
    );
    let refused = tenancy(&db).arg("remove").output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    let removed = stdout(tenancy(&db).args(["remove", "--yes"]));
    assert!(removed.contains("the events stay"), "{removed}");
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenancy'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(left, 0);

    // An event store without the columns tenancy reads: one `error:` line, nothing created.
    let db = TestDatabase::empty().await.unwrap();
    sqlx::raw_sql(
        "CREATE SCHEMA eventstore;
         CREATE TABLE eventstore.events2 (instance_id TEXT NOT NULL, aggregate_type TEXT NOT NULL,
             aggregate_id TEXT NOT NULL, event_type TEXT NOT NULL, \"sequence\" BIGINT NOT NULL)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let out = tenancy(&db)
        .arg("migrate")
        .env("TENANCY_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ")
            && err.contains("lacks the column(s)")
            && err.lines().count() == 1,
        "{err}"
    );
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenancy'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(left, 0);
}

/// `org-domains generate-validation` prints what to publish; `verify` checks it through
/// the configured resolver (a DNS server the test runs on loopback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_domain_verification_by_dns() {
    use std::sync::Arc;
    use tenancy_core::command::{AddInstance, AddOrganization, AddOrganizationDomain, run};

    let db = TestDatabase::fresh().await.unwrap();
    let events = Arc::new(PgEventStore::new(db.pool.clone()));
    let store = tenancy_postgres::PgStore::with_events(db.pool.clone(), events);
    let ctx = tenancy_testkit::fixtures::context();
    let instance = run(
        &store,
        &ctx,
        &AddInstance {
            name: "ACME".into(),
        },
    )
    .await
    .unwrap();
    let org = run(
        &store,
        &ctx,
        &AddOrganization {
            id: None,
            instance_id: instance.clone(),
            name: "Sales".into(),
        },
    )
    .await
    .unwrap();
    run(
        &store,
        &ctx,
        &AddOrganizationDomain {
            instance_id: instance.clone(),
            org_id: org.clone(),
            domain: "sales.example".into(),
        },
    )
    .await
    .unwrap();
    let dns = tenancy_testkit::servers::LocalDns::start().await.unwrap();
    let ids = [
        "--instance",
        instance.as_str(),
        "--org",
        org.as_str(),
        "--domain",
        "sales.example",
    ];
    let with_resolver = |cmd: &mut Command| {
        cmd.env("TENANCY_VERIFICATION__RESOLVER", dns.address().to_string())
            .env("TENANCY_VERIFICATION__PREFIX", "acme")
            .env("TENANCY_VERIFICATION__TIMEOUT_MS", "500");
    };

    let mut generate = tenancy(&db);
    with_resolver(&mut generate);
    let printed = stdout(
        generate
            .args(["org-domains", "generate-validation", "--method", "dns"])
            .args(ids),
    );
    assert!(
        printed.contains("name:  _acme-challenge.sales.example"),
        "{printed}"
    );
    let token = printed
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap()
        .to_owned();

    let mut early = tenancy(&db);
    with_resolver(&mut early);
    let out = early
        .args(["org-domains", "verify"])
        .args(ids)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("no TXT record at _acme-challenge.sales.example"),
        "{message}"
    );

    dns.set_txt("_acme-challenge.sales.example", &[&token]);
    let mut verify = tenancy(&db);
    with_resolver(&mut verify);
    let printed = stdout(verify.args(["org-domains", "verify"]).args(ids));
    assert!(printed.contains("sales.example is verified"), "{printed}");
    let verified: bool = sqlx::query_scalar("SELECT is_verified FROM org_domains")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(verified);
}

/// Every migration's number, as `tenancy migrate` reports a fresh database's (a new
/// migration needs no edit here).
fn every_migration() -> Vec<i64> {
    let versions = tenancy_postgres::migrate::versions();
    assert_eq!(
        versions,
        (1..=versions.len() as i64).collect::<Vec<_>>(),
        "numbered 1, 2, ..."
    );
    versions
}
